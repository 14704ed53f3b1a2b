"""What a monitoring decision sets off: one alert per incident and, on `retrain`, one retraining
trigger per batch (idempotent: the same batch never starts two training runs).

The trigger is claimed in a small JSON-lines store under the state directory (MLPIPE_STATE_DIR,
outputs/state locally; shared storage on a cluster) with a lock, keyed by the batch's content
digest. Who then runs the training pipeline depends on where we are: locally the CLI runs it with
`run_local` once the monitoring pipeline returned (`retrain_overrides` gives the window), on a
cluster `start_kfp_run` creates a KFP run of the uploaded training pipeline.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from components.common.alerts import Alert, AlertSink
from components.common.config import REPO_ROOT

STATE_ENV = "MLPIPE_STATE_DIR"
LOGS_ENV = "MLPIPE_LOGS_DIR"
KIND_ORDER = ("performance_decay", "data_anomaly", "drift")


def state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or REPO_ROOT / "outputs" / "state")


def logs_dir() -> Path:
    return Path(os.environ.get(LOGS_ENV) or REPO_ROOT / "outputs" / "logs")


class TriggerStore:
    """Retraining triggers claimed so far, one JSON line each."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else state_dir() / "monitor" / "retrain_triggers.jsonl"

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def claim(self, key: str, record: dict[str, Any]) -> bool:
        """True if `key` was not claimed before (and now is)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if any(e.get("key") == key for e in self.entries()):
                return False
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"key": key, "ts": time.time(), **record}, default=str) + "\n")
        return True

    def update(self, key: str, **fields: Any) -> None:
        """Record what became of a claimed trigger (its run id, status)."""
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = [{**e, **fields} if e.get("key") == key else e for e in self.entries()]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(e, default=str) + "\n" for e in entries))
            os.replace(tmp, self.path)


def incident_key(result: dict[str, Any]) -> str:
    """One incident per batch: re-running it (even after a retrained champion took over, which
    still sees the same drift against its training window) does not alert again."""
    return f"monitor:{result['batch_digest'][:16]}"


def build_alert(result: dict[str, Any]) -> Alert | None:
    """The incident's one alert (every finding of the batch in it), or None for `none`."""
    decision = result["decision"]
    if decision["decision"] == "none":
        return None
    kinds = decision["kinds"]
    kind = next((k for k in KIND_ORDER if k in kinds), "drift")
    parts = []
    if "data_anomaly" in kinds:
        parts.append(f"{len(result['anomalies'])} blocking anomalies")
    if "performance_decay" in kinds:
        parts.append(f"champion decayed (AUC {result['decay']['roc_auc']})")
    if "drift" in kinds:
        parts.append(f"{len(decision['drifted'])} features drifted")
    ctx = result.get("context", {})
    return Alert(
        kind=kind,
        title=f"batch {ctx.get('batch') or result['batch_digest'][:12]}: {'; '.join(parts)}"
        f" -> {decision['decision']}",
        incident=incident_key(result),
        reasons=list(decision["reasons"]),
        severity="critical" if kind != "drift" else "warning",
        decision=decision["decision"],
        context={
            "model": f"{result['registered_model']} v{result['champion_version']}",
            "rows": result["rows"],
            "batch_digest": result["batch_digest"][:16],
            "report": ctx.get("report"),
        },
    )


def act(
    result: dict[str, Any],
    sink: AlertSink,
    triggers: TriggerStore | None = None,
    retrain_enabled: bool = True,
) -> dict[str, Any]:
    """Send the incident's alert; claim the retraining trigger on `retrain` (unless retraining
    is disabled: then nothing is claimed, so a later run may still retrain). Never raises for
    a failing webhook (the sink records it)."""
    out: dict[str, Any] = {"decision": result["decision"]["decision"], "alert": None}
    alert = build_alert(result)
    if alert is not None:
        out["alert"] = sink.send(alert)
    retrain = {"status": "not needed"}
    if result["decision"]["decision"] == "retrain" and not retrain_enabled:
        retrain = {"status": "disabled"}
    elif result["decision"]["decision"] == "retrain":
        triggers = triggers or TriggerStore()
        key = result["batch_digest"]
        claimed = triggers.claim(
            key,
            {
                "incident": incident_key(result),
                "champion_version": result["champion_version"],
                "newest": result.get("newest"),
                "status": "claimed",
            },
        )
        retrain = {"status": "claimed" if claimed else "duplicate", "key": key}
    out["retrain"] = retrain
    return out


def retrain_overrides(settings: Any, newest: Any, source: str | None = None) -> dict[str, Any]:
    """Config overrides of the retraining run: the ingestion window ends at the batch's newest
    time value; the split trains on everything before it and tests on it — the new period is the
    gate's test set, scored by both the champion and the challenger (neither trained on it)."""
    cfg = settings.pipeline
    overrides: dict[str, Any] = {}
    if source:
        overrides["data_ingestion.source_url"] = source
    if newest is None or cfg.feature_engineering.split.method != "time":
        return overrides
    newest = int(newest)
    window = cfg.data_ingestion.window
    start = window.start if window else cfg.feature_engineering.split.train_window[0]
    years = cfg.monitoring.retrain_window_years
    if years:
        start = max(start, newest - years)
    overrides["data_ingestion.window"] = {"start": start, "end": newest}
    overrides["feature_engineering.split.train_window"] = [start, newest - 1]
    overrides["feature_engineering.split.test_window"] = [newest, newest]
    return overrides


def start_kfp_run(
    client: Any, settings: Any, overrides: dict[str, Any], key: str, experiment: str
) -> dict:
    """Create a KFP run of the training pipeline with the retraining window (cluster mode)."""
    from pipelines.kfp_package import compile_package

    package = compile_package(settings, "training")
    pipeline, version, _ = client.ensure_pipeline_version(
        package.yaml_bytes, package.name, package.version_name, package.description
    )
    exp = client.ensure_experiment(experiment)
    params: dict[str, Any] = {}
    cfg = settings.pipeline
    if "data_ingestion.window" in overrides:
        ingestion = cfg.data_ingestion.model_dump(
            mode="json", exclude_none=True, exclude={"schedule"}
        )
        ingestion["window"] = overrides["data_ingestion.window"]
        features = cfg.feature_engineering.model_dump(mode="json", exclude_none=True)
        features["split"]["train_window"] = overrides["feature_engineering.split.train_window"]
        features["split"]["test_window"] = overrides["feature_engineering.split.test_window"]
        params = {"ingestion": ingestion, "feature_engineering": features}
    return client.create_run(
        f"mlpipe-retrain-{key[:12]}",
        pipeline["pipeline_id"],
        version["pipeline_version_id"],
        exp["experiment_id"],
        params,
        description=f"retraining triggered by monitoring (batch {key[:16]})",
    )


def start_retraining_on_kfp(result: dict[str, Any]) -> dict[str, Any]:
    """In a cluster's act task: start the training pipeline for this batch through the KFP API
    (connection from the pod's environment: KFP_HOST, the service-account token)."""
    from components.common.config import load_settings
    from components.common.kfp_client import KfpClient

    settings = load_settings()
    triggers = TriggerStore()
    overrides = retrain_overrides(settings, result.get("newest"))
    client = KfpClient.from_env()
    run = start_kfp_run(
        client, settings, overrides, result["batch_digest"], settings.pipeline.project.experiment
    )
    triggers.update(result["batch_digest"], status="started", run_id=run.get("run_id"))
    return {"run_id": run.get("run_id"), "state": run.get("state")}
