"""The estimators of the supported algorithms, built one way for tuning and for the final fit."""

from __future__ import annotations

from typing import Any

from components.common.errors import StageError

# Gradient-boosted families stop early on a validation fold during cross-validation; the final
# fit uses the number of rounds that cross-validation found.
EARLY_STOPPING = {"lightgbm", "xgboost"}
EARLY_STOPPING_ROUNDS = 50


def make_estimator(
    algorithm: str,
    params: dict[str, Any],
    seed: int,
    spec: dict[str, Any],
    early_stopping: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """The estimator and the fit() keyword arguments it needs (native categorical columns)."""
    native = spec.get("native_categorical_indices", [])
    if algorithm == "lightgbm":
        from lightgbm import LGBMClassifier

        est = LGBMClassifier(random_state=seed, verbose=-1, **params)
        return est, ({"categorical_feature": native} if native else {})
    if algorithm == "xgboost":
        from xgboost import XGBClassifier

        width = spec["transformed_width"]
        kinds = set(native)
        types = ["c" if i in kinds else "q" for i in range(width)] if native else None
        extra = {"early_stopping_rounds": EARLY_STOPPING_ROUNDS} if early_stopping else {}
        est = XGBClassifier(
            random_state=seed,
            feature_types=types,
            enable_categorical=bool(native),
            **extra,
            **params,
        )
        return est, {}
    if algorithm == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=seed, **params), {}
    if algorithm == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(random_state=seed, **params), {}
    raise StageError("train", f"unknown algorithm {algorithm!r}", subject=algorithm)


def fit_with_validation(
    estimator: Any,
    algorithm: str,
    fit_kwargs: dict[str, Any],
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
) -> int | None:
    """Fit; GBDTs stop early on (x_val, y_val). Returns the best number of rounds, if any."""
    if algorithm == "lightgbm":
        from lightgbm import early_stopping

        estimator.fit(
            x_train,
            y_train,
            eval_X=x_val,
            eval_y=y_val,
            eval_metric="auc",
            callbacks=[early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
            **fit_kwargs,
        )
        return int(estimator.best_iteration_ or estimator.n_estimators)
    if algorithm == "xgboost":
        estimator.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False, **fit_kwargs)
        return int(estimator.best_iteration) + 1
    estimator.fit(x_train, y_train, **fit_kwargs)
    return None
