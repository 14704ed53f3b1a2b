"""Why the model decides as it does: permutation importance (how much ROC AUC drops when one
feature's values are shuffled) and partial dependence of the top features (the mean score when
every row takes the same value of the feature). Both on a sample of the test rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MAX_CATEGORIES = 30  # partial dependence of a categorical feature: its most frequent codes


def sample_rows(
    df: pd.DataFrame, y: np.ndarray, n: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    if len(df) <= n:
        return df, y
    idx = np.random.default_rng(seed).choice(len(df), size=n, replace=False)
    return df.iloc[idx], y[idx]


def permutation_importance(
    predict: Any, X: pd.DataFrame, y: np.ndarray, repeats: int, seed: int
) -> list[dict[str, Any]]:
    """Per feature: mean and std of the ROC AUC drop over `repeats` shuffles, largest first.
    `predict(X)` returns P(label = 1)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    baseline = roc_auc_score(y, predict(X))
    out = []
    for feature in X.columns:
        drops = []
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[feature] = rng.permutation(shuffled[feature].to_numpy())
            drops.append(baseline - roc_auc_score(y, predict(shuffled)))
        out.append({"feature": feature, "mean": float(np.mean(drops)), "std": float(np.std(drops))})
    return sorted(out, key=lambda r: r["mean"], reverse=True)


def grid_for(values: pd.Series, categorical: bool, points: int) -> list[float]:
    if categorical:
        top = values.value_counts().index[:MAX_CATEGORIES].sort_values()
        return [float(v) for v in top]
    grid = np.unique(np.quantile(values.to_numpy(dtype=float), np.linspace(0.02, 0.98, points)))
    return [float(v) for v in grid]


def partial_dependence(
    predict: Any, X: pd.DataFrame, feature: str, grid: list[float]
) -> list[float]:
    """Mean P(label = 1) with `feature` set to each grid value in every row (one batched call)."""
    import pandas as pd

    batch = pd.concat([X] * len(grid), ignore_index=True)
    values = np.repeat(np.asarray(grid, dtype=float), len(X))
    batch[feature] = values.astype(X[feature].dtype, copy=False)
    p = predict(batch)
    return [float(v) for v in p.reshape(len(grid), len(X)).mean(axis=1)]


def explain(
    predict: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    categorical: set[str],
    *,
    sample_rows_n: int,
    repeats: int,
    top_features: int,
    grid_points: int,
    seed: int,
) -> dict[str, Any]:
    Xs, ys = sample_rows(X, y, sample_rows_n, seed)
    importance = permutation_importance(predict, Xs, ys, repeats, seed)
    # partial dependence averages over fewer rows: its curve settles long before 5,000
    Xp, _ = sample_rows(Xs, ys, min(len(Xs), 1000), seed)
    dependence = []
    for row in importance[:top_features]:
        feature = row["feature"]
        grid = grid_for(Xs[feature], feature in categorical, grid_points)
        dependence.append(
            {
                "feature": feature,
                "kind": "categorical" if feature in categorical else "numeric",
                "grid": grid,
                "average": partial_dependence(predict, Xp, feature, grid),
            }
        )
    return {
        "rows": len(Xs),
        "repeats": repeats,
        "permutation_importance": importance,
        "partial_dependence": dependence,
    }
