"""What a monitoring decision sets off: one alert per incident and, on `retrain`, one retraining
trigger per batch (idempotent: the same batch never starts two training runs).

The trigger is claimed in the state store (`runtime_env.state_dir`: outputs/state locally, the
object store on a cluster), one document per batch digest created atomically (`KeyedStore`), so
two monitoring runs of the same batch cannot both claim it. Who then runs the training pipeline
depends on where we are: locally the CLI runs it with `run_local` once the monitoring pipeline
returned; on a cluster the act task creates a KFP run of the training pipeline version that
`mlpipe submit`/`schedule` uploaded beside the monitoring pipeline (its ids and the settings
arrive in the `retraining` parameter: nothing is compiled in the pod). Both change the settings
with `retrain_overrides` through `config.override_settings` (the checks of `--set`).
"""

from __future__ import annotations

import time
from typing import Any

from components.common import runtime_env
from components.common.alerts import Alert, AlertSink
from components.common.errors import StageError

KIND_ORDER = ("performance_decay", "data_anomaly", "drift")
STAGE = "act"


def state_root() -> str:
    """The state store: MLPIPE_STATE_DIR (required in cluster mode), else outputs/state."""
    return runtime_env.state_dir(STAGE) or str(runtime_env.LOCAL_OUTPUTS / "state")


class TriggerStore:
    """Retraining triggers claimed so far, one document per batch digest."""

    def __init__(self, root: str | None = None) -> None:
        from components.common.keyed_store import KeyedStore

        self.store = KeyedStore(root or f"{state_root().rstrip('/')}/monitor/retrain_triggers")

    def entries(self) -> list[dict[str, Any]]:
        return self.store.entries()

    def claim(self, key: str, record: dict[str, Any]) -> bool:
        """True if `key` was not claimed before (and now is)."""
        return self.store.create(key, {"ts": time.time(), **record})

    def update(self, key: str, **fields: Any) -> None:
        """Record what became of a claimed trigger (its run id, status)."""
        self.store.update(key, **fields)


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
    a failing webhook (the sink records the alert as pending and the next run resends it)."""
    out: dict[str, Any] = {"decision": result["decision"]["decision"], "alert": None}
    alert = build_alert(result)
    if alert is not None:
        out["alert"] = sink.send(alert)  # resends earlier pending alerts first
    else:
        out["resent"] = sink.resend_pending()  # a quiet run still delivers what waited
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
    """Config overrides of a retraining run (+ a local run's `source`): ingestion ends at the
    batch's newest time value; the split trains on everything before it and tests on it — the
    new period is the gate's test set, scored by both the champion and the challenger (neither
    trained on it). No windows when the split is not by time or the batch has no time values."""
    cfg = settings.pipeline
    split, window = cfg.feature_engineering.split, cfg.data_ingestion.window
    overrides: dict[str, Any] = {"data_ingestion.source_url": source} if source else {}
    if newest is None or split.method != "time":
        return overrides
    newest = int(newest)
    start = int(window.start) if window else int(split.train_window[0])
    if cfg.monitoring.retrain_window_years:
        start = max(start, newest - cfg.monitoring.retrain_window_years)
    return overrides | {
        "data_ingestion.window": {"start": start, "end": newest},
        "feature_engineering.split.train_window": [start, newest - 1],
        "feature_engineering.split.test_window": [newest, newest],
    }


def retrained_settings(settings: Any, overrides: dict[str, Any], newest: Any) -> Any:
    """`settings` with a retraining's `overrides` (from `retrain_overrides`), checked as `--set`
    is; a window the config refuses is blamed on the retraining on data up to `newest`, not on
    a flag nobody gave."""
    from components.common.config import override_settings

    return override_settings(settings, overrides, by=f"retraining on data up to {newest}:")


def retraining_parameters(retraining: dict[str, Any], newest: Any) -> dict[str, Any]:
    """The training pipeline's parameters for a retraining run on a cluster: derived, like the
    compiled defaults, from the submitted settings (in `retraining`) with the new windows; so
    the run's `config` and `config_hash` are those of the windows it trains on."""
    from components.common.config import Settings
    from components.common.pipeline_params import training_parameters

    settings = Settings.model_validate_json(retraining["settings"])
    return training_parameters(
        retrained_settings(settings, retrain_overrides(settings, newest), newest)
    )


def start_retraining_on_kfp(result: dict[str, Any], retraining: dict[str, Any]) -> dict[str, Any]:
    """In a cluster's act task: create a KFP run of the training pipeline version named in
    `retraining` (uploaded by `mlpipe submit`/`schedule`) with the new windows (a window that no
    longer passes the config's checks fails the task). Connection from
    the pod's environment (KFP_HOST, the in-cluster token: `KfpClient.from_env`)."""
    from components.common.kfp_client import KfpClient

    if not all(retraining.get(k) for k in ("pipeline_id", "version_id", "settings")):
        raise StageError(
            STAGE,
            "retraining on the cluster needs the training pipeline's version: submit or schedule "
            "the monitoring pipeline with `mlpipe submit|schedule --pipeline monitoring` (it "
            "uploads the training pipeline and passes its ids), or pass the `retraining` "
            "parameter with pipeline_id, version_id and settings",
            subject="retraining",
        )
    key = result["batch_digest"]
    client = KfpClient.from_env()
    experiment = client.ensure_experiment(retraining.get("experiment") or "Default")
    run = client.create_run(
        f"mlpipe-retrain-{key[:12]}",
        retraining["pipeline_id"],
        retraining["version_id"],
        experiment["experiment_id"],
        retraining_parameters(retraining, result.get("newest")),
        description=f"retraining triggered by monitoring (batch {key[:16]})",
        service_account=retraining.get("service_account") or None,
    )
    TriggerStore().update(key, status="started", run_id=run.get("run_id"))
    return {"run_id": run.get("run_id"), "state": run.get("state")}
