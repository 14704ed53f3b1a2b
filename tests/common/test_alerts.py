"""Alerts against a real webhook receiver on 127.0.0.1: payload shape, retries with backoff on
500s and a refused connection, dedup per incident, a failing webhook never raising."""

from __future__ import annotations

import json
import socket

import pytest

from components.common.alerts import Alert, AlertSink, post_webhook, slack_payload
from components.common.config import MonitoringConfig
from tests.support.webhook import Receiver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alert(incident: str = "monitor:abc:v2") -> Alert:
    return Alert(
        kind="drift",
        title="batch b2017: 2 features drifted -> retrain",
        incident=incident,
        reasons=["AGEP: jensen_shannon 0.31 > 0.1", "MAR: linf 0.22 > 0.1"],
        decision="retrain",
        context={"model": "acs-employment v2", "rows": 3000},
    )


def test_slack_payload_has_text_and_blocks():
    payload = slack_payload(_alert())
    assert payload["text"].startswith(":warning: mlpipe drift: batch b2017")
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds == ["header", "section", "context"]
    assert "AGEP" in payload["blocks"][1]["text"]["text"]
    assert "MAR" in payload["blocks"][1]["text"]["text"]  # all features in one alert
    assert any("retrain" in e["text"] for e in payload["blocks"][2]["elements"])


def test_the_receiver_gets_one_payload_per_incident(tmp_path):
    with Receiver() as receiver:
        sink = AlertSink(tmp_path, receiver.url, sleep=lambda s: None)
        first = sink.send(_alert())
        assert first["status"] == "sent" and first["webhook"]["status"] == "delivered"
        assert sink.send(_alert())["status"] == "duplicate"  # same incident: quiet
        assert sink.send(_alert("monitor:def:v2"))["status"] == "sent"
    assert len(receiver.bodies) == 2
    assert receiver.bodies[0] == slack_payload(_alert()) | {"text": receiver.bodies[0]["text"]}
    logged = [json.loads(f.read_text()) for f in sorted((tmp_path / "alerts").glob("*.json"))]
    assert sorted(e["incident"] for e in logged) == ["monitor:abc:v2", "monitor:def:v2"]
    assert all(e["webhook"]["status"] == "delivered" for e in logged)
    assert [e["incident"] for e in sink.entries()] == ["monitor:abc:v2", "monitor:def:v2"]


def test_500s_are_retried_with_backoff_until_delivered(tmp_path):
    waits: list[float] = []
    with Receiver([500, 503]) as receiver:
        out = post_webhook(
            receiver.url, {"text": "x"}, retries=3, backoff_s=0.5, sleep=waits.append
        )
    assert out == {"status": "delivered", "attempts": 3, "error": None}
    assert waits == [0.5, 1.0] and len(receiver.bodies) == 3


def test_a_failing_webhook_is_logged_and_never_raises(tmp_path):
    waits: list[float] = []
    with Receiver([500, 500, 500, 500]) as receiver:
        sink = AlertSink(tmp_path / "a", receiver.url, retries=3, sleep=waits.append)
        out = sink.send(_alert())
    assert out["status"] == "sent" and out["webhook"]["status"] == "pending"
    assert out["webhook"]["attempts"] == 4 and "HTTP 500" in out["webhook"]["error"]
    assert len(waits) == 3
    # the server is gone now: connection refused, retried, still no exception
    refused = f"http://127.0.0.1:{_free_port()}/hook"
    sink = AlertSink(tmp_path / "b", refused, retries=2, sleep=waits.append)
    out = sink.send(_alert())
    assert out["webhook"]["status"] == "pending" and out["webhook"]["attempts"] == 3
    assert "ConnectionError" in out["webhook"]["error"]
    assert len(sink.entries()) == 1  # the log still has the alert


def test_a_4xx_is_not_retried(tmp_path):
    with Receiver([404]) as receiver:
        out = post_webhook(receiver.url, {"text": "x"}, retries=3, sleep=lambda s: None)
    assert out["status"] == "failed" and out["attempts"] == 1


def test_webhook_url_from_the_environment_only(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPIPE_ALERT_WEBHOOK", "http://127.0.0.1:9/env")
    sink = AlertSink.from_config(MonitoringConfig(webhook_retries=5), tmp_path)
    assert (sink.webhook_url, sink.retries) == ("http://127.0.0.1:9/env", 5)
    assert sink.logs_dir == str(tmp_path)
    monkeypatch.setenv("MLPIPE_OTHER_HOOK", "http://127.0.0.1:9/other")
    cfg = MonitoringConfig(webhook_url_env="MLPIPE_OTHER_HOOK")
    assert AlertSink.from_config(cfg, tmp_path).webhook_url == "http://127.0.0.1:9/other"
    monkeypatch.delenv("MLPIPE_ALERT_WEBHOOK")
    assert AlertSink.from_config(MonitoringConfig(), tmp_path).webhook_url is None


def test_an_inline_webhook_url_is_refused_naming_the_variable():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="webhook_url_env"):
        MonitoringConfig(webhook_url="https://hooks.slack.com/services/T0/B0/XXXX")
    assert MonitoringConfig(webhook_url=None) == MonitoringConfig()  # older configs: null


