"""`monitoring`: drift and decay checks and what they trigger."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from components.common.config_sections.base import (
    StrictModel,
)
from components.common.config_sections.ingestion import parse_duration


class DecayTolerance(StrictModel):
    """How much worse than its own evaluation the champion may score on a labelled batch."""

    roc_auc: Annotated[float, Field(ge=0, le=1)] = 0.02  # AUC drop allowed
    expected_cost: Annotated[float, Field(ge=0)] = 0.02  # expected cost per row increase allowed


class DecisionPolicy(StrictModel):
    """How monitoring findings become a decision (none | alert | retrain)."""

    on_drift: Literal["alert", "retrain"] = "retrain"
    min_drifted_features: Annotated[int, Field(ge=1)] = 1  # fewer: no drift incident
    on_decay: Literal["alert", "retrain"] = "retrain"
    # a batch with blocking anomalies (bad data) is never trained on: it only alerts
    min_rows: Annotated[int, Field(ge=1)] = 200  # smaller batches: statistics too noisy to act


class ResourceThresholds(StrictModel):
    """A task above these (wall time, peak memory) raises a resource alert."""

    max_task_wall_s: Annotated[float, Field(gt=0)] = 1800.0
    max_task_peak_mb: Annotated[float, Field(gt=0)] = 8000.0
    max_run_wall_s: Annotated[float, Field(gt=0)] = 3600.0  # the run's timeout alert


class MonitoringConfig(StrictModel):
    """The monitoring pipeline: drift and decay checks, alerts, automatic retraining."""

    every: str = "1h"  # `mlpipe monitor --every` default interval
    # the Slack-compatible incoming webhook's URL comes only from this environment variable (on a
    # cluster: the Secret runtime.alerts_secret, key webhook_url, mounted as it); its path is a
    # secret, so the config holds no `webhook_url`
    webhook_url_env: str = "MLPIPE_ALERT_WEBHOOK"
    webhook_retries: Annotated[int, Field(ge=0, le=10)] = 3
    webhook_backoff_s: Annotated[float, Field(ge=0)] = 0.5  # first wait; doubles each retry
    webhook_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    decay_tolerance: DecayTolerance = DecayTolerance()
    decision: DecisionPolicy = DecisionPolicy()
    resources: ResourceThresholds = ResourceThresholds()
    retrain_window_years: Annotated[int, Field(ge=1)] | None = None  # null: keep the start

    @field_validator("every")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_inline_webhook(cls, data: Any) -> Any:
        """A webhook URL in the config is refused (a Slack URL's path is its secret, and the
        config is committed, logged as MLflow params and compiled into specs); `null` is
        dropped, so older configs still load."""
        if not isinstance(data, dict) or "webhook_url" not in data:
            return data
        if data["webhook_url"] is not None:
            raise ValueError(
                "monitoring.webhook_url is not accepted in the config (the URL's path is a "
                "secret): put the URL in the environment variable that "
                "monitoring.webhook_url_env names (default MLPIPE_ALERT_WEBHOOK; on a cluster "
                "the Secret runtime.alerts_secret, key webhook_url)"
            )
        return {k: v for k, v in data.items() if k != "webhook_url"}
