"""Per-slice metrics: one slice per value of a categorical feature or per bucket of a numeric one,
and the largest gap between slices large enough to judge (`min_rows`).
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SLICE_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")


def bucket_labels(values: pd.Series, edges: list[float]) -> pd.Series:
    """Numeric values → bucket names: edges [25, 35] give "<25", "25-35", ">=35"."""
    import pandas as pd

    def fmt(v: float) -> str:
        return f"{v:g}"

    names = [f"<{fmt(edges[0])}"]
    names += [f"{fmt(a)}-{fmt(b)}" for a, b in itertools.pairwise(edges)]
    names.append(f">={fmt(edges[-1])}")
    which = np.searchsorted(np.asarray(edges, dtype=float), values.to_numpy(dtype=float), "right")
    return pd.Series(np.asarray(names, dtype=object)[which], index=values.index)


def _slice_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    from sklearn import metrics as skm

    pred = (p >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "rows": len(y),
        "positive_rate": float(y.mean()),
        "predicted_positive_rate": float(pred.mean()),
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else None,  # undefined for one class
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
    }


def compute_slices(
    df: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    features: list[str],
    buckets: dict[str, list[float]],
    min_rows: int,
) -> list[dict[str, Any]]:
    """For each sliced feature: its slices (value, metrics, `judged` when rows >= min_rows) and,
    per metric, the gap between the best and the worst judged slice."""
    out = []
    for feature in [*features, *buckets]:
        keys = bucket_labels(df[feature], buckets[feature]) if feature in buckets else df[feature]
        keys = keys.astype(str).to_numpy()
        slices = []
        for value in sorted(np.unique(keys), key=_natural):
            mask = keys == value
            entry = {"value": str(value), **_slice_metrics(y[mask], p[mask], threshold)}
            entry["judged"] = entry["rows"] >= min_rows
            slices.append(entry)
        out.append({"feature": feature, "slices": slices, "gaps": _gaps(slices)})
    return out


def _gaps(slices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    gaps = {}
    for metric in SLICE_METRICS:
        judged = [s for s in slices if s["judged"] and s[metric] is not None]
        if len(judged) < 2:
            continue
        best = max(judged, key=lambda s: s[metric])
        worst = min(judged, key=lambda s: s[metric])
        gaps[metric] = {
            "gap": float(best[metric] - worst[metric]),
            "best": best["value"],
            "worst": worst["value"],
        }
    return gaps


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
# a code ("-1"), or a bucket name ("<-10", "-10-0", "1e-05-0.001", ">=10"): its (lower) number;
# the sign and :g's exponent are part of a number, so splitting on "-" would not do
_SLICE_NAME = re.compile(f"(?:<|>=)?({_NUMBER})(?:-{_NUMBER})?", re.IGNORECASE)


def _natural(value: str) -> tuple[int, float, str]:
    """Numeric codes in numeric order ("2" < "10"), bucket names by their lower edge."""
    match = _SLICE_NAME.fullmatch(value)
    if match is None:
        return (1, 0.0, value)
    number = float(match.group(1))
    return (0, number - (0.5 if value.startswith("<") else 0), value)