def test_monitoring_config_refuses_bad_values():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="duration"):
        MonitoringConfig(every="soon")
    with pytest.raises(ValidationError):
        MonitoringConfig(decision={"on_drift": "panic"})


SECRET_PATH = "/services/T0KNOWN/B0KNOWN/s3cr3tW3bh00kPath"


def test_a_failed_alert_stays_pending_and_is_resent_once_on_the_next_send(tmp_path):
    """The webhook is down (refused), then answers 500, then is up: the first alert waits as
    `pending` and goes out with the next send, exactly once; nothing is resent after that."""
    port = _free_port()
    down = AlertSink(tmp_path, f"http://127.0.0.1:{port}{SECRET_PATH}", retries=0)
    first = down.send(_alert("monitor:first"))
    assert first["webhook"]["status"] == "pending" and first["webhook"]["attempts"] == 1
    with Receiver([500], port=port, path=SECRET_PATH) as receiver:
        sink = AlertSink(tmp_path, receiver.url, retries=0)  # the next run: a new sink
        second = sink.send(_alert("monitor:second"))  # 500 for the resend, 200 for the new one
        assert second["resent"][0]["webhook"]["status"] == "pending"
        assert second["webhook"]["status"] == "delivered"
        (entry,) = [e for e in sink.entries() if e["incident"] == "monitor:first"]
        assert entry["webhook"]["attempts"] == 2 and "HTTP 500" in entry["webhook"]["error"]
        third = sink.send(_alert("monitor:third"))
        assert [r["incident"] for r in third["resent"]] == ["monitor:first"]
        assert third["resent"][0]["webhook"] == {
            "status": "delivered",
            "attempts": 3,
            "error": None,
            "rounds": 3,
        }
        assert sink.send(_alert("monitor:first"))["status"] == "duplicate"
        assert sink.resend_pending() == []  # delivered: never again
    titles = [b["text"] for b in receiver.bodies]
    assert len(titles) == 4  # first (500), second, first (200), third
    statuses = {e["incident"]: e["webhook"]["status"] for e in sink.entries()}
    assert statuses == {f"monitor:{n}": "delivered" for n in ("first", "second", "third")}


def test_a_pending_round_is_claimed_once_by_concurrent_senders(tmp_path):
    port = _free_port()
    AlertSink(tmp_path, f"http://127.0.0.1:{port}/h", retries=0).send(_alert())
    with Receiver(port=port, path="/h") as receiver:
        a = AlertSink(tmp_path, receiver.url, retries=0)
        b = AlertSink(tmp_path, receiver.url, retries=0)
        # b reads the entry before a's resend updates it: it must not claim the same round
        pending = a.store.entries()
        assert len(a.resend_pending()) == 1
        b.store.entries = lambda: pending  # type: ignore[method-assign]
        assert b.resend_pending() == []
    assert len(receiver.bodies) == 1


def test_without_a_webhook_pending_alerts_wait(tmp_path):
    port = _free_port()
    AlertSink(tmp_path, f"http://127.0.0.1:{port}/h", retries=0).send(_alert())
    assert AlertSink(tmp_path).resend_pending() == []
    (entry,) = AlertSink(tmp_path).entries()
    assert entry["webhook"]["status"] == "pending"


def test_webhook_errors_never_hold_the_url_path(tmp_path, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    port = _free_port()
    refused = f"http://127.0.0.1:{port}{SECRET_PATH}?token=abc"
    out = post_webhook(refused, {"text": "x"}, retries=1, sleep=lambda s: None)
    assert out["status"] == "failed" and "ConnectionError" in out["error"]
    with Receiver([500], path=SECRET_PATH) as receiver:
        sink = AlertSink(tmp_path, receiver.url, retries=0)
        sink.send(_alert())
        sink.send(_alert("monitor:other"))  # resends the first, delivers the second
    stored = json.dumps(sink.entries())
    for text in (out["error"], stored, caplog.text):
        assert "s3cr3tW3bh00kPath" not in text and "T0KNOWN" not in text
    assert "127.0.0.1" in out["error"]  # what a reader needs: the host it could not reach
