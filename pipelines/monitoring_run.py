"""Run the monitoring pipeline on this machine with kfp.local, then act on it locally.

Reuses the training run's machinery (pipelines/local_tasks.py: the task environment, the per-task
rows; pipelines/progress.py: progress and log). After the pipeline: a retraining trigger the `act`
task claimed is run here with `run_local` (the training pipeline, window extended to the batch;
its gate decides about promotion); failures, timeouts and tasks over the resource thresholds raise
alerts (one per incident); the run's figures and the drift report go to MLflow.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.alerts import Alert, AlertSink, failure_alert
from components.common.artifacts import read_json, sha256_file
from components.common.config import REPO_ROOT, Settings
from components.common.runtime_env import LOGS_ENV, temporary_environ
from components.monitor.actions import TriggerStore, retrain_overrides, retrained_settings
from pipelines.kfp_local_internals import info_logging
from pipelines.local_run import RunResult, run_local
from pipelines.local_tasks import (
    cached_record,
    init_kfp_local,
    last_failure,
    task_environment,
    task_rows,
)
from pipelines.monitoring import PIPELINE_NAME, build_monitoring_pipeline
from pipelines.outputs import link_or_copy
from pipelines.progress import ProgressTee, original_stdout


@dataclass
class MonitoringRun:
    ok: bool
    wall_s: float
    run_name: str
    tasks: list[dict[str, Any]] = field(default_factory=list)
    failed_stage: str | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)  # assess' result
    actions: dict[str, Any] = field(default_factory=dict)  # act's output
    report: str = ""
    batch_path: str = ""
    retrain: RunResult | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)  # sent by this process
    log_file: str = ""
    mlflow_run_id: str | None = None

    @property
    def decision(self) -> str:
        return (self.result.get("decision") or {}).get("decision", "unknown")


def retrain_source(
    settings: Settings, batch_path: str, newest: Any, out: Path, key: str
) -> str | None:
    """A file source for the retraining run: the configured (file) source's rows before the
    batch's period plus the batch itself — so an injected or late batch is trained on as it
    arrived. None when the batch has no labels/time or the source is not a file."""
    import pandas as pd

    schema = settings.schema_
    cfg = settings.pipeline.data_ingestion
    batch = pd.read_parquet(batch_path)
    needed = schema.required_columns
    if newest is None or cfg.source_type != "file" or not set(needed) <= set(batch.columns):
        return None
    if batch[schema.label.name].isna().any():
        return None
    history = pd.read_parquet(settings.resolve_source(), columns=needed)
    history = history[history[schema.time_column] < int(newest)]
    combined = pd.concat([history, batch[needed]], ignore_index=True)
    if schema.id_column:  # a batch replaying known rows must not duplicate ids
        combined = combined.drop_duplicates(schema.id_column, keep="last")
    target = out / "data" / f"retrain-{key[:12]}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    combined.to_parquet(target, index=False)
    return str(target)


def _resource_alert(run: MonitoringRun, thresholds: Any, label: str) -> Alert | None:
    over = []
    for row in run.tasks:
        if row.get("cached"):
            continue
        if row["wall_s"] > thresholds.max_task_wall_s:
            over.append(
                f"{row['task']}: wall {row['wall_s']:.0f} s > {thresholds.max_task_wall_s:g}"
            )
        if row["peak_rss_mb"] > thresholds.max_task_peak_mb:
            over.append(
                f"{row['task']}: peak {row['peak_rss_mb']:.0f} MB > {thresholds.max_task_peak_mb:g}"
            )
    if not over:
        return None
    return Alert(
        kind="resources",
        title=f"{label} {run.run_name}: {len(over)} task figure(s) over the thresholds",
        incident=f"resources:{run.run_name}",
        reasons=over,
    )


def run_monitoring_local(
    settings: Settings,
    source: str,
    source_kind: str = "batch",
    labels: str = "",
    output_dir: str | Path = REPO_ROOT / "outputs",
    tfdv_python: str | None = None,
    retrain: bool = True,
    verbose: bool = False,
    screen: Any = None,
    use_cache: bool = True,
    sink: AlertSink | None = None,
    retrain_batch: str | None = None,
    labels_column: str = "",
) -> MonitoringRun:
    """Monitor one batch (or request log) locally; retrain if decided. Never raises for a failed
    task: see MonitoringRun. `retrain_batch`: the labelled batch (with its time column) that a
    retraining run trains on — by default the monitored rows themselves (a request log has no
    time column, so pass the batch its traffic came from). `labels_column`: the labels file's
    label column when it is not named like the schema's label."""
    screen = screen or original_stdout()
    out = Path(output_dir).resolve()
    for sub in ("data", "reports", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    run_name = f"{PIPELINE_NAME}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid() % 1000:03d}"
    mon = settings.pipeline.monitoring
    sink = sink or AlertSink.from_config(mon, out / "logs")
    # the act task alerts through the same sink: its log folder and webhook (the URL through
    # the environment, never as a parameter), its retry settings as the task's config
    alerting = {LOGS_ENV: sink.logs_dir, mon.webhook_url_env: sink.webhook_url or None}
    task_monitoring = mon.model_dump(mode="json", exclude_none=True)
    task_monitoring |= {
        "webhook_retries": sink.retries,
        "webhook_backoff_s": sink.backoff_s,
        "webhook_timeout_s": sink.timeout_s,
    }
    with temporary_environ(alerting), task_environment(out, tfdv_python) as env:
        run = _run(
            retrain,
            task_monitoring,
            settings,
            out,
            run_name,
            source,
            source_kind,
            labels,
            use_cache,
            verbose,
            screen,
            env["MLFLOW_TRACKING_URI"],
            labels_column,
        )
        retrain_key = (run.actions.get("retrain") or {}).get("key")
        if run.ok and retrain and (run.actions.get("retrain") or {}).get("status") == "claimed":
            run.retrain = _retrain(
                settings, run, out, tfdv_python, verbose, screen, retrain_key, retrain_batch
            )
    _post_run_alerts(run, mon, sink, source)
    return run


def _run(
    retrain: bool,
    monitoring: dict[str, Any],
    settings: Settings,
    out: Path,
    run_name: str,
    source: str,
    source_kind: str,
    labels: str,
    use_cache: bool,
    verbose: bool,
    screen: Any,
    tracking_uri: str,
    labels_column: str = "",
) -> MonitoringRun:
    log_file = out / "logs" / f"{run_name}.log"
    records_dir = out / "logs" / "tasks"
    started = time.time()
    t0 = time.perf_counter()
    run = MonitoringRun(True, 0.0, run_name, log_file=str(log_file))
    try:
        digest = sha256_file(source) + (sha256_file(labels) if labels else "")
    except OSError as exc:
        run.ok, run.failed_stage, run.error = False, "load_batch", f"cannot read {source}: {exc}"
        return run
    cache_root = init_kfp_local(out, use_cache)
    pipeline = build_monitoring_pipeline(
        settings, retries=settings.pipeline.runtime.local_retries, exit_handler=False
    )
    with open(log_file, "w") as log:
        tee = ProgressTee(
            log, screen, verbose=verbose, cached_record=lambda k: cached_record(cache_root, k)
        )
        try:
            with contextlib.redirect_stdout(tee), info_logging(tee), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outputs = pipeline(
                    source=str(Path(source).resolve()),
                    source_kind=source_kind,
                    labels=str(Path(labels).resolve()) if labels else "",
                    labels_column=labels_column,
                    source_digest=digest,
                    monitoring=monitoring,
                    tracking_uri=tracking_uri,
                    retrain_mode="local" if retrain else "none",
                ).outputs
        except Exception as exc:  # kfp.local raises RuntimeError("Task ... FAILURE")
            run.ok = False
            failed = last_failure(started, records_dir)
            if failed is not None:
                run.failed_stage, run.error = failed.task, failed.error
            else:
                run.error = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
        run.wall_s = round(time.perf_counter() - t0, 2)
        run.tasks = task_rows(started, records_dir, cache_root, tee.cache_hits)
    if not run.ok:
        return run
    run.result = read_json(outputs["result"].path)
    run.actions = read_json(outputs["actions"].path)
    run.batch_path = outputs["batch"].path
    report = out / "reports" / f"{run_name}-drift.html"
    link_or_copy(outputs["report"].path, report)  # the task's file, not a second copy
    run.report = str(report)
    run.mlflow_run_id = _track(settings, run, tracking_uri)
    return run


def _retrain(
    settings: Settings,
    run: MonitoringRun,
    out: Path,
    tfdv_python: str | None,
    verbose: bool,
    screen: Any,
    key: str,
    retrain_batch: str | None = None,
) -> RunResult:
    batch_path = retrain_batch or run.batch_path
    newest = run.result.get("newest")
    if retrain_batch:
        from components.monitor.batch import read_table

        col = settings.schema_.time_column
        delimiter = settings.pipeline.data_ingestion.delimiter
        times = read_table(retrain_batch, delimiter).get(col) if col else None
        newest = int(times.max()) if times is not None and len(times) else newest
    source = retrain_source(settings, batch_path, newest, out, key) if batch_path else None
    overrides = retrain_overrides(settings, newest, source)
    shown = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "as configured"
    print(
        f"mlpipe: retraining ({shown})",
        file=screen,
        flush=True,
    )
    retrained = retrained_settings(settings, overrides, newest)
    result = run_local(retrained, out, tfdv_python, verbose, screen)
    status = "succeeded" if result.ok else "failed"
    TriggerStore().update(
        key,
        status=status,
        mlflow_run_id=result.mlflow_run_id,
        blessed=result.gate_passed,
        registered=(result.registration or {}).get("version"),
    )
    return result


def _post_run_alerts(run: MonitoringRun, mon: Any, sink: AlertSink, source: str) -> None:
    alerts: list[Alert] = []
    if not run.ok:
        alerts.append(
            failure_alert(
                PIPELINE_NAME,
                run.run_name,
                run.failed_stage,
                run.error,
                source=source,
                log=run.log_file,
            )
        )
    if run.wall_s > mon.resources.max_run_wall_s:
        alerts.append(
            Alert(
                kind="timeout",
                title=f"{run.run_name} took {run.wall_s:.0f} s "
                f"(> {mon.resources.max_run_wall_s:g})",
                incident=f"timeout:{run.run_name}",
                reasons=[f"wall time {run.wall_s:.1f} s"],
            )
        )
    alert = _resource_alert(run, mon.resources, "monitoring run")
    if alert:
        alerts.append(alert)
    for alert in alerts:
        run.alerts.append({**sink.send(alert), "kind": alert.kind})
    sent = (run.actions or {}).get("alert")
    if sent:
        run.alerts.insert(0, {**sent, "kind": "monitor"})


def _track(settings: Settings, run: MonitoringRun, tracking_uri: str) -> str | None:
    """One MLflow run per monitoring run: drift/decay metrics, every task's figures, the
    decision and the drift report."""
    import mlflow

    from components.common.mlflow_utils import configure, ensure_experiment
    from components.monitor.monitor import metrics

    configure(tracking_uri)
    client = mlflow.MlflowClient()
    experiment = ensure_experiment(f"{settings.pipeline.project.experiment}-monitoring")
    result = run.result
    created = client.create_run(
        experiment,
        run_name=run.run_name,
        tags={
            "mlpipe.pipeline_run": run.run_name,
            "mlpipe.decision": result["decision"]["decision"],
            "mlpipe.batch_digest": result["batch_digest"],
            "mlpipe.champion_version": result["champion_version"],
            "mlpipe.retrain": (run.actions.get("retrain") or {}).get("status", ""),
        },
    )
    run_id = created.info.run_id
    for name, value in metrics(result).items():
        client.log_metric(run_id, name, value)
    for row in run.tasks:
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "rows_per_s"):
            if row.get(key) is not None:
                client.log_metric(run_id, f"task.{row['task']}.{key}", float(row[key]))
    client.log_artifact(run_id, run.report, artifact_path="reports")
    client.set_terminated(run_id)
    return run_id


