"""Unit tests of components/monitor/actions.py: the incident's one alert, the retraining trigger
claimed once per batch in the state store, the retraining windows, and the cluster path's refusal
without the training pipeline's ids. (`retrained_settings` is changing on another branch.)"""

from __future__ import annotations

import json

import pytest

from components.common.alerts import AlertSink
from components.common.errors import StageError
from components.monitor import actions


def _result(digest="d" * 64, verdict="retrain", drifted=("AGEP", "MAR")):
    reasons = [f"{n}: drifted" for n in drifted]
    return {
        "batch_digest": digest,
        "rows": 3000,
        "registered_model": "acs-employment",
        "champion_version": "2",
        "anomalies": [],
        "decay": None,
        "newest": 2017,
        "decision": {
            "decision": verdict,
            "reasons": reasons if verdict != "none" else [],
            "kinds": ["drift"] if verdict != "none" else [],
            "drifted": list(drifted) if verdict != "none" else [],
        },
        "context": {"batch": "b2017.parquet"},
    }


def test_one_alert_and_one_trigger_per_incident(tmp_path):
    sink = AlertSink(tmp_path / "logs")
    triggers = actions.TriggerStore(str(tmp_path / "triggers"))
    first = actions.act(_result(), sink, triggers)
    assert first["alert"]["status"] == "sent" and first["retrain"]["status"] == "claimed"
    (entry,) = sink.entries()
    assert entry["kind"] == "drift" and len(entry["reasons"]) == 2  # grouped: one alert
    again = actions.act(_result(), sink, triggers)
    assert again["alert"]["status"] == "duplicate" and again["retrain"]["status"] == "duplicate"
    assert len(sink.entries()) == 1 and len(triggers.entries()) == 1
    calm = actions.act(_result("e" * 64, "none"), sink, triggers)
    assert calm["alert"] is None and calm["retrain"]["status"] == "not needed"
    off = actions.act(_result("f" * 64), sink, triggers, retrain_enabled=False)
    assert off["retrain"]["status"] == "disabled" and len(triggers.entries()) == 1
    triggers.update("d" * 64, status="succeeded", registered="3")
    assert triggers.entries()[0]["status"] == "succeeded"


def test_an_alert_the_webhook_missed_goes_out_with_the_next_quiet_run(tmp_path):
    """The webhook is down when the drift alert is sent: it waits as pending; the next run
    decides `none` (no alert of its own) and still delivers it, once."""
    import socket

    from tests.support.webhook import Receiver

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    triggers = actions.TriggerStore(str(tmp_path / "triggers"))
    down = AlertSink(tmp_path / "logs", f"http://127.0.0.1:{port}/h", retries=0)
    first = actions.act(_result(), down, triggers)
    assert first["alert"]["webhook"]["status"] == "pending"
    with Receiver(port=port, path="/h") as receiver:
        up = AlertSink(tmp_path / "logs", receiver.url, retries=0)
        calm = actions.act(_result("e" * 64, "none"), up, triggers)
        again = actions.act(_result("e" * 64, "none"), up, triggers)
    assert calm["alert"] is None and calm["resent"][0]["webhook"]["status"] == "delivered"
    assert again["resent"] == [] and len(receiver.bodies) == 1
    assert "drift" in receiver.bodies[0]["text"]


def test_retraining_window_ends_at_the_batch_and_tests_on_it(settings):
    out = actions.retrain_overrides(settings, 2017, "/data/x.parquet")
    assert out["data_ingestion.window"] == {"start": 2015, "end": 2017}
    assert out["feature_engineering.split.train_window"] == [2015, 2016]
    assert out["feature_engineering.split.test_window"] == [2017, 2017]
    assert out["data_ingestion.source_url"] == "/data/x.parquet"
    assert actions.retrain_overrides(settings, None) == {}


def test_retraining_window_is_capped_and_only_a_time_split_gets_one(settings):
    from components.common.config import override_settings

    capped = override_settings(settings, {"monitoring.retrain_window_years": 1})
    assert actions.retrain_overrides(capped, 2018)["data_ingestion.window"] == {
        "start": 2017,
        "end": 2018,
    }
    shuffled = override_settings(settings, {"feature_engineering.split.method": "random"})
    assert actions.retrain_overrides(shuffled, 2018, "/x.parquet") == {
        "data_ingestion.source_url": "/x.parquet"
    }


@pytest.fixture()
def laptop(monkeypatch):
    """Not in a cluster, no state store configured."""
    monkeypatch.setenv("MLPIPE_CLUSTER", "0")
    monkeypatch.delenv("MLPIPE_STATE_DIR", raising=False)


def test_state_root_is_the_configured_store_else_outputs_state(laptop, monkeypatch, tmp_path):
    from components.common import runtime_env

    assert actions.state_root() == str(runtime_env.LOCAL_OUTPUTS / "state")
    monkeypatch.setenv("MLPIPE_STATE_DIR", str(tmp_path))
    assert actions.state_root() == str(tmp_path)
    monkeypatch.setenv("MLPIPE_CLUSTER", "1")
    monkeypatch.setenv("MLPIPE_STATE_DIR", str(tmp_path))  # a pod's folder is no store
    with pytest.raises(StageError, match="shared storage"):
        actions.state_root()
    monkeypatch.delenv("MLPIPE_STATE_DIR")
    with pytest.raises(StageError, match="MLPIPE_STATE_DIR"):
        actions.state_root()


