"""The exit handler's work: when a pipeline run did not succeed, send one failure alert that
names the run, the task that failed and its error, through the same sink as every other alert.

On a cluster the task learns what failed from the failure records that the failed task left in
the state store (`recorder.run_failures`: keyed by the KFP run id, which the compiled spec mounts
from the pod's `pipeline/runid` label); the final status that KFP hands the exit task says only
whether the run's tasks succeeded. A failure that left no record (a pod killed for memory, an
image that does not start) is still alerted, with KFP's own message.
"""

from __future__ import annotations

from typing import Any

from components.common import runtime_env
from components.common.alerts import AlertSink, failure_alert
from components.common.config import MonitoringConfig
from components.common.recorder import run_failures

STAGE = "notify"


def run(
    state: str,
    pipeline: str,
    run_name: str,
    monitoring: dict[str, Any],
    status_message: str | None = None,
    sink: AlertSink | None = None,
) -> dict[str, Any]:
    """Alert unless `state` is SUCCEEDED. Returns what happened (never raises for a webhook)."""
    if state == "SUCCEEDED":
        return {"state": state, "alert": None}
    run_id = runtime_env.run_id()
    records = []
    store = runtime_env.state_dir(STAGE)
    if run_id and store:
        records = [r for r in run_failures(run_id, store) if r.task != STAGE]
    first = records[0] if records else None
    error = first.error if first else status_message
    if state not in ("FAILED", "") and not first:
        error = f"run ended {state}" + (f": {status_message}" if status_message else "")
    alert = failure_alert(
        pipeline,
        run_name or run_id or "unknown run",
        first.task if first else None,
        error,
        run_id=run_id,
        state=state,
        failed_tasks=", ".join(r.task for r in records) or None,
    )
    sink = sink or AlertSink.from_config(MonitoringConfig.model_validate(monitoring))
    return {
        "state": state,
        "failed_tasks": [r.task for r in records],
        "alert": sink.send(alert),
    }