def format_monitoring_summary(run: MonitoringRun) -> str:
    from pipelines.local_run import format_summary

    lines = []
    table = RunResult(run.ok, run.wall_s, tasks=run.tasks, log_file=run.log_file)
    lines += format_summary(table, None).splitlines()[:-2]  # the task table and wall time
    if not run.ok:
        lines.append(f"FAILED at stage {run.failed_stage or 'unknown'}: {run.error}")
        return "\n".join(lines)
    from components.monitor.monitor import top_drift

    res = run.result
    top = ", ".join(f"{n} {m['value']:.4f}" for n, m in top_drift(res["drift"], 3))
    lines.append(f"batch: {res['rows']:,} rows (digest {res['batch_digest'][:12]})")
    lines.append(f"champion: {res['registered_model']} v{res['champion_version']}")
    lines.append(
        f"drift (top, metric value): {top}; drifted: {res['decision']['drifted'] or 'none'}"
    )
    if res.get("decay"):
        d = res["decay"]
        lines.append(
            f"on labels: roc_auc {d['roc_auc']} (evaluation {d['reference_roc_auc']}), expected "
            f"cost {d['expected_cost']} (evaluation {d['reference_expected_cost']})"
        )
    lines.append(f"decision: {res['decision']['decision']}")
    for reason in res["decision"]["reasons"][:10]:
        lines.append(f"  - {reason}")
    for alert in run.alerts:
        webhook = (alert.get("webhook") or {}).get("status", "")
        lines.append(f"alert ({alert['kind']}): {alert['status']} {webhook}".rstrip())
    retrain = run.actions.get("retrain") or {}
    lines.append(f"retraining trigger: {retrain.get('status')}")
    if run.retrain is not None:
        r = run.retrain
        reg = r.registration or {}
        verdict = "passed" if r.gate_passed else ("BLOCKED" if r.ok else "FAILED")
        lines.append(
            f"retraining run: {'ok' if r.ok else 'failed'}; gate {verdict}"
            + (f"; registered version {reg.get('version')} ({reg.get('alias')})" if reg else "")
        )
    lines.append(f"drift report: {run.report}")
    lines.append(f"MLflow run: {run.mlflow_run_id}")
    return "\n".join(lines)