def test_a_retrain_without_a_store_given_claims_under_the_state_root(laptop, monkeypatch, tmp_path):
    monkeypatch.setenv("MLPIPE_STATE_DIR", f"{tmp_path}/state/")  # trailing slash: one folder
    out = actions.act(_result(), AlertSink(tmp_path / "logs"))
    assert out["retrain"] == {"status": "claimed", "key": "d" * 64}
    (doc,) = (tmp_path / "state" / "monitor" / "retrain_triggers").iterdir()
    record = json.loads(doc.read_text())
    assert record["key"] == "d" * 64 and record["incident"] == "monitor:" + "d" * 16
    assert record["champion_version"] == "2" and record["newest"] == 2017
    assert record["status"] == "claimed" and record["ts"] > 0


def test_an_alert_decision_alerts_and_claims_nothing(tmp_path):
    sink = AlertSink(tmp_path / "logs")
    triggers = actions.TriggerStore(str(tmp_path / "triggers"))
    out = actions.act(_result(verdict="alert"), sink, triggers)
    assert out["decision"] == "alert" and out["alert"]["status"] == "sent"
    assert out["retrain"] == {"status": "not needed"} and "resent" not in out
    assert triggers.entries() == [] and len(sink.entries()) == 1


def test_a_claim_is_once_per_key_and_an_update_needs_a_claim(tmp_path):
    triggers = actions.TriggerStore(str(tmp_path / "triggers"))
    assert triggers.claim("k1", {"status": "claimed"}) is True
    assert triggers.claim("k1", {"status": "other"}) is False
    assert triggers.claim("k2", {"status": "claimed"}) is True
    assert sorted(e["key"] for e in triggers.entries()) == ["k1", "k2"]
    assert {e["status"] for e in triggers.entries()} == {"claimed"}  # the second claim lost
    # an update of a batch nobody claimed records nothing (no trigger appears)
    triggers.update("never-claimed", status="started")
    assert sorted(e["key"] for e in triggers.entries()) == ["k1", "k2"]


def test_incident_key_is_the_digests_first_16_characters():
    assert actions.incident_key({"batch_digest": "0123456789abcdef" + "f" * 48}) == (
        "monitor:0123456789abcdef"
    )


def test_no_alert_for_a_quiet_batch():
    assert actions.build_alert(_result(verdict="none")) is None


def test_the_alert_names_the_worst_kind_and_every_finding():
    result = _result(verdict="retrain")
    result["decision"]["kinds"] = ["drift", "data_anomaly", "performance_decay"]
    result["anomalies"] = [{"feature": "SEX"}, {"feature": "AGEP"}]
    result["decay"] = {"roc_auc": 0.71}
    result["context"] = {"batch": "b.parquet", "report": "/r/report.html"}
    alert = actions.build_alert(result)
    assert alert.kind == "performance_decay" and alert.severity == "critical"
    assert alert.title == (
        "batch b.parquet: 2 blocking anomalies; champion decayed (AUC 0.71); "
        "2 features drifted -> retrain"
    )
    assert alert.incident == "monitor:" + "d" * 16 and alert.decision == "retrain"
    assert alert.reasons == ["AGEP: drifted", "MAR: drifted"]
    assert alert.reasons is not result["decision"]["reasons"]  # a copy
    assert alert.context == {
        "model": "acs-employment v2",
        "rows": 3000,
        "batch_digest": "d" * 16,
        "report": "/r/report.html",
    }


@pytest.mark.parametrize(
    ("kinds", "kind", "severity"),
    [
        (["drift"], "drift", "warning"),
        (["drift", "data_anomaly"], "data_anomaly", "critical"),
        (["data_anomaly", "performance_decay"], "performance_decay", "critical"),
        ([], "drift", "warning"),  # an action with no kind named: the mildest
    ],
)
def test_the_alert_kind_and_severity(kinds, kind, severity):
    result = _result(verdict="alert")
    result["decision"]["kinds"] = kinds
    result["decay"] = {"roc_auc": 0.7}
    alert = actions.build_alert(result)
    assert (alert.kind, alert.severity) == (kind, severity)


def test_the_alert_title_falls_back_to_the_digest_without_a_batch_name():
    result = _result(digest="abcdef0123456789" * 4, verdict="alert")
    result.pop("context")
    alert = actions.build_alert(result)
    assert alert.title == "batch abcdef012345: 2 features drifted -> alert"
    assert alert.context["report"] is None


def test_retraining_window_starts_at_the_split_without_an_ingestion_window(settings):
    from components.common.config import override_settings

    no_window = override_settings(
        settings,
        {"data_ingestion.window": None, "feature_engineering.split.train_window": [2013, 2015]},
    )
    out = actions.retrain_overrides(no_window, "2018")  # a time value read as text
    assert out == {
        "data_ingestion.window": {"start": 2013, "end": 2018},
        "feature_engineering.split.train_window": [2013, 2017],
        "feature_engineering.split.test_window": [2018, 2018],
    }
    # a cap longer than the data keeps the configured start
    long = override_settings(settings, {"monitoring.retrain_window_years": 10})
    assert actions.retrain_overrides(long, 2017.0)["data_ingestion.window"] == {
        "start": 2015,
        "end": 2017,
    }


@pytest.mark.parametrize("missing", ["pipeline_id", "version_id", "settings"])
def test_retraining_on_the_cluster_without_the_training_pipeline_is_refused(missing, monkeypatch):
    # no KFP connection configured: the refusal comes before any client is made
    monkeypatch.delenv("KFP_HOST", raising=False)
    retraining = {"pipeline_id": "p", "version_id": "v", "settings": "{}", missing: ""}
    with pytest.raises(StageError, match="mlpipe submit|schedule") as err:
        actions.start_retraining_on_kfp(_result(), retraining)
    assert err.value.subject == "retraining"
    with pytest.raises(StageError, match="pipeline_id, version_id and settings"):
        actions.start_retraining_on_kfp(_result(), {})
