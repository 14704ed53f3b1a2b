"""`mlpipe submit` and `mlpipe schedule`: run the pipeline on a KFP cluster, once or on a cron.

mlpipe submit [--config F] [--set k=v ...] [--param name=value ...] [--experiment E] [--wait]
mlpipe schedule [--cron "0 3 * * 1"] [--name N] [--param name=value ...]
mlpipe schedule --list | --disable NAME

Both compile the pipeline with the given config (as `mlpipe compile` does), upload it to KFP as a
pipeline named like the pipeline with a version named by the package's content (so re-submitting
unchanged code and config reuses the version), and find or create the experiment (default: the
config's `project.experiment`). `--param` values are checked against the pipeline's parameters
before any request; those derived from the config are refused (change them with `--set`).
Connection: `--host` / `KFP_HOST`, `--token` / `KFP_TOKEN` or `--token-file` / `KFP_TOKEN_FILE`
(in a pod: the KFP service-account token), `--namespace` / `KFP_NAMESPACE`, `--ui-url` /
`KFP_UI_URL` for printed links (default: the host). Runs and recurring runs run as the Kubernetes
service account `--service-account`, default the config's `runtime.service_account` (the
`mlpipe-pipeline` ServiceAccount the manifests create).

Both compile with the cluster profile (`--profile`, default `cluster`: config/profiles/
cluster.yaml), so the pipeline reads and writes the cluster's services. `--pipeline monitoring`
first uploads the training pipeline compiled from the same config and passes its ids in the
`retraining` parameter: a `retrain` decision starts a run of exactly that version.

Cron: 5 fields (standard: minute hour day-of-month month day-of-week) or 6 (KFP's, seconds first),
in UTC; a 5-field expression is sent to KFP as `0 <expr>` because KFP reads the first field as
seconds. Default: the config's `data_ingestion.schedule`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from components.common.config import ConfigError, Settings
from components.common.cron import CronError, to_kfp_cron
from components.common.kfp_client import KfpClient, KfpError
from pipelines.cli_args import add_config_args, add_profile_arg, settings_from_args
from pipelines.kfp_package import PIPELINES, Package, compile_package, describe_params, parse_params


def _client(args: argparse.Namespace) -> KfpClient:
    return KfpClient.from_env(
        host=args.host,
        token=args.token,
        token_file=args.token_file,
        namespace=args.namespace,
        ui_url=args.ui_url,
    )


def _service_account(args: argparse.Namespace, settings: Settings) -> str:
    return args.service_account or settings.pipeline.runtime.service_account


def retraining_parameter(
    client: KfpClient, training: Package, settings: Settings, service_account: str | None = None
) -> dict[str, Any]:
    """The monitoring pipeline's `retraining` parameter: the training pipeline `training`
    (compiled from the same config) uploaded or found by its content, and its ids."""
    from pipelines.monitoring import retraining_defaults

    pipeline, version, uploaded = client.ensure_pipeline_version(
        training.yaml_bytes, training.name, training.version_name, training.description
    )
    print(
        f"retraining runs: pipeline {training.name} version {version['name']} "
        f"({'uploaded' if uploaded else 'reusing'} {version['pipeline_version_id']})"
    )
    out = retraining_defaults(settings)
    out.update(pipeline_id=pipeline["pipeline_id"], version_id=version["pipeline_version_id"])
    if service_account:
        out["service_account"] = service_account
    return out


def _with_retraining(
    args: argparse.Namespace, client: KfpClient, settings: Settings, params: dict[str, Any]
) -> None:
    """The monitoring pipeline needs the training pipeline's version (unless given)."""
    if args.pipeline == "monitoring" and "retraining" not in params:
        training = compile_package(settings, "training")
        params["retraining"] = retraining_parameter(
            client, training, settings, _service_account(args, settings)
        )


def _prepare(args: argparse.Namespace) -> tuple[Settings, Package, dict[str, Any]]:
    """Everything that needs no server: settings, the compiled package, checked parameters."""
    settings = settings_from_args(args)
    package = compile_package(settings, args.pipeline)
    params = parse_params(package, args.param or [])
    if "source_digest" in package.parameters and "source_digest" not in params:
        params["source_digest"] = _source_digest(settings)
    return settings, package, params


