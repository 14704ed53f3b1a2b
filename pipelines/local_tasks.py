"""What both local runners (the training run, pipelines/local_run.py, and the monitoring run,
pipelines/monitoring_run.py) share around kfp.local: starting it, the environment its tasks
inherit, and the per-task rows read from the task records and from kfp.local's cache entries
(read through pipelines/kfp_local_internals.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.common.artifacts import restore_ints
from components.common.mlflow_utils import default_tracking_uri
from components.common.recorder import RECORDS_ENV, TaskRecord, read_records
from components.common.runtime_env import STATE_ENV, temporary_environ
from components.common.tfdv_env import LOCAL_TFDV_PYTHON, TFDV_PYTHON_ENV
from pipelines.kfp_local_internals import cache_entry


def init_kfp_local(out: Path, use_cache: bool) -> Path:
    """kfp.local with the SubprocessRunner in this interpreter, task outputs and the cache under
    `out/kfp`; returns the cache folder."""
    from kfp import local

    cache_root = out / "kfp" / ".kfp_cache"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(out / "kfp"),
        cache_root=str(cache_root),
        raise_on_error=True,
        enable_caching=use_cache,
    )
    return cache_root


@contextlib.contextmanager
def task_environment(out: Path, tfdv_python: str | None) -> Iterator[dict[str, str]]:
    """What the tasks inherit from this process during the run (inherited, so not part of the
    cache key); the previous environment comes back afterwards."""
    env = {
        RECORDS_ENV: str(out / "logs" / "tasks"),
        # watermarks and the dataset catalogue (incremental loads, `mlpipe data list`)
        STATE_ENV: os.environ.get(STATE_ENV) or str(out / "state"),
        TFDV_PYTHON_ENV: tfdv_python or os.environ.get(TFDV_PYTHON_ENV) or str(LOCAL_TFDV_PYTHON),
        # the MLflow store lives beside the run's other outputs unless the user points elsewhere
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI")
        or default_tracking_uri(out / "mlflow"),
        "PYTHONUNBUFFERED": "1",
    }
    with temporary_environ(env):
        yield env


STAGE_ORDER = [
    "ingest",
    "validate",
    "features",
    "tune",
    "train",
    "select",
    "evaluate",
    "track",
    "gate",
    "register",
    "deploy",
    "commit",
    # the monitoring pipeline (pipelines/monitoring.py)
    "load_batch",
    "champion_reference",
    "batch_statistics",
    "assess",
    "act",
]


def cached_record(cache_root: Path, key_prefix: str) -> TaskRecord | None:
    """The figures of a task served from kfp.local's cache: its cache entry holds the output
    artifacts, and our stages put their task record in their outputs' metadata."""
    for value in (cache_entry(cache_root, key_prefix) or {}).values():
        task = value.get("metadata", {}).get("task") if isinstance(value, dict) else None
        if isinstance(task, dict):  # back through KFP: 137911 rows came back as 137911.0
            return TaskRecord(**restore_ints(task))
    return None


def task_rows(
    since: float, records_dir: Path, cache_root: Path, cache_hits: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """One row per task of the run, in pipeline order: the tasks that ran (their records since
    `since`) and those served from the cache (their figures from the cache entry)."""
    rows = [{**r.to_dict(), "cached": False} for r in read_records(records_dir, since=since)]
    for name, key in cache_hits:
        rec = cached_record(cache_root, key)
        rows.append({**(rec or TaskRecord(task=name)).to_dict(), "cached": True})

    def order(row: dict[str, Any]) -> tuple[int, str]:
        base = row["task"].split("-")[0]
        return (STAGE_ORDER.index(base) if base in STAGE_ORDER else len(STAGE_ORDER), row["task"])

    return sorted(rows, key=order)


def last_failure(since: float, records_dir: Path) -> TaskRecord | None:
    """The last task that failed since `since` (its record says which stage and why)."""
    for rec in reversed(read_records(records_dir, since=since)):
        if rec.status == "failed":
            return rec
    return None
