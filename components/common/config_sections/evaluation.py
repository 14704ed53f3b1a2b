"""`evaluation`: the gate's metrics, costs, slices and explanations."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from components.common.config_sections.base import (
    StrictModel,
)

# gate metrics and which way is better (+1 higher, -1 lower)
METRIC_DIRECTIONS: dict[str, int] = {
    "roc_auc": 1,
    "pr_auc": 1,
    "accuracy": 1,
    "precision": 1,
    "recall": 1,
    "f1": 1,
    "log_loss": -1,
    "brier": -1,
    "expected_cost": -1,
}
GateMetric = Literal[
    "roc_auc",
    "pr_auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "brier",
    "expected_cost",
]


class CostMatrix(StrictModel):
    """What a wrong decision costs (any unit; per row). The business threshold minimises
    `false_positive * FP + false_negative * FN` over the test rows."""

    false_positive: Annotated[float, Field(ge=0)] = 1.0
    false_negative: Annotated[float, Field(ge=0)] = 1.0

    @model_validator(mode="after")
    def _some_cost(self) -> CostMatrix:
        if self.false_positive == 0 and self.false_negative == 0:
            raise ValueError("at least one of false_positive / false_negative must cost > 0")
        return self


class SliceConfig(StrictModel):
    """Per-slice metrics: one slice per value of each categorical feature, one per bucket of
    each bucketed numeric feature."""

    features: list[str] = ["SEX", "RAC1P"]
    buckets: dict[str, Annotated[list[float], Field(min_length=1)]] = {"AGEP": [25, 35, 45, 55, 65]}
    min_rows: Annotated[int, Field(ge=1)] = 200  # smaller slices are shown, never gated
    thresholds: dict[Literal["roc_auc", "accuracy", "precision", "recall", "f1"], float] = {}
    max_gap: dict[Literal["roc_auc", "accuracy", "precision", "recall", "f1"], float] = {}

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, edges in value.items():
            if any(b <= a for a, b in pairwise(edges)):
                raise ValueError(f"{name}: bucket edges must increase, got {edges}")
        return value


class ExplainConfig(StrictModel):
    enabled: bool = True
    sample_rows: Annotated[int, Field(ge=100)] = 5000  # rows permuted / averaged over
    repeats: Annotated[int, Field(ge=1, le=20)] = 3  # shuffles per feature
    top_features: Annotated[int, Field(ge=1)] = 4  # partial dependence for the top N
    grid_points: Annotated[int, Field(ge=3, le=100)] = 20
    seed: int = 0


class EvaluationConfig(StrictModel):
    # "min_cost": the threshold that minimises the expected cost on the test rows
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] | Literal["min_cost"] = "min_cost"
    cost: CostMatrix = CostMatrix()
    # absolute gate: a minimum for higher-is-better metrics, a maximum for the others
    thresholds: dict[GateMetric, float] = {"roc_auc": 0.85}
    # change gate against the champion: how much worse than the champion a metric may be
    max_regression: dict[GateMetric, Annotated[float, Field(ge=0)]] = {"roc_auc": 0.005}
    slices: SliceConfig = SliceConfig()
    explain: ExplainConfig = ExplainConfig()

    @field_validator("thresholds")
    @classmethod
    def _bounded(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, limit in value.items():
            if metric not in ("log_loss", "expected_cost") and not 0 <= limit <= 1:
                raise ValueError(f"{metric}: {limit} is outside [0, 1]")
        return value
