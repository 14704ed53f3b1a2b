"""`python -m components.serve`: the model server (the serving image runs this).

python -m components.serve --model-dir D | --model-uri models:/<name>@<alias> --model-name N
    [--model-sha256 HEX]
    [--host 127.0.0.1] [--port 8080] [--request-log F [--request-log-max-mb 100]
    [--request-log-backups 5]] [--max-body-bytes N] [--max-batch N]
    [--allow-faults --fault invert|error:0.3|latency:20]
"""

from __future__ import annotations

import argparse
import logging
import sys

from components.serve.faults import faults_from_env


def add_bound_arguments(parser) -> None:
    """The server's bounds, shared by `python -m components.serve` and `mlpipe serve`."""
    parser.add_argument(
        "--request-log-max-mb",
        type=float,
        default=100.0,
        help="rotate the request log past this size (MB; 0 = never)",
    )
    parser.add_argument(
        "--request-log-backups", type=int, default=5, help="rotated request log files kept"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=32 * 1024 * 1024,
        help="largest request body on any route (413 past it)",
    )


def bound_options(args: argparse.Namespace) -> dict[str, int]:
    """The ServeOptions fields that add_bound_arguments' arguments set."""
    return {
        "request_log_max_bytes": int(args.request_log_max_mb * 1024 * 1024),
        "request_log_backups": args.request_log_backups,
        "max_body_bytes": args.max_body_bytes,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m components.serve", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", help="a model dir (model.joblib + feature_spec.json)")
    source.add_argument("--model-uri", help="models:/<name>@<alias> or models:/<name>/<version>")
    parser.add_argument(
        "--model-sha256",
        default=None,
        help="the model's manifest digest (default: env MLPIPE_MODEL_SHA256): its files are "
        "checked against it before unpickling; the deploy stage sets it on KServe",
    )
    parser.add_argument("--model-name", required=True, help="the name in the endpoint paths")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 = any free port")
    parser.add_argument("--request-log", default=None, help="JSON-lines request/response log")
    parser.add_argument(
        "--fault",
        action="append",
        default=None,
        help="inject a fault: invert | error:<rate> | latency:<ms> (repeatable; needs "
        "--allow-faults)",
    )
    parser.add_argument(
        "--allow-faults",
        action="store_true",
        help="let --fault / MLPIPE_SERVE_FAULT take effect (else they are refused); tests and "
        "local rollouts only, never in production (also env MLPIPE_ALLOW_FAULTS=1)",
    )
    parser.add_argument("--max-batch", type=int, default=10_000, help="rows per request")
    add_bound_arguments(parser)
    parser.add_argument(
        "--kserve-routes",
        action="store_true",
        help="answer predict/infer through KServe's own routes (no lean hot path)",
    )
    parser.add_argument("--port-file", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        faults = faults_from_env(args.fault, allow=args.allow_faults)
    except ValueError as exc:
        print(f"mlpipe serve: {exc}", file=sys.stderr)
        return 2
    from components.common.model_integrity import ModelIntegrityError
    from components.serve.model_source import ModelSourceError
    from components.serve.server import ServeOptions, serve

    options = ServeOptions(
        model=args.model_dir or args.model_uri,
        name=args.model_name,
        host=args.host,
        port=args.port,
        request_log=args.request_log,
        **bound_options(args),
        faults=faults,
        fast_routes=not args.kserve_routes,
        max_batch=args.max_batch,
        port_file=args.port_file,
        model_sha256=args.model_sha256,
    )
    try:
        serve(options)
    except (ModelSourceError, ModelIntegrityError) as exc:
        print(f"mlpipe serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
