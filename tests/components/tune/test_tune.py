"""The tune stage: cross-validation, its run with and without tuning, the time budget and a
reproducible study (the Optuna backend's own tests: test_optuna_backend.py)."""

import csv
import json
import time

import numpy as np
import pytest

from components.common.search_space import ParamSpec
from components.common.splitting import split_indices
from components.tune.optuna_backend import run_optuna
from components.tune.tune import run, summary

FAST_LGBM = {"n_estimators": 200, "learning_rate": 0.1, "n_jobs": 1}


def _space(**specs):
    return {name: ParamSpec(**spec) for name, spec in specs.items()}


def _run_lightgbm(prepared, training, result_dir):
    """The tune stage's run for lightgbm on the prepared features."""
    d, *_ = prepared
    return run(
        str(d / "train.parquet"), str(d / "transformer"), "lightgbm", training, str(result_dir)
    )


def test_time_aware_folds_validate_on_later_rows():
    order = np.array([5, 1, 4, 2, 3, 0, 9, 8, 7, 6, 11, 10])
    for fit, val in split_indices(np.zeros(12), 3, "time", 0, order):
        assert order[fit].max() < order[val].min()


def test_time_budget_is_respected_and_reported_when_it_binds(prepared, capsys):
    _, train, transformer, spec = prepared
    space = _space(num_leaves={"type": "int", "low": 8, "high": 64})
    started = time.perf_counter()
    out = run_optuna(
        train,
        spec,
        transformer,
        "lightgbm",
        space,
        FAST_LGBM,
        3,
        "stratified",
        1,
        max_trials=500,
        time_budget_s=2.0,
    )
    elapsed = time.perf_counter() - started
    assert out["trials"] < 500
    longest = max(t["seconds"] or 0 for t in out["history"])
    # the study stops after the trial running at the limit; the slack covers the study's setup
    # and a busy machine (500 trials would take minutes)
    assert elapsed <= 2.0 + longest + 4.0
    # the cap made the result depend on machine speed: the result and the log say so
    assert out["stopped_by"] == "time_budget" and out["time_budget_s"] == 2.0
    assert summary(out)["stopped_by"] == "time_budget"  # the tune artifact's metadata
    assert f"stopped the study after {out['trials']} of 500 trials" in capsys.readouterr().out


def test_no_time_budget_by_default_and_same_seed_same_study(prepared, settings):
    assert settings.pipeline.model_training.time_budget_s is None
    _, train, transformer, spec = prepared
    space = _space(
        num_leaves={"type": "int", "low": 8, "high": 64},
        colsample_bytree={"type": "float", "low": 0.4, "high": 1.0},
    )
    args = (train, spec, transformer, "lightgbm", space, FAST_LGBM, 3, "stratified", 5)
    runs = [run_optuna(*args, max_trials=3, time_budget_s=None) for _ in range(2)]
    for out in runs:
        assert out["stopped_by"] == "max_trials" and out["trials"] == 3
    a, b = ({k: r[k] for k in ("best_params", "best_score", "best_trial")} for r in runs)
    assert a == b
    assert [t["value"] for t in runs[0]["history"]] == [t["value"] for t in runs[1]["history"]]


def test_run_without_tuning_scores_the_configured_params(prepared, tmp_path, settings):
    training = settings.pipeline.model_training.model_dump(mode="json")
    training.update(hyperparameter_tuning=False, params={"lightgbm": FAST_LGBM}, search_spaces={})
    training["start_params"] = {}
    out = _run_lightgbm(prepared, training, tmp_path / "result")
    assert out["backend"] == "none" and out["trials"] == 1
    # boosting rounds come from early stopping in cross-validation, capped by the config's 200
    assert 0 < out["best_params"]["n_estimators"] <= 200 * 3 / 2
    saved = json.loads((tmp_path / "result" / "result.json").read_text())
    assert saved["best_score"] == pytest.approx(out["best_score"])


def test_run_with_optuna_writes_result_and_trials(prepared, tmp_path, settings):
    training = settings.pipeline.model_training.model_dump(mode="json")
    training.update(max_trials=3, params={"lightgbm": {"n_estimators": 150}})
    out = _run_lightgbm(prepared, training, tmp_path / "result")
    assert out["backend"] == "optuna" and out["trials"] == 3
    assert out["best_params"]["n_jobs"] == training["threads_per_trial"]
    with open(tmp_path / "result" / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and "learning_rate" in rows[0]
    start = settings.pipeline.model_training.start_params["lightgbm"]  # trial 0, as configured
    assert out["history"][0]["params"] == start
