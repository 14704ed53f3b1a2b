"""Train: fit one algorithm on the transformed training rows; save transformer + estimator as one
scikit-learn Pipeline (it predicts from raw rows) beside the feature spec serving validates with."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from components.common.artifacts import load_model, read_dataset, save_model
from components.common.errors import StageError

STAGE = "train"


def make_estimator(
    algorithm: str, params: dict[str, Any], seed: int, spec: dict[str, Any]
) -> tuple[ClassifierMixin, dict[str, Any]]:
    """The estimator and the fit() keyword arguments it needs (native categorical columns)."""
    native = spec.get("native_categorical_indices", [])
    if algorithm == "lightgbm":
        from lightgbm import LGBMClassifier

        est = LGBMClassifier(random_state=seed, verbose=-1, **params)
        return est, ({"categorical_feature": native} if native else {})
    if algorithm == "xgboost":
        from xgboost import XGBClassifier

        width = spec["transformed_width"]
        types = ["c" if i in set(native) else "q" for i in range(width)] if native else None
        est = XGBClassifier(
            random_state=seed, feature_types=types, enable_categorical=bool(native), **params
        )
        return est, {}
    if algorithm == "random_forest":
        return RandomForestClassifier(random_state=seed, **params), {}
    if algorithm == "logistic_regression":
        return LogisticRegression(random_state=seed, **params), {}
    raise StageError(STAGE, f"unknown algorithm {algorithm!r}", subject=algorithm)


def run(
    train_path: str,
    transformer_dir: str,
    algorithm: str,
    params: dict[str, Any],
    seed: int,
    model_out: str,
) -> dict[str, Any]:
    transformer, spec = load_model(transformer_dir)
    names = [f["name"] for f in spec["features"]]
    df = read_dataset(train_path)
    x, y = df[names], df[spec["label"]].to_numpy()
    if len(np.unique(y)) < 2:
        raise StageError(STAGE, "the training rows hold a single class", subject=spec["label"])
    try:
        estimator, fit_kwargs = make_estimator(algorithm, params, seed, spec)
        estimator.fit(transformer.transform(x), y, **fit_kwargs)
    except (TypeError, ValueError) as exc:  # e.g. a parameter the estimator does not know
        raise StageError(STAGE, f"{algorithm}: {exc}", subject=algorithm) from exc
    # transformer was fitted by the features stage; both steps are fitted, so no refit here
    model = Pipeline([("transform", transformer), ("model", estimator)])
    model_spec = {**spec, "algorithm": algorithm, "params": params, "seed": seed}
    meta = save_model(model, model_out, model_spec)
    return {**meta, "algorithm": algorithm, "params": params, "rows": len(df)}
