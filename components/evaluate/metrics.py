"""Scores → metrics: the business threshold, threshold metrics, curves for the report.

All functions take `y` (0/1 labels) and `p` (P(label = 1)) as numpy arrays and return JSON-ready
values. Curves are thinned to at most MAX_CURVE_POINTS points so the evaluation JSON stays small.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_CURVE_POINTS = 200
CALIBRATION_BINS = 10
HISTOGRAM_BINS = 40


def expected_costs(
    y: np.ndarray, p: np.ndarray, thresholds: np.ndarray, cost_fp: float, cost_fn: float
) -> np.ndarray:
    """Mean cost per row when every row with p >= t is called positive, for each t."""
    pos = np.sort(p[y == 1])
    neg = np.sort(p[y == 0])
    false_neg = np.searchsorted(pos, thresholds, side="left")  # positives below t
    false_pos = len(neg) - np.searchsorted(neg, thresholds, side="left")  # negatives at/above t
    return (cost_fp * false_pos + cost_fn * false_neg) / len(y)


def candidate_thresholds(p: np.ndarray, n: int = 2001) -> np.ndarray:
    """Score quantiles (where the cost can change) plus a regular grid, inside (0, 1)."""
    grid = np.concatenate([np.quantile(p, np.linspace(0, 1, n)), np.linspace(0.001, 0.999, 999)])
    return np.unique(np.clip(grid, 1e-6, 1 - 1e-6))


def min_cost_threshold(
    y: np.ndarray, p: np.ndarray, cost_fp: float, cost_fn: float
) -> tuple[float, float]:
    """(threshold, expected cost per row) minimising the expected cost on these rows. Ties go to
    the threshold closest to the cost-ratio optimum of a calibrated model, fp / (fp + fn)."""
    thresholds = candidate_thresholds(p)
    costs = expected_costs(y, p, thresholds, cost_fp, cost_fn)
    best = np.flatnonzero(np.isclose(costs, costs.min(), rtol=0, atol=1e-12))
    prior = cost_fp / (cost_fp + cost_fn)
    pick = best[np.argmin(np.abs(thresholds[best] - prior))]
    return float(thresholds[pick]), float(costs[pick])


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn import metrics as skm

    pred = (p >= threshold).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "predicted_positive_rate": float(pred.mean()),
    }


def compute_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, cost_fp: float, cost_fn: float
) -> dict[str, float]:
    """Ranking and probability metrics, and the threshold metrics at `threshold`."""
    from sklearn import metrics as skm

    cost = expected_costs(y, p, np.array([threshold]), cost_fp, cost_fn)[0]
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)),
        "pr_auc": float(skm.average_precision_score(y, p)),
        **threshold_metrics(y, p, threshold),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "expected_cost": float(cost),
        "decision_threshold": float(threshold),
        "positive_rate": float(y.mean()),
        "rows": len(y),
    }


def _thin(*columns: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> list[np.ndarray]:
    """Keep at most `max_points` points, spread evenly along the curve's length (first and last
    kept); the first two columns are the curve's x and y."""
    x, y = columns[0], columns[1]
    if len(x) <= max_points:
        return list(columns)
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    targets = np.linspace(0.0, length[-1], max_points)
    idx = np.unique(np.clip(np.searchsorted(length, targets), 0, len(x) - 1))
    idx = np.unique(np.concatenate([[0], idx, [len(x) - 1]]))
    if len(idx) > max_points:  # drop interior points, never the ends
        idx = np.concatenate([idx[: max_points - 1], idx[-1:]])
    return [c[idx] for c in columns]


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def roc_points(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    """The ROC curve in the shape of KFP's `log_roc_curve` (sklearn's first threshold, +inf,
    is reported as 1.0 so the curve survives JSON)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    fpr, tpr, thr = _thin(fpr, tpr, np.minimum(thr, 1.0))
    return {"fpr": _floats(fpr), "tpr": _floats(tpr), "threshold": _floats(thr)}


def pr_points(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, p)
    recall, precision = _thin(recall, precision)
    return {"recall": _floats(recall), "precision": _floats(precision)}


def calibration(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, list]:
    """Mean predicted probability vs observed positive rate in equal-width score bins (empty
    bins left out)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    keep = counts > 0
    predicted = np.bincount(which, weights=p, minlength=bins)[keep] / counts[keep]
    observed = np.bincount(which, weights=y, minlength=bins)[keep] / counts[keep]
    return {
        "mean_predicted": _floats(predicted),
        "observed": _floats(observed),
        "count": [int(c) for c in counts[keep]],
    }


def cost_curve(
    y: np.ndarray, p: np.ndarray, cost_fp: float, cost_fn: float, points: int = 101
) -> dict[str, list[float]]:
    thresholds = np.linspace(0.005, 0.995, points)
    return {
        "threshold": _floats(thresholds),
        "expected_cost": _floats(expected_costs(y, p, thresholds, cost_fp, cost_fn)),
    }


def histogram(y: np.ndarray, p: np.ndarray, bins: int = HISTOGRAM_BINS) -> dict[str, list]:
    edges = np.linspace(0, 1, bins + 1)
    return {
        "edges": _floats(edges),
        "negatives": [int(c) for c in np.histogram(p[y == 0], edges)[0]],
        "positives": [int(c) for c in np.histogram(p[y == 1], edges)[0]],
    }


def confusion(y: np.ndarray, p: np.ndarray, threshold: float, label: str) -> dict[str, list]:
    """The confusion matrix in the shape of KFP's `log_confusion_matrix` (rows: actual)."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])
    return {"categories": [f"not {label}", label], "matrix": matrix.tolist()}


def curves(y: np.ndarray, p: np.ndarray, cost_fp: float, cost_fn: float) -> dict[str, Any]:
    return {
        "roc": roc_points(y, p),
        "pr": pr_points(y, p),
        "calibration": calibration(y, p),
        "cost": cost_curve(y, p, cost_fp, cost_fn),
        "histogram": histogram(y, p),
    }
