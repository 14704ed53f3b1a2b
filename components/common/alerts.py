"""Alerts: one per incident, to the alert log and a Slack-compatible webhook.

An incident has a key (e.g. `monitor:<batch digest>:<champion version>`); an incident already in
the log is not alerted again, so re-running the same batch stays quiet. Everything one incident
found (every drifted feature, decay, anomalies) goes into its one alert.

Delivery: the log first (one JSON document per incident under `<logs dir>/alerts/`:
outputs/logs/alerts/ locally, the state store's logs/alerts/ on a cluster; always), then the
webhook (`{"text", "blocks"}`, what Slack's incoming webhooks take) with retries and
exponential backoff on connection errors, timeouts, 429 and 5xx. A webhook that still fails is
recorded in the log entry and never raises: an alert must not fail the pipeline that raised it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

AlertKind = Literal[
    "pipeline_failure", "timeout", "data_anomaly", "performance_decay", "drift", "resources"
]
ALERT_LOG_NAME = "alerts"  # the folder of the alert log under the logs dir
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
    """Where alerts go: the alert log (one document per incident, `<logs dir>/alerts/`; a local
    folder or the cluster's object store) and optionally a webhook."""

    def __init__(
        self,
        logs_dir: str | Path,
        webhook_url: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from components.common.keyed_store import KeyedStore

        self.logs_dir = str(logs_dir)
        self.store = KeyedStore(f"{self.logs_dir.rstrip('/')}/{ALERT_LOG_NAME}")
        self.webhook_url = webhook_url
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.sleep = sleep

    @classmethod
    def from_config(
        cls, monitoring: Any, logs_dir: str | Path | None = None, **kwargs: Any
    ) -> AlertSink:
        """The webhook in the environment variable the config names (never the config itself);
        the log in `logs_dir`, else where the environment says (`runtime_env.logs_dir`)."""
        from components.common import runtime_env

        url = os.environ.get(monitoring.webhook_url_env) or None
        return cls(
            logs_dir or runtime_env.logs_dir(),
            url,
            monitoring.webhook_retries,
            monitoring.webhook_backoff_s,
            monitoring.webhook_timeout_s,
            **kwargs,
        )

    def entries(self) -> list[dict[str, Any]]:
        return self.store.entries()

    def seen(self, incident: str) -> bool:
        return self.store.get(incident) is not None

    def send(self, alert: Alert) -> dict[str, Any]:
        """Deliver unless the incident was already alerted. Returns what happened. The incident
        is claimed before the webhook is called: two senders never both deliver it."""
        pending = {"status": "pending", "attempts": 0, "error": None}
        if not self.store.create(alert.incident, {**alert.to_dict(), "webhook": pending}):
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
        self.store.update(alert.incident, webhook=webhook)
        return {"status": "sent", "incident": alert.incident, "webhook": webhook}


def failure_alert(
    pipeline: str,
    run: str,
    failed_task: str | None,
    error: str | None,
    run_id: str | None = None,
    **context: Any,
) -> Alert:
    """The alert of a failed pipeline run, the same wherever the failure was seen: by the local
    runner, or by the exit handler task of a compiled pipeline on a cluster. One per run (the
    run id when known, else its name)."""
    task = failed_task or "unknown task"
    message = (error or "no error message recorded").strip() or "no error message recorded"
    return Alert(
        kind="pipeline_failure",
        title=f"{pipeline} run {run} failed at {task}: {message.splitlines()[0][:300]}",
        incident=f"failure:{pipeline}:{run_id or run}",
        reasons=[f"{task}: {message[:2000]}"],
        severity="critical",
        context={
            "pipeline": pipeline,
            "run": run,
            "run_id": run_id,
            "failed_task": task,
            **context,
        },
    )
