"""Alerts: one per incident, to the alert log and a Slack-compatible webhook.

An incident has a key (e.g. `monitor:<batch digest>:<champion version>`); an incident already in
the log is not alerted again, so re-running the same batch stays quiet. Everything one incident
found (every drifted feature, decay, anomalies) goes into its one alert.

Delivery: the log first (one JSON document per incident under `<logs dir>/alerts/`:
outputs/logs/alerts/ locally, the state store's logs/alerts/ on a cluster; always), then the
webhook (`{"text", "blocks"}`, what Slack's incoming webhooks take), retried on connection
errors, timeouts, 429 and 5xx as `common/retry.py` says. A webhook that still fails is
recorded in the log entry as `pending` (attempts, the redacted error) and never raises: an alert
must not fail the pipeline that raised it. The next send (the next alert, or the next monitoring
run's act task) first resends the pending ones; each resend round is claimed atomically in
`alerts/resends/`, so an alert is delivered once, never twice after a success.

The webhook URL comes only from the environment (`monitoring.webhook_url_env`; on a cluster the
mounted Secret). Its path is a secret: errors are stored and returned redacted
(`components/common/redact.py`), and the HTTP client's debug log is filtered.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from components.common.redact import redact_text, register_secret

AlertKind = Literal[
    "pipeline_failure", "timeout", "data_anomaly", "performance_decay", "drift", "resources"
]
ALERT_LOG_NAME = "alerts"  # the folder of the alert log under the logs dir
RESENDS_NAME = "resends"  # under the alert log: one claim per resend round of an alert
MAX_RESEND_ROUNDS = 20  # after that many sends a pending alert is given up (`failed`)


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
    """POST with retries; never raises: {"status": delivered|failed, "attempts", "error"}.
    The error never holds the URL's path or query (redacted)."""
    import requests

    from components.common.redact import install_log_filter
    from components.common.retry import retrying

    register_secret(url)
    install_log_filter("urllib3.connectionpool")

    policy = retrying(retries + 1, backoff_s, (requests.RequestException,), sleep)
    try:
        response = policy(requests.post, url, json=payload, timeout=timeout_s)
        ok = response.status_code < 300
        error = None if ok else f"HTTP {response.status_code}: {redact_text(response.text[:200])}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {redact_text(str(exc))[:200]}"
    status = "delivered" if error is None else "failed"
    return {"status": status, "attempts": policy.statistics["attempt_number"], "error": error}


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
        register_secret(webhook_url)  # an alert's own text that quotes it is redacted too
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

    def _post(self, alert: Alert) -> dict[str, Any]:
        return post_webhook(
            self.webhook_url or "",
            slack_payload(alert),
            self.retries,
            self.backoff_s,
            self.timeout_s,
            self.sleep,
        )

    def send(self, alert: Alert) -> dict[str, Any]:
        """Deliver unless the incident was already alerted (resending pending alerts first).
        Returns what happened. The incident is claimed before the webhook is called: two senders
        never both deliver it. A failed delivery leaves the alert `pending`."""
        resent = self.resend_pending()
        alert = _redacted(alert)
        claim = {"status": "sending", "attempts": 0, "error": None, "rounds": 0}
        if not self.store.create(alert.incident, {**alert.to_dict(), "webhook": claim}):
            return {"status": "duplicate", "incident": alert.incident, "resent": resent}
        webhook: dict[str, Any] = {"status": "not configured", "attempts": 0, "error": None}
        if self.webhook_url:
            webhook = _outcome(self._post(alert), {"attempts": 0, "rounds": 0})
        self.store.update(alert.incident, webhook=webhook)
        return {"status": "sent", "incident": alert.incident, "webhook": webhook, "resent": resent}

    def resend_pending(self) -> list[dict[str, Any]]:
        """Resend every alert whose webhook delivery failed before (oldest first); each round of
        each alert is claimed in `resends/` first, so concurrent senders never both deliver it.
        Without a webhook nothing is resent. Returns [{"incident", "webhook"}] of the resent."""
        from components.common.keyed_store import KeyedStore

        if not self.webhook_url:
            return []
        claims = KeyedStore(f"{self.store.root}/{RESENDS_NAME}")
        resent = []
        for doc in self.store.entries():
            before = doc.get("webhook") or {}
            if before.get("status") != "pending":
                continue
            rounds = int(before.get("rounds") or 0)
            if not claims.create(f"{doc['incident']}:{rounds}", {"ts": time.time()}):
                continue  # another sender has this round
            fields = {k: doc[k] for k in Alert.__dataclass_fields__ if k in doc}
            webhook = _outcome(self._post(Alert(**fields)), before)
            self.store.update(doc["incident"], webhook=webhook)
            resent.append({"incident": doc["incident"], "webhook": webhook})
        return resent


def _redacted(alert: Alert) -> Alert:
    """The alert with URLs in its text stripped of userinfo and query, and the webhook's URL
    (any registered secret) replaced: a task's error may quote them."""
    context = {
        k: redact_text(v, keep_path=True) if isinstance(v, str) else v
        for k, v in alert.context.items()
    }
    return replace(
        alert,
        title=redact_text(alert.title, keep_path=True) or "",
        reasons=[redact_text(r, keep_path=True) or "" for r in alert.reasons],
        decision=redact_text(alert.decision, keep_path=True),
        context=context,
    )


def _outcome(result: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The log entry's webhook field after one more delivery round: `delivered`, or `pending`
    (attempts so far, the redacted error) until MAX_RESEND_ROUNDS rounds failed (`failed`)."""
    rounds = int(before.get("rounds") or 0) + 1
    attempts = int(before.get("attempts") or 0) + int(result["attempts"])
    status = "delivered" if result["status"] == "delivered" else "pending"
    if status == "pending" and rounds > MAX_RESEND_ROUNDS:
        status = "failed"
    return {"status": status, "attempts": attempts, "error": result["error"], "rounds": rounds}


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
