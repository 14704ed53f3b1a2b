"""Tune: search one algorithm's parameters by cross-validation on the training rows.

Backends: `optuna` (local, in this task) and `katib` (an Experiment on the cluster). With
`hyperparameter_tuning: false` it scores the configured params by cross-validation only, so the
families can still be compared on the same footing.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from components.common.artifacts import atomic_dir, load_model, read_dataset
from components.common.config import TrainingConfig
from components.common.errors import StageError
from components.common.fold_ensemble import fold_fit_key, write_fold_models
from components.tune.cv import cross_validate
from components.tune.optuna_backend import run_optuna, trial_name
from components.tune.warm_start import features_digest, previous_best

STAGE = "tune"
RESULT_FILE = "result.json"
TRIALS_FILE = "trials.csv"


def _order(df: Any, keys: list[str]) -> np.ndarray | None:
    """Row order for time-aware folds: by the key columns (time, then id)."""
    if not keys:
        return None
    return np.lexsort([df[k].to_numpy() for k in reversed(keys)])


def untuned(
    train, spec, transformer, algorithm, cfg: TrainingConfig, order, models_out=None
) -> dict[str, Any]:
    fixed = {**fixed_params(cfg, algorithm), **cfg.start_for(algorithm)}
    result = cross_validate(
        train,
        spec,
        transformer,
        algorithm,
        fixed,
        cfg.cv_folds,
        cfg.cv_strategy,
        cfg.seed,
        order=order,
        keep_models=models_out is not None,
    )
    if models_out is not None:
        models_out[:] = result.models
    params = dict(fixed)
    if result.rounds() is not None:
        params["n_estimators"] = result.rounds()
    return {
        "backend": "none",
        "algorithm": algorithm,
        "best_params": params,
        "best_score": result.mean,
        "best_std": result.std,
        "best_trial": 0,
        "trials": 1,
        "trials_complete": 1,
        "trials_failed": 0,
        "trials_pruned": 0,
        "wall_s": round(result.seconds, 2),
        "trials_per_min": None,
        "history": [
            {
                "number": 0,
                "name": trial_name(algorithm, 0),
                "state": "COMPLETE",
                "value": result.mean,
                "std": result.std,
                "rounds": result.rounds(),
                "params": {},
                "seconds": round(result.seconds, 2),
                "error": None,
            }
        ],
    }


THREADED = {"lightgbm", "xgboost", "random_forest"}


def fixed_params(cfg: TrainingConfig, algorithm: str) -> dict[str, Any]:
    """The configured params plus the thread count: each ParallelFor iteration gets its share of
    the cores (threads_per_trial), for the trials and for the refit alike."""
    params = cfg.params_for(algorithm)
    if algorithm in THREADED:
        params["n_jobs"] = cfg.threads_per_trial
    return params


def run(
    train_path: str,
    transformer_dir: str,
    algorithm: str,
    training: dict[str, Any],
    out_dir: str,
    uris: tuple[str, str] | None = None,
    mlflow_ref: dict[str, str] | None = None,
    fold_models_dir: str | None = None,
) -> dict[str, Any]:
    """Tune `algorithm`; write result.json and trials.csv into `out_dir`; return the result.
    `uris`: the inputs' artifact URIs (their identity: the Katib backend's staging prefix).
    `mlflow_ref`: experiment, registered_model, tracking_uri: where the warm start looks.
    `fold_models_dir`: where the chosen params' fold models go (`final_fit: folds`, local
    backends), for the train stage; the result's `fold_models` is that artifact's metadata."""
    cfg = TrainingConfig.model_validate(training)
    transformer, spec = load_model(transformer_dir)
    train = read_dataset(train_path)
    order = _order(train, spec.get("keys", [])) if cfg.cv_strategy == "time" else None
    digest = features_digest(spec)
    keep = fold_models_dir is not None and final_fit(cfg, algorithm, {})["method"] == "folds"
    models: list[Any] = []
    if not cfg.hyperparameter_tuning:
        result = untuned(train, spec, transformer, algorithm, cfg, order, models if keep else None)
    elif cfg.tuning_backend == "optuna":
        space = cfg.search_spaces.get(algorithm)
        if not space:
            raise StageError(STAGE, f"no search space for {algorithm}", subject=algorithm)
        warm = previous_best(algorithm, digest, space, cfg.warm_start, **(mlflow_ref or {}))
        if warm:
            print(f"[tune {algorithm}] warm start: {len(warm)} earlier best param set(s)")
        result = run_optuna(
            train,
            spec,
            transformer,
            algorithm,
            space,
            fixed_params(cfg, algorithm),
            cfg.cv_folds,
            cfg.cv_strategy,
            cfg.seed,
            cfg.max_trials,
            cfg.time_budget_s,
            order,
            [cfg.start_for(algorithm), *warm],
            models_out=models if keep else None,
        )
    else:
        from components.common.splitting import split_indices
        from components.tune.katib_launcher import run_on_katib

        # Trial pods cannot read KFP's artifact store: the task stages the rows, the transformer
        # and these folds in the project's own store (katib_staging.py); the artifacts' URIs
        # name the staging prefix, so a retried task finds its experiment again.
        y = train[spec["label"]].to_numpy()
        result = run_on_katib(
            train_path,
            transformer_dir,
            algorithm,
            cfg,
            cfg.katib,
            splits=split_indices(y, cfg.cv_folds, cfg.cv_strategy, cfg.seed, order),
            identity=uris or (),
            fixed=fixed_params(cfg, algorithm),  # the local backend's, thread count included
        )
    result["cv_folds"], result["cv_strategy"] = cfg.cv_folds, cfg.cv_strategy
    result["final_fit"] = final_fit(cfg, algorithm, result["best_params"])
    result["features_digest"] = digest  # track tags the trials with it (warm_start.py)
    write_result(result, out_dir)
    if fold_models_dir is not None:
        why = "" if models else _why_no_fold_models(cfg, result)
        key = fold_fit_key(algorithm, result["final_fit"], cfg.seed, len(train)) if models else {}
        result["fold_models"] = write_fold_models(models, fold_models_dir, key, why)
    return result


def _why_no_fold_models(cfg: TrainingConfig, result: dict[str, Any]) -> str:
    if result["final_fit"]["method"] != "folds":
        return "final_fit is refit: one model on all rows"
    if result["backend"] == "katib":
        return "the Katib trials fitted them in their own pods"
    return "the best trial's models were not kept (a tie)"


def final_fit(cfg: TrainingConfig, algorithm: str, best: dict[str, Any]) -> dict[str, Any]:
    """How the train stage builds the final model: `folds` refits the k fold models exactly as
    cross-validation fitted them (same folds from the seed, same params with the configured
    round cap, early stopping on each fold's held-out rows); `refit` fits once on all rows with
    `best_params` (the folds' rounds scaled to all rows). Time-ordered folds always refit."""
    method = cfg.final_fit if cfg.cv_strategy == "stratified" else "refit"
    out: dict[str, Any] = {"method": method, "folds": cfg.cv_folds, "strategy": cfg.cv_strategy}
    if method == "folds":
        cap = fixed_params(cfg, algorithm).get("n_estimators")
        out["params"] = {**best, **({"n_estimators": cap} if cap is not None else {})}
    return out


def write_result(result: dict[str, Any], out_dir: str) -> None:
    from components.common.artifacts import write_json

    with atomic_dir(out_dir) as tmp:
        write_json(result, Path(tmp) / RESULT_FILE)
        with open(Path(tmp) / TRIALS_FILE, "w", newline="") as fh:
            writer = csv.writer(fh)
            names = sorted({k for t in result["history"] for k in t["params"]})
            writer.writerow(["number", "state", "cv_roc_auc", "seconds", *names, "error"])
            for t in result["history"]:
                writer.writerow(
                    [
                        t["number"],
                        t["state"],
                        t["value"],
                        t["seconds"],
                        *[t["params"].get(n) for n in names],
                        t.get("error") or "",
                    ]
                )


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The artifact metadata: the result without the per-trial history."""
    return {k: v for k, v in result.items() if k != "history"}
