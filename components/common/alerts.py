"""Alerts: one per incident, to a JSON-lines log and a Slack-compatible webhook.

An incident has a key (e.g. `monitor:<batch digest>:<champion version>`); an incident already in
the log is not alerted again, so re-running the same batch stays quiet. Everything one incident
found (every drifted feature, decay, anomalies) goes into its one alert.

Delivery: the log first (outputs/logs/alerts.jsonl; always), then the webhook (`{"text", "blocks"}`,
what Slack's incoming webhooks take) with retries and exponential backoff on connection errors,
timeouts, 429 and 5xx. A webhook that still fails is recorded in the log entry and never raises:
an alert must not fail the pipeline that raised it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

AlertKind = Literal[
    "pipeline_failure", "timeout", "data_anomaly", "performance_decay", "drift", "resources"
]
ALERT_LOG_NAME = "alerts.jsonl"
RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class Alert:
    kind: AlertKind
    title: str
    incident: str  # dedup key: one alert per incident
    reasons: list[str] = field(default_factory=list)
    severity: Literal["info", "warning", "critical"] = "warning"
    decision: str | None = None  # the monitoring decision that came with it
    context: dict[str, Any] = field(default_factory=dict)  # batch, model version, report path
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack-compatible JSON: `text` (the notification line) and Block Kit `blocks`."""
    icon = {"critical": ":rotating_light:", "warning": ":warning:"}.get(alert.severity, ":bell:")
    text = f"{icon} mlpipe {alert.kind.replace('_', ' ')}: {alert.title}"
    reasons = "\n".join(f"• {r}" for r in alert.reasons[:20]) or "(no details)"
    if len(alert.reasons) > 20:
        reasons += f"\n• and {len(alert.reasons) - 20} more"
    context = [f"*{k}*: {v}" for k, v in alert.context.items() if v not in (None, "")]
    if alert.decision:
        context.insert(0, f"*decision*: {alert.decision}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": reasons[:3000]}},
    ]
    if context:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": c} for c in context[:10]]}
        )
    return {"text": text, "blocks": blocks}


def post_webhook(
    url: str,
    payload: dict[str, Any],
    retries: int = 3,
    backoff_s: float = 0.5,
    timeout_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST with retries; never raises: {"status": delivered|failed, "attempts", "error"}."""
    import requests

    error = ""
    for attempt in range(1, retries + 2):
        try:
            response = requests.post(url, json=payload, timeout=timeout_s)
            if response.status_code < 300:
                return {"status": "delivered", "attempts": attempt, "error": None}
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code not in RETRY_STATUSES:
                break  # 4xx: a bad URL or payload; retrying cannot help
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if attempt <= retries:
            sleep(min(backoff_s * 2 ** (attempt - 1), 30.0))
    return {"status": "failed", "attempts": attempt, "error": error}


class AlertSink:
    """Where alerts go: the log (dedup by incident) and optionally a webhook."""

    def __init__(
        self,
        log_path: str | Path,
        webhook_url: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.log_path = Path(log_path)
        self.webhook_url = webhook_url
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.sleep = sleep

    @classmethod
    def from_config(cls, monitoring: Any, logs_dir: str | Path, **kwargs: Any) -> AlertSink:
        url = monitoring.webhook_url or os.environ.get(monitoring.webhook_url_env) or None
        return cls(
            Path(logs_dir) / ALERT_LOG_NAME,
            url,
            monitoring.webhook_retries,
            monitoring.webhook_backoff_s,
            monitoring.webhook_timeout_s,
            **kwargs,
        )

    def entries(self) -> list[dict[str, Any]]:
        if not self.log_path.is_file():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a crash: ignore it
        return out

    def seen(self, incident: str) -> bool:
        return any(e.get("incident") == incident for e in self.entries())

    def send(self, alert: Alert) -> dict[str, Any]:
        """Deliver unless the incident was already alerted. Returns what happened."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two monitors must not both alert an incident
            if self.seen(alert.incident):
                return {"status": "duplicate", "incident": alert.incident}
            webhook = {"status": "not configured", "attempts": 0, "error": None}
            if self.webhook_url:
                webhook = post_webhook(
                    self.webhook_url,
                    slack_payload(alert),
                    self.retries,
                    self.backoff_s,
                    self.timeout_s,
                    self.sleep,
                )
            entry = {**alert.to_dict(), "webhook": webhook}
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
        return {"status": "sent", "incident": alert.incident, "webhook": webhook}
