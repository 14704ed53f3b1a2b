"""The quality gate: absolute thresholds, no regression against the champion, slice thresholds.

With no champion yet only the absolute and slice checks apply. The verdict is a `Blessing`,
written as JSON into the pipeline's blessing artifact; the pipeline branches on `blessed`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from components.common.config import METRIC_DIRECTIONS


@dataclass(frozen=True)
class Check:
    """`value` must be >= `limit` (higher-is-better metrics) or <= `limit` (the others)."""

    kind: str  # absolute | vs_champion | slice | slice_gap
    metric: str
    value: float
    limit: float
    higher_is_better: bool
    detail: str = ""  # what the limit is made of, e.g. "champion v3 0.9021 - 0.005"

    @property
    def passed(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def describe(self) -> str:
        """E.g. "roc_auc 0.8712 < 0.8971 (champion v3 0.9021 - tolerance 0.005)"."""
        ok = self.passed
        op = (">=" if ok else "<") if self.higher_is_better else ("<=" if ok else ">")
        text = f"{self.metric} {_figure(self.value, self.limit, ok, self.higher_is_better)} "
        text += f"{op} {self.limit:.4g}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass
class Blessing:
    """The gate's verdict and everything it was based on."""

    blessed: bool
    mode: str  # "absolute + vs champion" | "absolute only (no champion yet)" | ...
    checks: list[dict[str, Any]] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    champion_version: str | None = None
    champion_error: str | None = None  # the champion exists but could not be scored
    decision_threshold: float | None = None
    expected_cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def absolute_checks(metrics: dict[str, float], thresholds: dict[str, float]) -> list[Check]:
    out = []
    for metric, limit in thresholds.items():
        higher = METRIC_DIRECTIONS[metric] > 0
        kind = "minimum" if higher else "maximum"
        out.append(Check("absolute", metric, float(metrics[metric]), float(limit), higher, kind))
    return out


def regression_checks(
    challenger: dict[str, float],
    champion: dict[str, float],
    tolerances: dict[str, float],
    champion_version: str,
) -> list[Check]:
    """The challenger may be worse than the champion by at most the tolerance."""
    out = []
    for metric, tolerance in tolerances.items():
        higher = METRIC_DIRECTIONS[metric] > 0
        base = float(champion[metric])
        limit = base - tolerance if higher else base + tolerance
        sign = "-" if higher else "+"
        detail = f"champion v{champion_version} {base:.4f} {sign} tolerance {tolerance:g}"
        out.append(Check("vs_champion", metric, float(challenger[metric]), limit, higher, detail))
    return out


def slice_checks(
    slices: list[dict[str, Any]], thresholds: dict[str, float], max_gap: dict[str, float]
) -> list[Check]:
    """Every judged slice reaches each slice threshold; no feature's gap exceeds max_gap."""
    out = []
    for feature in slices:
        name = feature["feature"]
        for metric, limit in thresholds.items():
            for s in feature["slices"]:
                if s["judged"] and s.get(metric) is not None:
                    detail = f"slice {name}={s['value']}, {s['rows']:,} rows"
                    out.append(Check("slice", metric, float(s[metric]), float(limit), True, detail))
        for metric, limit in max_gap.items():
            gap = feature["gaps"].get(metric)
            if gap is not None:
                detail = f"gap across {name}: best {gap['best']}, worst {gap['worst']}"
                out.append(Check("slice_gap", metric, gap["gap"], float(limit), False, detail))
    return out


def decide(
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    evaluation_cfg: dict[str, Any],
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> Blessing:
    """The verdict on `challenger` (an evaluation summary) against `champion` (the champion's
    summary on the same test rows, or None when there is no champion)."""
    metrics = challenger["metrics"]
    checks = absolute_checks(metrics, evaluation_cfg.get("thresholds", {}))
    slices_cfg = evaluation_cfg.get("slices", {})
    checks += slice_checks(
        challenger.get("slices", []),
        slices_cfg.get("thresholds", {}),
        slices_cfg.get("max_gap", {}),
    )
    tolerances = evaluation_cfg.get("max_regression", {})
    failed = [c.describe() for c in checks if not c.passed]
    if champion is not None:
        assert champion_version is not None
        compared = regression_checks(metrics, champion["metrics"], tolerances, champion_version)
        checks += compared
        failed += [c.describe() for c in compared if not c.passed]
        mode = "absolute + vs champion"
    elif champion_error and tolerances:
        # fail closed: a champion we cannot score could be better than the challenger
        failed.append(f"cannot compare with champion v{champion_version}: {champion_error}")
        mode = "champion not comparable"
    else:
        mode = "absolute only (no champion yet)"
    return Blessing(
        blessed=not failed,
        mode=mode,
        checks=[{**asdict(c), "passed": c.passed} for c in checks],
        failed_checks=failed,
        champion_version=champion_version,
        champion_error=champion_error,
        decision_threshold=metrics.get("decision_threshold"),
        expected_cost=metrics.get("expected_cost"),
    )


def _figure(value: float, limit: float, passed: bool, higher: bool) -> str:
    """`value` with 4 decimals, or more when 4 would look on the wrong side of `limit`."""
    for decimals in range(4, 10):
        shown = round(value, decimals)
        if ((shown >= limit) if higher else (shown <= limit)) == passed:
            return f"{value:.{decimals}f}"
    return repr(value)
