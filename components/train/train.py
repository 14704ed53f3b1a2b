"""Train: fit one algorithm on the transformed training rows; save transformer + estimator as one
scikit-learn Pipeline (it predicts from raw rows) beside the feature spec serving validates with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from components.common.artifacts import load_model, read_dataset, read_json, save_model
from components.common.errors import StageError
from components.common.estimators import EARLY_STOPPING, fit_with_validation, make_estimator
from components.common.fold_ensemble import FoldEnsemble, fold_fit_key, reusable_fold_models
from components.common.splitting import split_indices

STAGE = "train"


def tuned_params(tuned_dir: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(params, cross-validation summary, final fit or None: one refit) from the tune result."""
    result = read_json(Path(tuned_dir) / "result.json")
    cv = {
        "cv_roc_auc": result["best_score"],
        "cv_std": result.get("best_std"),
        "trials": result.get("trials"),
        "backend": result.get("backend"),
    }
    return dict(result["best_params"]), cv, result.get("final_fit")


def run(
    train_path: str,
    transformer_dir: str,
    algorithm: str,
    params: dict[str, Any],
    seed: int,
    model_out: str,
    cv: dict[str, Any] | None = None,
    transformer_sha256: str | None = None,
    final: dict[str, Any] | None = None,
    fold_models: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Fit the final model (`final`: the tune result's `final_fit`; default one refit) and save
    it with the transformer as one Pipeline. `fold_models`: (folder, artifact metadata) of the
    tune stage's fold models: with `final_fit: folds` they are the model when they were fitted
    with the same settings (fold_ensemble.reusable_fold_models), instead of fitting them again."""
    # the features stage's digest of the transformer dir: checked before it is unpickled
    transformer, spec = load_model(transformer_dir, transformer_sha256)
    names = [f["name"] for f in spec["features"]]
    df = read_dataset(train_path)
    x, y = df[names], df[spec["label"]].to_numpy()
    if len(np.unique(y)) < 2:
        raise StageError(STAGE, "the training rows hold a single class", subject=spec["label"])
    final = final or {"method": "refit"}
    try:
        if final["method"] == "folds":
            key = fold_fit_key(algorithm, final, seed, len(df))
            estimator = reusable_fold_models(*fold_models, key) if fold_models else None
            if estimator is not None:
                print(f"[train {algorithm}] the tune stage's {len(estimator.members)} fold models")
            else:
                estimator = fit_folds(algorithm, final, seed, spec, transformer.transform(x), y)
            params = dict(final["params"])  # what the fold models were fitted with
        else:
            estimator, fit_kwargs = make_estimator(algorithm, params, seed, spec)
            estimator.fit(transformer.transform(x), y, **fit_kwargs)
    except (TypeError, ValueError) as exc:  # e.g. a parameter the estimator does not know
        raise StageError(STAGE, f"{algorithm}: {exc}", subject=algorithm) from exc
    # transformer was fitted by the features stage; both steps are fitted, so no refit here
    model = Pipeline([("transform", transformer), ("model", estimator)])
    model_spec = {**spec, "algorithm": algorithm, "params": params, "seed": seed, "cv": cv or {}}
    model_spec["final_fit"] = final["method"]
    meta = save_model(model, model_out, model_spec)
    return {
        **meta,
        "algorithm": algorithm,
        "params": params,
        "final_fit": final["method"],
        "rows": len(df),
        **(cv or {}),
    }


def fit_folds(
    algorithm: str, final: dict[str, Any], seed: int, spec: dict[str, Any], x: Any, y: Any
) -> FoldEnsemble:
    """The k fold models of cross-validation, fitted again: the same folds (from the seed), the
    same params and round cap, early stopping on each fold's held-out rows. With the same seed
    and deterministic estimators they are the models the tune stage scored."""
    members = []
    splits = split_indices(y, int(final["folds"]), final.get("strategy", "stratified"), seed)
    for k, (fit_idx, val_idx) in enumerate(splits, 1):
        estimator, fit_kwargs = make_estimator(
            algorithm, final["params"], seed, spec, early_stopping=algorithm in EARLY_STOPPING
        )
        rounds = fit_with_validation(
            estimator, algorithm, fit_kwargs, x[fit_idx], y[fit_idx], x[val_idx], y[val_idx]
        )
        print(f"[train {algorithm}] fold model {k}/{len(splits)}: {rounds} rounds", flush=True)
        members.append(estimator)
    return FoldEnsemble(members)
