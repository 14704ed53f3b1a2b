"""Alerts against a real webhook receiver on 127.0.0.1: payload shape, retries with backoff on
500s and a refused connection, dedup per incident, a failing webhook never raising."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.common.alerts import Alert, AlertSink, post_webhook, slack_payload
from components.common.config import MonitoringConfig


class Receiver:
    """A Slack-like incoming webhook: records JSON bodies; answers `statuses` in turn, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[dict] = []
        self.statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.bodies.append(json.loads(body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


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
        sink = AlertSink(tmp_path / "alerts.jsonl", receiver.url, sleep=lambda s: None)
        first = sink.send(_alert())
        assert first["status"] == "sent" and first["webhook"]["status"] == "delivered"
        assert sink.send(_alert())["status"] == "duplicate"  # same incident: quiet
        assert sink.send(_alert("monitor:def:v2"))["status"] == "sent"
    assert len(receiver.bodies) == 2
    assert receiver.bodies[0] == slack_payload(_alert()) | {"text": receiver.bodies[0]["text"]}
    logged = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [e["incident"] for e in logged] == ["monitor:abc:v2", "monitor:def:v2"]


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
        sink = AlertSink(tmp_path / "a.jsonl", receiver.url, retries=3, sleep=waits.append)
        out = sink.send(_alert())
    assert out["status"] == "sent" and out["webhook"]["status"] == "failed"
    assert out["webhook"]["attempts"] == 4 and "HTTP 500" in out["webhook"]["error"]
    assert len(waits) == 3
    # the server is gone now: connection refused, retried, still no exception
    refused = f"http://127.0.0.1:{_free_port()}/hook"
    sink = AlertSink(tmp_path / "b.jsonl", refused, retries=2, sleep=waits.append)
    out = sink.send(_alert())
    assert out["webhook"]["status"] == "failed" and out["webhook"]["attempts"] == 3
    assert "ConnectionError" in out["webhook"]["error"]
    assert len(sink.entries()) == 1  # the log still has the alert


def test_a_4xx_is_not_retried(tmp_path):
    with Receiver([404]) as receiver:
        out = post_webhook(receiver.url, {"text": "x"}, retries=3, sleep=lambda s: None)
    assert out["status"] == "failed" and out["attempts"] == 1


def test_webhook_url_from_config_or_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPIPE_ALERT_WEBHOOK", "http://127.0.0.1:9/env")
    sink = AlertSink.from_config(MonitoringConfig(), tmp_path)
    assert sink.webhook_url == "http://127.0.0.1:9/env"
    assert sink.log_path == tmp_path / "alerts.jsonl"
    cfg = MonitoringConfig(webhook_url="http://127.0.0.1:9/cfg", webhook_retries=5)
    sink = AlertSink.from_config(cfg, tmp_path)
    assert (sink.webhook_url, sink.retries) == ("http://127.0.0.1:9/cfg", 5)
    monkeypatch.delenv("MLPIPE_ALERT_WEBHOOK")
    assert AlertSink.from_config(MonitoringConfig(), tmp_path).webhook_url is None


def test_monitoring_config_refuses_bad_values():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="duration"):
        MonitoringConfig(every="soon")
    with pytest.raises(ValidationError, match="credential"):
        MonitoringConfig(webhook_url="https://hooks.example/x?token=abc")
    with pytest.raises(ValidationError):
        MonitoringConfig(decision={"on_drift": "panic"})
