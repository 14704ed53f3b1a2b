"""`deployment` and `runtime`: rollout, infra validation, where tasks run."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from components.common.config_sections.base import (
    StrictModel,
    only_default,
)


class RolloutPolicy(StrictModel):
    """When a canary window fails: any limit exceeded once the canary answered enough requests."""

    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01  # 5xx + connection errors
    max_p99_ms: Annotated[float, Field(gt=0)] = 10.0  # the upstream's p99 latency ...
    latency_stable_ratio: Annotated[float, Field(ge=1)] = 1.5  # ... if slower than stable
    max_psi: Annotated[float, Field(gt=0)] = 0.2  # score distribution vs stable (effect size)
    min_canary_requests: Annotated[int, Field(ge=1)] = 200  # no decision before
    # the canary's 4xx rate may exceed stable's by this much (a candidate refusing its requests)
    max_client_error_increase: Annotated[float, Field(ge=0, le=1)] = 0.01
    min_answered_share: Annotated[float, Field(ge=0, le=1)] = 0.99  # 2xx with scores, x stable's
    # Spearman's rho of both versions' scores on the same rows (retrains ~0.8-0.9, invert -1)
    min_rank_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.5

    @model_validator(mode="before")
    @classmethod
    def _no_max_ks(cls, data: Any) -> Any:
        # an old config's key, refused with the reason rather than as an unknown field
        if isinstance(data, dict) and "max_ks" in data:
            raise ValueError(
                "max_ks was removed: KS is reported with each window but never decides (equal-"
                "quality retrains exceed any useful limit); delete the key — max_psi and "
                "min_rank_correlation judge the score distribution"
            )
        return data


class AnalysisWindow(StrictModel):
    """One window per step: done after `seconds` and `min_requests` canary requests; a window
    that cannot gather its requests within `max_seconds` fails."""

    seconds: Annotated[float, Field(gt=0)] = 10.0  # a local rehearsal; raise it on a cluster
    min_requests: Annotated[int, Field(ge=1)] = 200
    max_seconds: Annotated[float, Field(gt=0)] = 600.0
    check_interval_s: Annotated[float, Field(gt=0)] = 1.0  # a failing window ends at once

    @model_validator(mode="after")
    def _ordered(self) -> AnalysisWindow:
        if self.max_seconds < self.seconds:
            raise ValueError(f"max_seconds {self.max_seconds} is below seconds {self.seconds}")
        return self


class KServeRollout(StrictModel):
    """Where and how the InferenceService runs (`environment: kserve`)."""

    namespace: str = "mlpipe"
    # reads the model store with the read-only key its ServiceAccount lists (manifests/)
    service_account: str | None = "mlpipe-serving"
    runtime: str = "mlpipe"  # the ServingRuntime (model format `mlpipe`)
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    min_replicas: Annotated[int, Field(ge=0)] = 1
    ready_timeout_s: Annotated[float, Field(gt=0)] = 600.0
    poll_s: Annotated[float, Field(gt=0)] = 5.0
    prometheus_url: str | None = None  # analysis metrics; None: the model pods' own /metrics
    server_port: Annotated[int, Field(gt=0, lt=65536)] = 8080  # the ServingRuntime's port
    # send test rows through the InferenceService's URL during the rollout: a cluster without
    # live traffic (kind) still has windows to judge. Off for real traffic.
    replay_test_rows: bool = False


class RolloutConfig(StrictModel):
    strategy: Literal["canary", "blue_green", "direct"] = "canary"
    steps: Annotated[list[int], Field(min_length=1)] = [10, 50, 100]  # canary traffic percent
    window: AnalysisWindow = AnalysisWindow()
    policy: RolloutPolicy = RolloutPolicy()
    kserve: KServeRollout = KServeRollout()

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, value: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in value):
            raise ValueError(f"each step is a traffic percent in 1..100, got {value}")
        if any(a >= b for a, b in pairwise(value)):
            raise ValueError(f"steps must increase, got {value}")
        if value[-1] != 100:
            raise ValueError(f"the last step must be 100 (all traffic), got {value}")
        return value


class InfraValidationConfig(StrictModel):
    """Before any rollout the candidate's own server must answer real test rows like the model
    does offline (`tolerance`) and fast enough (one-row p99)."""

    rows: Annotated[int, Field(ge=10)] = 200
    p99_budget_ms: Annotated[float, Field(gt=0)] = 50.0
    tolerance: Annotated[float, Field(gt=0)] = 1e-6


class DeploymentConfig(StrictModel):
    environment: Literal["local", "kserve"] = "local"
    # True: a version that passes the gate waits as `challenger` until `mlpipe approve`
    approval_required: bool = False
    rollback_enabled: bool = True
    rollout: RolloutConfig = RolloutConfig()
    infra_validation: InfraValidationConfig = InfraValidationConfig()

    _rollback = field_validator("rollback_enabled")(only_default(True))


class RuntimeConfig(StrictModel):
    image_registry: str = "ghcr.io/mlpipe"
    local_retries: Annotated[int, Field(ge=0, le=5)] = 0
    cluster_retries: Annotated[int, Field(ge=0, le=5)] = 2
    # what the compiled pipeline asks the cluster for, by name (manifests/ creates them):
    service_account: str = "mlpipe-pipeline"  # runs and recurring runs (mlpipe submit|schedule)
    env_config_map: str = "mlpipe-pipeline-env"  # MLflow URI, state store, ... for every task
    s3_secret: str = "mlpipe-s3"  # read-write S3 credentials for every task
    # MLflow login (MLFLOW_TRACKING_USERNAME/PASSWORD) for every task; only here, not in `katib`:
    # trials and model servers get no MLflow credentials
    mlflow_auth_secret: str = "mlpipe-mlflow-auth"
    alerts_secret: str = "mlpipe-alerts"  # key webhook_url: the alert webhook (optional)
