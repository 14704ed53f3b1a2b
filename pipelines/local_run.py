"""Run the training pipeline on this machine with kfp.local (SubprocessRunner, caching on).

Owns what a local run needs around the pipeline: the outputs/ folders, the MLflow parent run, the
environment the tasks inherit (not part of the cache key), progress on screen and the full log on
disk, the per-task summary, and copying the model and reports to outputs/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.config import REPO_ROOT, Settings
from components.common.errors import DataError
from components.common.mlflow_utils import PARENT_RUN_ENV, configure, ensure_experiment
from components.common.recorder import RECORDS_ENV, TaskRecord, latest_records, read_records
from components.ingest.ingest import source_digest
from pipelines.progress import ProgressTee, original_stdout
from pipelines.training import PIPELINE_NAME, build_pipeline

TFDV_PYTHON_ENV = "MLPIPE_TFDV_PYTHON"
DEFAULT_TFDV_PYTHON = REPO_ROOT / ".venvs" / "tfdv" / "bin" / "python"
TASK_ORDER = ["ingest", "validate", "features", "train", "evaluate", "track", "register"]


@dataclass
class RunResult:
    ok: bool
    wall_s: float
    tasks: list[dict[str, Any]] = field(default_factory=list)
    failed_stage: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    gate_passed: bool | None = None
    registration: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    paths: dict[str, str] = field(default_factory=dict)
    log_file: str = ""


def _prepare_environment(out: Path, tfdv_python: str | None) -> dict[str, str]:
    env = {
        RECORDS_ENV: str(out / "logs" / "tasks"),
        TFDV_PYTHON_ENV: tfdv_python
        or os.environ.get(TFDV_PYTHON_ENV)
        or str(DEFAULT_TFDV_PYTHON),
        "MLFLOW_TRACKING_URI": configure(),
        # keep BLAS/OpenMP from oversubscribing the 2 cores while a stage sets its own threads
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    return env


def _start_parent_run(settings: Settings, digest: str, run_name: str) -> str:
    import mlflow

    experiment_id = ensure_experiment(settings.pipeline.project.experiment)
    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=run_name,
        tags={
            "mlpipe.pipeline_run": run_name,
            "mlpipe.data_digest": digest,
            "mlpipe.config_hash": settings.digest(),
            "mlpipe.runner": "kfp.local",
        },
    )
    return run.info.run_id


def _task_rows(since: float, records_dir: Path, cache_hits: list[str]) -> list[dict[str, Any]]:
    fresh = {r.task: r for r in read_records(records_dir, since=since)}
    older = latest_records(records_dir)
    rows = []
    for task in TASK_ORDER:
        rec: TaskRecord | None = fresh.get(task)
        cached = rec is None and task in cache_hits
        if cached:
            rec = older.get(task)
        if rec is None:
            continue
        rows.append({**rec.to_dict(), "cached": cached})
    return rows


def _failure(since: float, records_dir: Path) -> tuple[str | None, str | None]:
    for rec in reversed(read_records(records_dir, since=since)):
        if rec.status == "failed":
            return rec.task, rec.error
    return None, None


def _copy_outputs(outputs: Any, out: Path, run_name: str) -> dict[str, str]:
    paths = {}
    targets = {
        "model": out / "models" / run_name,
        "data": out / "data" / f"{run_name}.parquet",
        "evaluation_report": out / "reports" / f"{run_name}-evaluation.html",
        "validation_report": out / "reports" / f"{run_name}-validation.html",
    }
    for name, target in targets.items():
        source = Path(getattr(outputs, name).path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, target)
        paths[name] = str(target)
    return paths


def _champion(settings: Settings) -> dict[str, Any] | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mv = mlflow.MlflowClient().get_model_version_by_alias(
            settings.pipeline.project.registered_model, "champion"
        )
    except MlflowException:
        return None
    return {"version": mv.version, "run_id": mv.run_id, "tags": dict(mv.tags)}


def run_local(
    settings: Settings,
    output_dir: str | Path = REPO_ROOT / "outputs",
    tfdv_python: str | None = None,
    verbose: bool = False,
    screen: Any = None,
) -> RunResult:
    """Run the training pipeline locally. Never raises for a failed stage: see RunResult."""
    import mlflow
    from kfp import local

    screen = screen or original_stdout()
    out = Path(output_dir).resolve()
    for sub in ("data", "models", "reports", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    run_name = f"{PIPELINE_NAME}-{time.strftime('%Y%m%d-%H%M%S')}"
    log_file = out / "logs" / f"{run_name}.log"
    records_dir = out / "logs" / "tasks"
    started = time.time()
    t0 = time.perf_counter()

    _prepare_environment(out, tfdv_python)
    source = settings.resolve_source()
    try:
        digest = source_digest(source)
    except DataError as exc:
        return RunResult(False, 0.0, failed_stage="ingest", error=str(exc), log_file=str(log_file))

    parent = _start_parent_run(settings, digest, run_name)
    os.environ[PARENT_RUN_ENV] = parent
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(out / "kfp"),
        raise_on_error=True,
        enable_caching=True,
    )
    pipeline = build_pipeline(settings, retries=settings.pipeline.runtime.local_retries)
    result = RunResult(True, 0.0, mlflow_run_id=parent, log_file=str(log_file))

    with open(log_file, "w") as log:
        tee = ProgressTee(log, screen, verbose=verbose)
        try:
            with contextlib.redirect_stdout(tee), warnings.catch_warnings():
                # resources, retries and images have no effect under kfp.local: say it once, in docs
                warnings.simplefilter("ignore")
                outputs = pipeline(source=source, source_digest=digest)
        except Exception as exc:  # kfp.local raises RuntimeError("Task ... FAILURE")
            result.ok = False
            result.failed_stage, result.error = _failure(started, records_dir)
            if result.error is None:
                result.error = str(exc).splitlines()[-1] if str(exc) else type(exc).__name__
                result.failed_stage = next(
                    (t for t in TASK_ORDER if f"'{t}'" in str(exc) or t in str(exc)), None
                )
        result.wall_s = round(time.perf_counter() - t0, 2)
        result.tasks = _task_rows(started, records_dir, tee.cache_hits)

    client = mlflow.MlflowClient()
    for row in result.tasks:
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "rows_per_s"):
            if row.get(key) is not None:
                client.log_metric(parent, f"task.{row['task']}.{key}", float(row[key]))
        client.log_metric(parent, f"task.{row['task']}.cached", float(row["cached"]))
    client.log_metric(parent, "pipeline.wall_s", result.wall_s)
    client.log_artifact(parent, str(log_file), artifact_path="logs")

    if not result.ok:
        client.set_tag(parent, "mlpipe.failed_stage", result.failed_stage or "unknown")
        client.set_tag(parent, "mlpipe.error", (result.error or "")[:5000])
        client.set_terminated(parent, status="FAILED")
        return result

    result.metrics = {
        k: float(v)
        for k, v in outputs.metrics.metadata.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    result.gate_passed = bool(outputs.metrics.metadata.get("passed", False))
    result.paths = _copy_outputs(outputs, out, run_name)
    champion = _champion(settings)
    if result.gate_passed and champion:
        result.registration = champion
    client.set_terminated(parent, status="FINISHED")
    return result


def format_summary(result: RunResult, settings: Settings) -> str:
    """The table and pointers printed at the end of `mlpipe run`."""
    lines = ["", f"{'task':<10} {'status':<9} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} "
             f"{'rows':>9} {'rows/s':>10}"]
    for row in result.tasks:
        status = "cached" if row["cached"] else row["status"]
        rows = "" if row.get("rows") is None else f"{row['rows']:,}"
        rate = "" if row.get("rows_per_s") is None else f"{row['rows_per_s']:,.0f}"
        lines.append(
            f"{row['task']:<10} {status:<9} {row['wall_s']:>8.2f} {row['cpu_s']:>8.2f} "
            f"{row['peak_rss_mb']:>8.0f} {rows:>9} {rate:>10}"
        )
    lines.append(f"pipeline wall time: {result.wall_s:.1f}s (log: {result.log_file})")
    if result.metrics:
        keys = ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss")
        shown = ", ".join(f"{k} {result.metrics[k]:.4f}" for k in keys if k in result.metrics)
        lines.append(f"test metrics: {shown}")
    if result.ok:
        gate = "passed" if result.gate_passed else "FAILED (model not registered)"
        lines.append(f"quality gate: {gate}")
        if result.registration:
            lines.append(
                f"registered: {settings.pipeline.project.registered_model} "
                f"version {result.registration['version']} (alias champion)"
            )
        for name, path in result.paths.items():
            lines.append(f"{name}: {path}")
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        lines.append(f"MLflow UI: mlflow ui --backend-store-uri {uri}  (run {result.mlflow_run_id})")
    else:
        lines.append(f"FAILED at stage {result.failed_stage or 'unknown'}: {result.error}")
    return "\n".join(lines)


def main_exit_code(result: RunResult) -> int:
    return 0 if result.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: mlpipe run")
