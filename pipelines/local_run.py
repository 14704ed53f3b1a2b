"""Run the training pipeline on this machine with kfp.local (SubprocessRunner, caching on).

Owns what a local run needs around the pipeline: the outputs/ folders, the MLflow parent run, the
environment the tasks inherit (not part of the cache key; pipelines/local_tasks.py, shared with the
monitoring run), progress on screen and the full log on disk, the per-task summary, and placing
the model and reports in outputs/ (hard links to the task outputs, pipelines/outputs.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.artifacts import restore_ints
from components.common.config import REPO_ROOT, Settings
from components.common.errors import DataError
from components.ingest.ingest import source_digest
from pipelines.kfp_local_internals import info_logging, run_folder
from pipelines.local_tasks import (
    STAGE_ORDER,
    cached_record,
    init_kfp_local,
    last_failure,
    task_environment,
    task_rows,
)
from pipelines.outputs import link_or_copy, share_identical, share_with_previous_run
from pipelines.progress import ProgressTee, original_stdout, strip_ansi
from pipelines.training import PIPELINE_NAME, build_pipeline


@dataclass
class RunResult:
    ok: bool
    wall_s: float
    tasks: list[dict[str, Any]] = field(default_factory=list)
    failed_stage: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    gate_passed: bool | None = None
    gate: dict[str, Any] = field(default_factory=dict)  # the blessing's metadata
    registration: dict[str, Any] | None = None
    deployment: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    paths: dict[str, str] = field(default_factory=dict)
    log_file: str = ""
    tracking_uri: str = ""
    nothing_new: bool = False
    failed_checks: list[str] = field(default_factory=list)
    alert: dict[str, Any] | None = None  # the failure alert, when the run failed
    started: bool = True  # False: the source failed before any task ran


def _record_failed_run(settings: Settings, run_name: str, result: RunResult, digest: str) -> str:
    """A failed run never reached the track task: record it in MLflow here (failure path only)."""
    import mlflow

    from components.common import mlflow_utils as mu

    mu.configure()
    client = mlflow.MlflowClient()
    run = client.create_run(
        mu.ensure_experiment(settings.pipeline.project.experiment),
        run_name=run_name,
        tags={
            mu.PIPELINE_RUN_TAG: run_name,
            mu.DATA_DIGEST_TAG: digest,
            mu.CONFIG_HASH_TAG: settings.digest(),
            mu.FAILED_STAGE_TAG: result.failed_stage or "unknown",
            mu.ERROR_TAG: (result.error or "")[:5000],
        },
    )
    for row in result.tasks:
        for key in ("wall_s", "cpu_s", "peak_rss_mb"):
            client.log_metric(run.info.run_id, f"task.{row['task']}.{key}", float(row[key]))
    client.log_artifact(run.info.run_id, result.log_file, artifact_path="logs")
    client.set_terminated(run.info.run_id, status="FAILED")
    return run.info.run_id


def record_outcome(run_id: str, config_hash: str, digest: str, result: RunResult) -> None:
    """What only the whole run knows, on its MLflow run (`run_id`, the one gate wrote its verdict
    to): config and data digests, the registered version and the deploy outcome; for `mlpipe
    runs`."""
    import mlflow

    from components.common import mlflow_utils as mu

    mu.configure()
    client = mlflow.MlflowClient()
    tags = {mu.CONFIG_HASH_TAG: config_hash, mu.DATA_DIGEST_TAG: digest}
    if result.registration:
        tags[mu.REGISTERED_VERSION_TAG] = str(result.registration.get("version", ""))
    if result.deployment:
        tags[mu.DEPLOY_OUTCOME_TAG] = str(result.deployment.get("outcome", ""))
        tags[mu.DEPLOY_REASON_TAG] = str(result.deployment.get("reason") or "")[:5000]
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    # gate's own run of a cached re-run is left RUNNING by the gate task: the run ended here
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status="FINISHED")


def record_outcome_or_warn(run_id: str, config_hash: str, digest: str, result: RunResult) -> bool:
    """`record_outcome`, but a failure only warns: by then the model is registered and deployed,
    so the run succeeded; only `mlpipe runs` loses its outcome columns."""
    try:
        record_outcome(run_id, config_hash, digest, result)
        return True
    except Exception as exc:
        print(
            f"warning: could not tag MLflow run {run_id} with the run's outcome "
            f"({type(exc).__name__}: {exc}); `mlpipe runs` will not show it",
            file=sys.stderr,
        )
        return False


def _alert_failure(settings: Settings, out: Path, run_name: str, result: RunResult) -> None:
    """The failure alert a compiled pipeline's exit handler sends on a cluster, sent here (the
    local variant has no exit handler): into outputs/logs/alerts/ and the configured webhook."""
    from components.common.alerts import AlertSink, failure_alert

    alert = failure_alert(
        PIPELINE_NAME, run_name, result.failed_stage, result.error, log=result.log_file
    )
    sink = AlertSink.from_config(settings.pipeline.monitoring, out / "logs")
    result.alert = sink.send(alert)


def _copy_outputs(outputs: dict[str, Any], out: Path, run_name: str) -> dict[str, str]:
    paths = {}
    targets = {
        "model": out / "models" / run_name,
        "data": out / "data" / f"{run_name}.parquet",
        "evaluation_report": out / "reports" / f"{run_name}-evaluation.html",
        "validation_report": out / "reports" / f"{run_name}-validation.html",
    }
    # gate is never cached: an unchanged re-run renders the same report again; keep one copy
    earlier = sorted(
        (out / "reports").glob("*-evaluation.html"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    share_identical(outputs["evaluation_report"].path, earlier[:3])
    for name, target in targets.items():
        # hard links to kfp.local's files (a cached task's are an earlier run's): no new bytes
        link_or_copy(outputs[name].path, target)
        paths[name] = str(target)
    return paths


def run_local(
    settings: Settings,
    output_dir: str | Path = REPO_ROOT / "outputs",
    tfdv_python: str | None = None,
    verbose: bool = False,
    screen: Any = None,
    use_cache: bool = True,
) -> RunResult:
    """Run the training pipeline locally. Never raises for a failed stage: see RunResult."""
    screen = screen or original_stdout()
    out = Path(output_dir).resolve()
    for sub in ("data", "models", "reports", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    run_name = f"{PIPELINE_NAME}-{time.strftime('%Y%m%d-%H%M%S')}"
    with task_environment(out, tfdv_python) as env:
        result = _run(settings, out, run_name, use_cache, verbose, screen)
        result.tracking_uri = env["MLFLOW_TRACKING_URI"]
    return result


def _run(
    settings: Settings, out: Path, run_name: str, use_cache: bool, verbose: bool, screen: Any
) -> RunResult:
    log_file = out / "logs" / f"{run_name}.log"
    records_dir = out / "logs" / "tasks"
    started = time.time()
    t0 = time.perf_counter()
    source = settings.resolve_source()
    try:
        digest = source_digest(source, settings.pipeline.data_ingestion)
    except DataError as exc:
        # no pipeline ran, no MLflow run exists: the log holds the error (and then the summary)
        log_file.write_text(f"{exc}\n")
        wall = round(time.perf_counter() - t0, 2)
        failed = RunResult(False, wall, failed_stage="ingest", error=str(exc), started=False)
        failed.log_file = str(log_file)
        return failed

    cache_root = init_kfp_local(out, use_cache)
    pipeline = build_pipeline(
        settings, retries=settings.pipeline.runtime.local_retries, exit_handler=False
    )
    result = RunResult(True, 0.0, log_file=str(log_file))

    with open(log_file, "w") as log:
        tee = ProgressTee(
            log, screen, verbose=verbose, cached_record=lambda k: cached_record(cache_root, k)
        )
        try:
            with contextlib.redirect_stdout(tee), info_logging(tee), warnings.catch_warnings():
                # resources, retries and images have no effect under kfp.local: say it once, in docs
                warnings.simplefilter("ignore")
                outputs = pipeline(
                    source=source,
                    source_digest=digest,
                    tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
                ).outputs
        except Exception as exc:  # kfp.local raises RuntimeError("Task ... FAILURE")
            result.ok = False
            failed = last_failure(started, records_dir)
            if failed is not None:
                result.failed_stage, result.error = failed.task, failed.error
                # an incremental load with no new rows: nothing to do, not a failure
                result.nothing_new = failed.error_type == "NoNewData"
            else:
                result.error = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
                result.failed_stage = next((t for t in STAGE_ORDER if t in str(exc)), None)
        finally:
            tee.close()
        result.wall_s = round(time.perf_counter() - t0, 2)
        result.tasks = task_rows(started, records_dir, cache_root, tee.cache_hits)

    if result.nothing_new:
        result.ok = True
        return result
    if not result.ok:
        result.mlflow_run_id = _record_failed_run(settings, run_name, result, digest)
        _alert_failure(settings, out, run_name, result)
        return result

    result.mlflow_run_id = outputs["logged_model"].metadata.get("run_id")
    rollout = restore_ints(dict(outputs["deployment"]))
    result.registration = rollout.pop("registration", None) or None
    result.deployment = None if rollout.get("outcome") == "blocked" else rollout
    result.metrics = {
        k: float(v)
        for k, v in outputs["metrics"].metadata.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    result.gate = {k: v for k, v in outputs["blessing"].metadata.items() if k != "task"}
    result.gate_passed = bool(result.gate.get("blessed", False))
    result.failed_checks = list(result.gate.get("failed_checks") or [])
    result.paths = _copy_outputs(outputs, out, run_name)
    try:  # the never-cached tasks' outputs that equal the previous run's: one copy
        share_with_previous_run(run_folder(outputs["blessing"].path))
    except OSError as exc:  # disk use only: the run itself succeeded
        print(f"warning: could not link this run's outputs to the previous ones: {exc}")
    gate_run = result.gate.get("run_id")
    if gate_run:
        record_outcome_or_warn(gate_run, settings.digest(), digest, result)
    return result


def _deploy_line(dep: dict[str, Any]) -> str:
    version = dep.get("version")
    if dep.get("outcome") == "promoted":
        before = dep.get("previous_champion")
        moved = f"; version {before} is now previous" if before else ""
        return f"deployed: version {version} is champion ({dep.get('reason')}{moved})"
    if dep.get("outcome") == "unchanged":
        return f"deployed: version {version} is already the champion"
    if dep.get("outcome") == "rejected":
        return f"not deployed: {dep.get('reason')}; champion stays {dep.get('champion')}"
    if dep.get("outcome") == "awaiting_approval":
        return (
            f"awaiting approval: mlpipe approve {version}  |  mlpipe reject {version} --reason ..."
        )
    champion = dep.get("champion")
    return f"rolled back: version {version} ({dep.get('reason')}); champion stays {champion}"


def _gate_line(result: RunResult) -> str:
    mode = result.gate.get("mode", "")
    champion = result.gate.get("champion_version")
    against = f"; champion v{champion}" if champion else ""
    if result.gate_passed:
        return f"quality gate: passed ({mode}{against})"
    failed = "; ".join(result.failed_checks)
    return f"quality gate: BLOCKED ({mode}{against}): {failed} (model not registered)"


def _budget_lines(result: RunResult) -> list[str]:
    """One line per study the wall-time cap stopped: its result depends on machine speed."""
    lines = []
    for row in result.tasks:
        details = row.get("details") or {}
        if details.get("stopped_by") == "time_budget":
            lines.append(
                f"tuning: {row['task']} stopped by the time budget "
                f"({details.get('time_budget_s'):g} s) before {details.get('max_trials')} trials: "
                "not reproducible on another machine load"
            )
    return lines


def _warning_lines(result: RunResult) -> list[str]:
    """The count of the stages' warnings (from their task records, so cached tasks too), after
    the lines of a cached task: those were not printed during this run."""
    lines, count, tasks = [], 0, []
    for row in result.tasks:
        warned = (row.get("details") or {}).get("warnings") or []
        if warned:
            count += len(warned)
            tasks.append(row["task"])
            lines += warned if row["cached"] else []
    if count:
        noun = "warning" if count == 1 else "warnings"
        lines.append(f"{count} {noun} from {', '.join(tasks)} (printed above; not blocking)")
    return lines


def _status(row: dict[str, Any], result: RunResult) -> str:
    if row["cached"]:
        return "cached"
    if result.nothing_new and row["status"] == "failed" and row["task"] == result.failed_stage:
        return "no new data"  # the run stopped there on purpose: not a failure
    return row["status"]


def append_summary(result: RunResult, summary: str) -> None:
    """The summary the console printed, at the end of the run's log too (the log is what is
    attached to the MLflow run and what an alert points to)."""
    if result.log_file:
        with open(result.log_file, "a") as log:
            log.write(strip_ansi(summary).rstrip("\n") + "\n")


def format_summary(result: RunResult, settings: Settings) -> str:
    """The table and pointers printed at the end of `mlpipe run`."""
    lines = [""]
    if result.tasks:
        lines.append(
            f"{'task':<26} {'status':<11} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} "
            f"{'rows':>9} {'rows/s':>10}"
        )
    for row in result.tasks:
        status = _status(row, result)
        wall, cpu = f"{row['wall_s']:.2f}", f"{row['cpu_s']:.2f}"
        if row["cached"]:  # the figures of the run that computed it, not of this one
            wall, cpu = f"({wall})", f"({cpu})"
        rows = "" if row.get("rows") is None else f"{row['rows']:,}"
        rate = "" if row.get("rows_per_s") is None else f"{row['rows_per_s']:,.0f}"
        lines.append(
            f"{row['task']:<26} {status:<11} {wall:>8} {cpu:>8} "
            f"{row['peak_rss_mb']:>8.0f} {rows:>9} {rate:>10}"
        )
    if result.tasks and any(row["cached"] for row in result.tasks):
        lines.append("(cached: served from an earlier run; its times in brackets)")
    if result.started:
        lines.append(f"pipeline wall time: {result.wall_s:.1f}s (log: {result.log_file})")
    else:
        lines.append(f"pipeline not started: no task ran (log: {result.log_file})")
    if result.metrics:
        keys = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier")
        shown = ", ".join(f"{k} {result.metrics[k]:.4f}" for k in keys if k in result.metrics)
        lines.append(f"test metrics: {shown}")
        if "decision_threshold" in result.metrics:
            lines.append(
                f"business threshold: {result.metrics['decision_threshold']:.4f} "
                f"(expected cost {result.metrics['expected_cost']:.4f} per row)"
            )
    lines += _budget_lines(result)
    lines += _warning_lines(result)
    if result.nothing_new:
        lines.append(f"nothing new to ingest: {result.error}")
    elif result.ok:
        lines.append(_gate_line(result))
        if result.registration:
            reg = result.registration
            lines.append(
                f"registered: {reg['registered_model']} version {reg['version']} "
                f"(alias {reg['alias']}"
                + (", already registered)" if not reg.get("created") else ")")
            )
        if result.deployment:
            lines.append(_deploy_line(result.deployment))
        for name, path in result.paths.items():
            lines.append(f"{name}: {path}")
        uri = result.tracking_uri
        lines.append(
            f"MLflow UI: uv run mlflow ui --backend-store-uri {uri}  (run {result.mlflow_run_id})"
        )
    else:
        if result.mlflow_run_id:  # none when the pipeline never started
            lines.append(f"MLflow run (failed): {result.mlflow_run_id}")
        lines.append(f"FAILED at stage {result.failed_stage or 'unknown'}: {result.error}")
    return "\n".join(lines)
