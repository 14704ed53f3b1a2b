"""The tuning budget's quality-vs-time curve: trials vs CV AUC vs test AUC vs seconds.

For each seed, one study of `--trials` trials with the configured search (start params as trial
0, successive halving over the folds, the configured threads) on the default training window;
then for every prefix of n trials (a seeded, sequential study of n trials is exactly that
prefix) the best trial by CV, its final model as the train stage builds it (`final_fit`) and
that model's test ROC AUC on the test window (2016). Seconds are the study's own wall time up to
trial n (trials run one at a time). The default `max_trials` is read off this curve.

    uv run python benchmarks/tuning_curve.py [--trials 16] [--seeds 42 7 2026] [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.tuning_throughput import prepare
from components.common.artifacts import load_model, read_dataset
from components.common.config import TrainingConfig
from components.train.train import fit_folds
from components.tune.optuna_backend import run_optuna
from components.tune.tune import final_fit, fixed_params
from pipelines.cli_args import parse_overrides


def curve(folder: Path, training: dict[str, Any], seed: int, trials: int) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    cfg = TrainingConfig.model_validate({**training, "seed": seed, "max_trials": trials})
    algorithm = cfg.algorithms[0]
    transformer, spec = load_model(folder / "transformer")
    train, test = read_dataset(folder / "train.parquet"), read_dataset(folder / "test.parquet")
    names = [f["name"] for f in spec["features"]]
    x, y = transformer.transform(train[names]), train[spec["label"]].to_numpy()
    xt, yt = transformer.transform(test[names]), test[spec["label"]].to_numpy()
    fixed = fixed_params(cfg, algorithm)
    started = time.perf_counter()
    result = run_optuna(
        train, spec, transformer, algorithm, cfg.search_spaces[algorithm], fixed,
        cfg.cv_folds, cfg.cv_strategy, seed, trials, None, None, [cfg.start_for(algorithm)],
    )  # fmt: skip
    study_s = time.perf_counter() - started
    history = result["history"]
    spent = sum(float(t.get("seconds") or 0.0) for t in history)
    scale = study_s / spent if spent else 1.0  # pruned trials record no seconds: spread the rest
    rows, best, elapsed, scores = [], None, 0.0, {}
    for n, trial in enumerate(history, 1):
        elapsed += float(trial.get("seconds") or 0.0) * scale
        if trial["state"] == "COMPLETE" and (best is None or trial["value"] > best["value"]):
            best = trial
        if best is not None and best["number"] not in scores:
            params = {**fixed, **cfg.start_for(algorithm), **best["params"]}
            final = final_fit(cfg, algorithm, params)
            if final["method"] == "folds":
                model = fit_folds(algorithm, final, seed, spec, x, y)
            else:  # one refit with the folds' rounds, as the train stage does
                from components.common.estimators import make_estimator

                model, kwargs = make_estimator(
                    algorithm, {**params, "n_estimators": best["rounds"] or 100}, seed, spec
                )
                model.fit(x, y, **kwargs)
            scores[best["number"]] = float(roc_auc_score(yt, model.predict_proba(xt)[:, 1]))
        rows.append(
            {
                "seed": seed,
                "trials": n,
                "state": trial["state"],
                "study_s": round(elapsed, 1),
                "best_trial": best and best["number"],
                "best_cv_roc_auc": best and round(best["value"], 5),
                "test_roc_auc": best and round(scores[best["number"]], 5),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 7, 2026])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    with tempfile.TemporaryDirectory(prefix="mlpipe-curve-") as tmp:
        folder = Path(tmp)
        _, _, training = prepare(folder)
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if section != "model_training":
                sys.exit(f"--set {key}: only model_training keys apply here")
            training[name] = value
        table = [row for seed in args.seeds for row in curve(folder, training, seed, args.trials)]
    for row in table:
        print(json.dumps(row))
    print("\ntrials  " + "  ".join(f"seed {s}: s / test AUC" for s in args.seeds))
    for n in range(1, args.trials + 1):
        cells = [r for r in table if r["trials"] == n]
        print(f"{n:>6}  " + "  ".join(f"{r['study_s']:>8} / {r['test_roc_auc']}" for r in cells))


if __name__ == "__main__":
    main()
