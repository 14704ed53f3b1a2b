"""`mlpipe serve`: run the model server in the foreground.

mlpipe serve [--model models:/<registered_model>@champion | --model DIR] [--name N]
             [--host 127.0.0.1] [--port 8080] [--request-log F] [--allow-faults --fault SPEC]

By default it serves the registry's current champion (`project.registered_model` of the config,
alias `champion`) from the MLflow store in MLFLOW_TRACKING_URI (else outputs/mlflow). It prints
the URLs and an example request, then runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pipelines.cli_args import add_config_args


def registered_model(config: str, schema: str) -> str:
    from components.common.config import load_settings

    return load_settings(config, schema).pipeline.project.registered_model


def example_row(spec: dict[str, Any]) -> dict[str, Any]:
    """A valid row from the feature spec (the low end of each domain), for the curl example."""
    from components.serve.validation import FeatureRule

    row = {}
    for entry in spec["features"]:
        rule = FeatureRule.from_spec(entry)
        value = min(rule.codes) if rule.codes else (rule.low if rule.low is not None else 0)
        row[rule.name] = int(value) if rule.integer else float(value)
    return row


def banner(name: str, url: str, spec: dict[str, Any], version: str, source: str) -> str:
    body = json.dumps({"instances": [example_row(spec)]})
    return "\n".join(
        [
            f"mlpipe serve: {name} (version {version}) from {source}",
            f"  V1 predict : POST {url}/v1/models/{name}:predict",
            f"  V2 infer   : POST {url}/v2/models/{name}/infer",
            f"  metadata   : GET  {url}/v2/models/{name}",
            f"  ready      : GET  {url}/v2/models/{name}/ready",
            f"  metrics    : GET  {url}/metrics",
            "example:",
            f"  curl -s -X POST {url}/v1/models/{name}:predict \\",
            f"       -H 'Content-Type: application/json' -d '{body}'",
            "Ctrl-C stops the server.",
        ]
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from components.common.model_integrity import ModelIntegrityError
    from components.serve.__main__ import bound_options
    from components.serve.faults import parse_faults, require_allowed
    from components.serve.model_source import ModelSourceError
    from components.serve.server import ServeOptions, load, serve

    try:
        faults = require_allowed(parse_faults(args.fault), args.allow_faults)
    except ValueError as exc:
        print(f"mlpipe serve: {exc}", file=sys.stderr)
        return 2
    registered = registered_model(args.config, args.schema)  # ConfigError → exit 2 in main()
    model_uri = args.model or f"models:/{registered}@champion"
    name = args.name or registered

    def on_bound(model, port: int) -> None:
        url = f"http://{args.host}:{port}"
        print(banner(name, url, model.loaded.spec, model.version, model_uri), flush=True)

    options = ServeOptions(
        model=model_uri,
        name=name,
        host=args.host,
        port=args.port,
        request_log=args.request_log,
        **bound_options(args),
        faults=faults,
        on_bound=on_bound,
        follow_s=args.follow_s if model_uri.startswith("models:/") and "@" in model_uri else 0.0,
    )
    try:
        model = load(options)  # fails here, with a clear message, before binding
    except ModelIntegrityError as exc:  # tampered or unrecorded files: never served
        print(f"mlpipe serve: {exc}", file=sys.stderr)
        return 1
    except ModelSourceError as exc:
        hint = ""
        if model_uri.startswith("models:/"):
            store = os.environ.get("MLFLOW_TRACKING_URI", "outputs/mlflow")
            hint = (
                "\n(no champion yet? run `mlpipe run` first, or pass --model <model dir>; "
                f"MLflow store: {store})"
            )
        print(f"mlpipe serve: {exc}{hint}", file=sys.stderr)
        return 1
    serve(options, model)
    return 0


def add_serve_parser(sub: Any) -> None:
    """Register `mlpipe serve` on the CLI's subparsers."""
    p = sub.add_parser("serve", help="serve the champion model (KServe V1/V2 REST) locally")
    p.add_argument(
        "--model",
        default=None,
        help="models:/<name>@<alias>, models:/<name>/<version> or a model dir "
        "(default: models:/<project.registered_model>@champion)",
    )
    p.add_argument(
        "--name", default=None, help="model name in the URLs (default: project.registered_model)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 = any free port")
    p.add_argument("--request-log", default=None, help="JSON-lines request/response log file")
    from components.serve.__main__ import add_bound_arguments

    add_bound_arguments(p)
    p.add_argument(
        "--follow-s",
        type=float,
        default=10.0,
        help="with an alias (the default champion): check it every N seconds and serve the "
        "version it names (a promotion, `mlpipe rollback`); 0 = never",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=None,
        help="invert | error:<rate> | latency:<ms> (needs --allow-faults)",
    )
    p.add_argument(
        "--allow-faults",
        action="store_true",
        help="let --fault take effect (else it is refused); also env MLPIPE_ALLOW_FAULTS=1",
    )
    add_config_args(p, overrides=False)
    p.set_defaults(func=cmd_serve)
