"""Performance decay: the champion scored on a labelled batch against its own evaluation.

The register step tagged the champion's version with its test metrics (`metric.roc_auc`,
`metric.expected_cost`, `metric.decision_threshold`). Here the champion predicts the batch; its
ROC AUC and its expected business cost per row at its own business threshold are compared with
those tags, within `monitoring.decay_tolerance`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def expected_cost(
    y: np.ndarray, scores: np.ndarray, threshold: float, fp_cost: float, fn_cost: float
) -> float:
    predicted = scores >= threshold
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    return (fp_cost * fp + fn_cost * fn) / max(len(y), 1)


def measure(
    y: np.ndarray,
    scores: np.ndarray,
    reference: dict[str, float],
    tolerance: dict[str, float],
    cost: dict[str, float],
) -> dict[str, Any]:
    """{roc_auc, expected_cost, reference_*, decayed, reasons}. A batch with one class only has
    no AUC: then only the cost is judged."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    scores = np.asarray(scores, dtype=float)
    threshold = float(reference.get("decision_threshold", 0.5))
    auc = float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else None
    cost_value = expected_cost(
        y, scores, threshold, cost.get("false_positive", 1.0), cost.get("false_negative", 1.0)
    )
    reasons = []
    ref_auc, ref_cost = reference.get("roc_auc"), reference.get("expected_cost")
    if auc is not None and ref_auc is not None and auc < ref_auc - tolerance["roc_auc"]:
        reasons.append(
            f"roc_auc {auc:.4f} < {ref_auc:.4f} (champion's evaluation) - tolerance "
            f"{tolerance['roc_auc']:g}"
        )
    if ref_cost is not None and cost_value > ref_cost + tolerance["expected_cost"]:
        reasons.append(
            f"expected cost {cost_value:.4f} per row > {ref_cost:.4f} (champion's evaluation) "
            f"+ tolerance {tolerance['expected_cost']:g}"
        )
    return {
        "rows": len(y),
        "positive_rate": round(float(y.mean()), 6) if len(y) else None,
        "roc_auc": None if auc is None else round(auc, 6),
        "expected_cost": round(cost_value, 6),
        "decision_threshold": threshold,
        "reference_roc_auc": ref_auc,
        "reference_expected_cost": ref_cost,
        "decayed": bool(reasons),
        "reasons": reasons,
    }
