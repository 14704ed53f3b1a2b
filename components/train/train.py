"""Train: fit one algorithm on the transformed training rows; save transformer + estimator as one
scikit-learn Pipeline (it predicts from raw rows) beside the feature spec serving validates with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from components.common.artifacts import load_model, read_dataset, read_json, save_model
from components.common.errors import StageError
from components.common.estimators import make_estimator

STAGE = "train"


def tuned_params(tuned_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, cross-validation summary) from the tune stage's result."""
    result = read_json(Path(tuned_dir) / "result.json")
    cv = {
        "cv_roc_auc": result["best_score"],
        "cv_std": result.get("best_std"),
        "trials": result.get("trials"),
        "backend": result.get("backend"),
    }
    return dict(result["best_params"]), cv


def run(
    train_path: str,
    transformer_dir: str,
    algorithm: str,
    params: dict[str, Any],
    seed: int,
    model_out: str,
    cv: dict[str, Any] | None = None,
    transformer_sha256: str | None = None,
) -> dict[str, Any]:
    # the features stage's digest of the transformer dir: checked before it is unpickled
    transformer, spec = load_model(transformer_dir, transformer_sha256)
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
    model_spec = {**spec, "algorithm": algorithm, "params": params, "seed": seed, "cv": cv or {}}
    meta = save_model(model, model_out, model_spec)
    return {**meta, "algorithm": algorithm, "params": params, "rows": len(df), **(cv or {})}