def _source_digest(settings: Settings) -> str:
    """The data's cache key, computed as `mlpipe run` does, so a cluster run with changed data
    misses KFP's cache; "" (with a warning) when the source cannot be read from here."""
    from components.ingest.ingest import source_digest

    try:
        return source_digest(settings.resolve_source(), settings.pipeline.data_ingestion)
    except Exception as exc:  # any source error: the run still works, caching is coarser
        print(
            f"mlpipe: warning: cannot compute the data digest here ({exc}); ingest's cache key "
            "will not see data changes (pass --param source_digest=...)",
            file=sys.stderr,
        )
        return ""


def _upload(client: KfpClient, package: Package, experiment_name: str) -> tuple[dict, dict, dict]:
    client.healthz()  # fail fast (host, auth) before uploading
    pipeline, version, uploaded = client.ensure_pipeline_version(
        package.yaml_bytes, package.name, package.version_name, package.description
    )
    verb = "uploaded" if uploaded else "reusing"
    print(
        f"pipeline {package.name} ({pipeline['pipeline_id']}): {verb} version "
        f"{version['name']} ({version['pipeline_version_id']})"
    )
    experiment = client.ensure_experiment(experiment_name)
    print(f"experiment {experiment_name} ({experiment['experiment_id']})")
    return pipeline, version, experiment


def cmd_submit(args: argparse.Namespace) -> int:
    settings, package, params = _prepare(args)
    try:
        client = _client(args)
        pipeline, version, experiment = _upload(
            client, package, args.experiment or settings.pipeline.project.experiment
        )
        _with_retraining(args, client, settings, params)
        name = args.run_name or f"{package.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        run = client.create_run(
            name,
            pipeline["pipeline_id"],
            version["pipeline_version_id"],
            experiment["experiment_id"],
            params,
            service_account=_service_account(args, settings),
        )
        state = run.get("state", "RUNTIME_STATE_UNSPECIFIED")
        print(f"run {name}: {run['run_id']} ({state}) with {describe_params(params)}")
        print(f"run URL: {client.run_url(run['run_id'])}", flush=True)
        if not args.wait:
            return 0
        started = time.monotonic()

        def show(current: dict) -> None:
            state = current.get("state", "RUNTIME_STATE_UNSPECIFIED")
            print(f"  {time.monotonic() - started:7.1f} s  {state}", flush=True)

        final = client.wait_for_run(run["run_id"], args.timeout, args.poll, on_change=show)
    except KfpError as exc:  # KfpTimeout included: the run goes on, the wait stops
        print(f"mlpipe submit: {exc}", file=sys.stderr)
        return 1
    state = final.get("state")
    print(f"run {run['run_id']} finished: {state}")
    if state != "SUCCEEDED":
        error = (final.get("error") or {}).get("message")
        if error:
            print(f"  {error}", file=sys.stderr)
        return 1
    return 0


def _kfp_cron(args: argparse.Namespace, settings: Settings) -> str:
    expr = args.cron or settings.pipeline.data_ingestion.schedule
    if not expr:
        raise ConfigError("no schedule: pass --cron or set data_ingestion.schedule in the config")
    try:
        cron = to_kfp_cron(expr)
    except CronError as exc:
        raise ConfigError(str(exc)) from None
    return cron


def _list(client: KfpClient) -> int:
    runs = client.list_recurring_runs()
    if not runs:
        print("no recurring runs")
        return 0
    print(f"{'id':<38} {'status':<9} {'cron':<18} {'created':<21} name")
    for r in runs:
        cron = ((r.get("trigger") or {}).get("cron_schedule") or {}).get("cron", "periodic")
        print(
            f"{r.get('recurring_run_id', ''):<38} {r.get('status', ''):<9} {cron:<18} "
            f"{r.get('created_at', '')[:19]:<21} {r.get('display_name', '')}"
        )
    return 0


