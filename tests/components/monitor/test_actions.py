"""Unit tests of components/monitor/actions.py: the incident's one alert, the retraining trigger
claimed once per batch in the state store, the retraining windows, and the cluster path's refusal
without the training pipeline's ids. (`retrained_settings` is changing on another branch.)"""

from __future__ import annotations

from components.common.alerts import AlertSink
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
