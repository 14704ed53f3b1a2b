"""Per-task figures: wall time, CPU time, peak memory, rows and rows/s, status and error, and the
task process's start-up before its work (interpreter, kfp executor, imports: `startup_s`).

Each stage wraps its work in `record_task(...)`. The record goes into the stage's output artifact
metadata (where KFP shows it) and, when `MLPIPE_RECORDS_DIR` is set, into a JSON file there: the
local CLI reads those files for its summary. The variable is inherited from the CLI's environment,
not set on the task, so it never enters kfp.local's cache key.

A KFP task process whose records all succeeded ends without the interpreter's teardown (see
`_exit_without_teardown`).

A failed task also leaves its record in the state store under `runs/<run id>/failures/` when it
knows its run (`MLPIPE_RUN_ID`, which the compiled spec mounts from the pod's label): the exit
handler task of a cluster run reads it there to say which task failed and why.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import resource
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECORDS_ENV = "MLPIPE_RECORDS_DIR"
# set by the command KFP generates for every lightweight component's task (local and cluster)
KFP_TASK_ENV = "_KFP_RUNTIME"


@dataclass
class TaskRecord:
    task: str
    execution_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: float = field(default_factory=time.time)
    status: str = "running"
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    # a KFP task's process start to its work: interpreter, kfp executor, the stage's imports.
    # Not part of wall_s (the task's own time); None outside a KFP task process.
    startup_s: float | None = None
    rows: int | None = None
    rows_per_s: float | None = None
    error: str | None = None
    error_type: str | None = None
    subject: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # stage results the CLI shows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc; 10 ms resolution), None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "(comm)": fields[0] is field 3
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def _startup_s() -> float | None:
    # in a test or the CLI, the process age says nothing of a task
    if not _in_task_process():
        return None
    age = _process_age_s()
    return None if age is None else round(age, 2)


# this process's records: did one fail; is the exit callback registered
_process = {"failed": False, "exit_hooked": False}


def _exit_without_teardown() -> None:
    """At exit of a KFP task process that succeeded: flush logs and stdio, then `os._exit(0)`.

    Tearing down the ~2,000 modules mlflow, pandas or scikit-learn load takes 0.5-1 s after the
    task's work and its executor output are written (measured: 0.57 s after `import mlflow`, ~1 s
    after a query of the SQLite store), and a pipeline pays it once per task. Registered when the
    first record starts, so atexit callbacks registered later by the stage's imports still run
    before it (atexit is last-in, first-out). It skips out, leaving the exit status to Python, when
    a record of this process failed or an exception reached the top level (kfp's executor raises
    on failure; Python sets `sys.last_value` before atexit callbacks run)."""
    if _process["failed"] or getattr(sys, "last_value", None) is not None:
        return
    logging.shutdown()  # its own atexit callback came earlier, so would not run
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(0)


def _in_task_process() -> bool:
    # only a task's own process: a test or the CLI runs stages in-process and must end normally
    return os.environ.get(KFP_TASK_ENV, "").lower() == "true"


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux; a child (the tfdv subprocess) may peak higher than us.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


@contextmanager
def record_task(task: str, records_dir: str | None = None) -> Iterator[TaskRecord]:
    """Measure the block; on an exception, record it (message, type, subject) and re-raise."""
    record = TaskRecord(task=task, startup_s=_startup_s())
    if _in_task_process() and not _process["exit_hooked"]:
        atexit.register(_exit_without_teardown)
        _process["exit_hooked"] = True
    wall0, cpu0 = time.perf_counter(), _cpu_seconds()
    try:
        yield record
        record.status = "succeeded"
    except BaseException as exc:
        _process["failed"] = True
        record.status = "failed"
        record.error = str(exc) or type(exc).__name__
        record.error_type = type(exc).__name__
        record.subject = getattr(exc, "subject", None)
        if not getattr(exc, "stage", None):
            # unexpected: keep where it happened (the trace's last frame) for the summary
            frame = traceback.format_exc(limit=-1).strip().splitlines()[-2].strip()
            record.error = f"{record.error} ({frame})"
        raise
    finally:
        record.wall_s = round(time.perf_counter() - wall0, 3)
        record.cpu_s = round(_cpu_seconds() - cpu0, 3)
        record.peak_rss_mb = round(_peak_rss_mb(), 1)
        if record.rows is not None and record.wall_s > 0:
            record.rows_per_s = round(record.rows / record.wall_s, 1)
        _write(record, records_dir or os.environ.get(RECORDS_ENV))
        if record.status == "failed":
            _record_failure(record)


def _write(record: TaskRecord, records_dir: str | None) -> None:
    if not records_dir:
        return
    folder = Path(records_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{record.task}-{record.execution_id}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2))
    os.replace(tmp, target)


def failures_root(run_id: str, state: str) -> str:
    return f"{state.rstrip('/')}/runs/{run_id}/failures"


def _record_failure(record: TaskRecord) -> None:
    """Best effort: never hides the task's own error."""
    from components.common import runtime_env

    run = runtime_env.run_id()
    if not run:
        return
    try:
        state = runtime_env.state_dir(record.task)
        if state:
            from components.common.keyed_store import KeyedStore

            store = KeyedStore(failures_root(run, state))
            store.create(f"{record.task}-{record.execution_id}", record.to_dict())
    except Exception as exc:
        print(f"mlpipe: could not record the failure in the state store: {exc}", file=sys.stderr)


def run_failures(run_id: str, state: str) -> list[TaskRecord]:
    """The failure records of a run, oldest first."""
    from components.common.keyed_store import KeyedStore

    docs = KeyedStore(failures_root(run_id, state)).entries()
    fields = set(TaskRecord.__dataclass_fields__)
    records = [TaskRecord(**{k: v for k, v in d.items() if k in fields}) for d in docs]
    return sorted(records, key=lambda r: r.started_at)


def read_records(records_dir: str | Path, since: float = 0.0) -> list[TaskRecord]:
    """Records written at or after `since` (epoch seconds), oldest first."""
    out = []
    for file in Path(records_dir).glob("*.json"):
        try:
            data = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("started_at", 0) >= since:
            out.append(TaskRecord(**data))
    return sorted(out, key=lambda r: r.started_at)
