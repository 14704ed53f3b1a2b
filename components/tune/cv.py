"""Cross-validation of one parameter set: the objective of both tuning backends.

The local Optuna study and each Katib trial call `cross_validate`, so both backends score a
parameter set the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from components.common.estimators import EARLY_STOPPING, fit_with_validation, make_estimator
from components.common.splitting import split_indices


@dataclass
class CVResult:
    mean: float
    std: float
    fold_scores: list[float]
    best_iterations: list[int] = field(default_factory=list)
    seconds: float = 0.0
    models: list[Any] = field(default_factory=list)  # the fold models, when kept

    def rounds(self) -> int | None:
        """Rounds for the final fit on all rows: the folds' mean best round, scaled up for the
        larger training set (each fold trained on (k-1)/k of the rows)."""
        if not self.best_iterations:
            return None
        k = len(self.fold_scores)
        return max(1, round(float(np.mean(self.best_iterations)) * k / max(k - 1, 1)))


def cross_validate(
    train: pd.DataFrame,
    spec: dict[str, Any],
    transformer: Any,
    algorithm: str,
    params: dict[str, Any],
    folds: int,
    strategy: str,
    seed: int,
    on_fold: Callable[[int, float], None] | None = None,
    order: np.ndarray | None = None,
    splits: list[tuple[np.ndarray, np.ndarray]] | None = None,
    keep_models: bool = False,
) -> CVResult:
    """ROC AUC over `folds` folds. `on_fold(step, running_mean)` may raise to stop (pruning).

    `splits`: the (train, validation) row indices to use instead of `split_indices(...)` (a Katib
    trial gets the tune task's folds this way); there must be `folds` of them. `keep_models`:
    the result holds the k fitted fold models (`final_fit: folds`: the final model)."""
    started = time.perf_counter()
    names = [f["name"] for f in spec["features"]]
    # The transformer was fitted on all training rows: scaling statistics leak across folds, a
    # negligible effect next to transforming each fold again for every trial.
    x = transformer.transform(train[names])
    y = train[spec["label"]].to_numpy()
    scores: list[float] = []
    rounds: list[int] = []
    models: list[Any] = []
    if splits is None:
        splits = split_indices(y, folds, strategy, seed, order)
    elif len(splits) != folds:
        raise ValueError(f"{len(splits)} folds given, {folds} expected")
    for step, (fit_idx, val_idx) in enumerate(splits):
        estimator, fit_kwargs = make_estimator(
            algorithm, params, seed, spec, early_stopping=algorithm in EARLY_STOPPING
        )
        best = fit_with_validation(
            estimator, algorithm, fit_kwargs, x[fit_idx], y[fit_idx], x[val_idx], y[val_idx]
        )
        if best is not None:
            rounds.append(best)
        scores.append(float(roc_auc_score(y[val_idx], estimator.predict_proba(x[val_idx])[:, 1])))
        if keep_models:
            models.append(estimator)
        if on_fold is not None:
            on_fold(step, float(np.mean(scores)))
    return CVResult(
        mean=float(np.mean(scores)),
        std=float(np.std(scores)),
        fold_scores=scores,
        best_iterations=rounds,
        seconds=time.perf_counter() - started,
        models=models,
    )