def _disable(client: KfpClient, name: str) -> int:
    found = [r for r in client.list_recurring_runs(name=name) if r.get("status") != "DISABLED"]
    if not found:
        print(f"mlpipe schedule: no enabled recurring run named {name!r}", file=sys.stderr)
        return 1
    for r in found:
        client.disable_recurring_run(r["recurring_run_id"])
        print(f"disabled recurring run {name} ({r['recurring_run_id']})")
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    try:
        if args.list:
            return _list(_client(args))
        if args.disable:
            return _disable(_client(args), args.disable)
        if not 1 <= args.max_concurrency <= 10:
            raise ConfigError(f"--max-concurrency {args.max_concurrency}: KFP allows 1-10")
        settings, package, params = _prepare(args)
        cron = _kfp_cron(args, settings)
        name = args.name or f"{package.name}-schedule"
        client = _client(args)
        pipeline, version, experiment = _upload(
            client, package, args.experiment or settings.pipeline.project.experiment
        )
        _with_retraining(args, client, settings, params)
        active = [
            r
            for r in client.list_recurring_runs(experiment["experiment_id"], name=name)
            if r.get("status") == "ENABLED"
        ]
        if active:
            ids = ", ".join(r["recurring_run_id"] for r in active)
            print(
                f"mlpipe schedule: {name!r} is already scheduled ({ids}): "
                f"disable it first with `mlpipe schedule --disable {name}`",
                file=sys.stderr,
            )
            return 1
        recurring = client.create_recurring_run(
            name,
            pipeline["pipeline_id"],
            version["pipeline_version_id"],
            experiment["experiment_id"],
            cron,
            params,
            max_concurrency=args.max_concurrency,
            enabled=not args.paused,
            no_catchup=not args.catchup,
            service_account=_service_account(args, settings),
        )
    except KfpError as exc:
        print(f"mlpipe schedule: {exc}", file=sys.stderr)
        return 1
    print(
        f"recurring run {name}: {recurring['recurring_run_id']} ({recurring.get('status')}), "
        f"cron {cron!r} (UTC, seconds first), with {describe_params(params)}"
    )
    print(f"URL: {client.recurring_run_url(recurring['recurring_run_id'])}")
    return 0


def _connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="KFP API endpoint (default: $KFP_HOST)")
    p.add_argument("--token", default=None, help="bearer token (default: $KFP_TOKEN)")
    p.add_argument("--token-file", default=None, help="file holding the token ($KFP_TOKEN_FILE)")
    p.add_argument("--namespace", default=None, help="KFP namespace ($KFP_NAMESPACE)")
    p.add_argument("--ui-url", default=None, help="base of printed links ($KFP_UI_URL; the host)")
    p.add_argument(
        "--service-account", default=None, help="the run's (default: runtime.service_account)"
    )


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--pipeline", default="training", choices=sorted(PIPELINES))
    p.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="a pipeline parameter (repeat)"
    )
    p.add_argument("--experiment", default=None, help="KFP experiment (default: the config's)")
    add_profile_arg(p)


def add_submit_parser(sub: Any) -> None:
    """Register `mlpipe submit` and `mlpipe schedule` on the CLI's subparsers."""
    submit = sub.add_parser("submit", help="upload the pipeline to KFP and start a run")
    _pipeline_args(submit)
    _connection(submit)
    submit.add_argument("--run-name", default=None, help="default: <pipeline>-<UTC time>")
    submit.add_argument("--wait", action="store_true", help="poll until the run finishes")
    submit.add_argument("--timeout", type=float, default=6 * 3600, help="--wait limit, seconds")
    submit.add_argument("--poll", type=float, default=10.0, help="--wait interval, seconds")
    submit.set_defaults(func=cmd_submit)

    schedule = sub.add_parser("schedule", help="create, list or disable KFP recurring runs")
    _pipeline_args(schedule)
    _connection(schedule)
    action = schedule.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list recurring runs")
    action.add_argument("--disable", metavar="NAME", help="disable the recurring runs named NAME")
    schedule.add_argument("--cron", default=None, help="default: data_ingestion.schedule")
    schedule.add_argument("--name", default=None, help="default: <pipeline>-schedule")
    schedule.add_argument("--max-concurrency", type=int, default=1, help="1-10 runs at once")
    schedule.add_argument("--catchup", action="store_true", help="run every missed interval")
    schedule.add_argument("--paused", action="store_true", help="create it disabled")
    schedule.set_defaults(func=cmd_schedule)
