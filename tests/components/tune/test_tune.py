"""The tune stage: cross-validation, the Optuna backend's limits and failure handling."""

import csv
import json
import time

import numpy as np
import pytest

from components.common.errors import StageError
from components.common.search_space import ParamSpec
from components.common.splitting import split_indices
from components.tune.optuna_backend import run_optuna
from components.tune.tune import run, summary

FAST_LGBM = {"n_estimators": 200, "learning_rate": 0.1, "n_jobs": 1}


def _space(**specs):
    return {name: ParamSpec(**spec) for name, spec in specs.items()}


def _logistic_study(prepared, space, max_trials, fixed=None):
    """Tune logistic regression over `space`: 3 stratified folds, seed 1, a 600 s budget."""
    _, train, transformer, spec = prepared
    fixed = {"max_iter": 300} if fixed is None else fixed
    return run_optuna(
        train, spec, transformer, "logistic_regression", space, fixed, 3, "stratified", 1,
        max_trials=max_trials, time_budget_s=600,
    )  # fmt: skip


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


def test_max_trials_is_respected(prepared):
    space = _space(C={"type": "float", "low": 0.01, "high": 10, "log": True})
    out = _logistic_study(prepared, space, 4)
    assert out["trials"] == 4 and out["trials_complete"] >= 1
    assert out["stopped_by"] == "max_trials"
    assert 0.01 <= out["best_params"]["C"] <= 10 and out["best_params"]["max_iter"] == 300
    assert out["best_score"] == max(t["value"] for t in out["history"] if t["value"] is not None)


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


def test_a_failing_trial_is_recorded_and_the_study_goes_on(prepared):
    space = _space(solver={"type": "categorical", "choices": ["lbfgs", "not-a-solver"]})
    out = _logistic_study(prepared, space, 6)
    states = [t["state"] for t in out["history"]]
    assert "FAIL" in states and "COMPLETE" in states
    assert out["trials_failed"] == states.count("FAIL")
    assert out["best_params"]["solver"] == "lbfgs"
    failed = next(t for t in out["history"] if t["state"] == "FAIL")
    assert "not-a-solver" in failed["error"]


def test_a_study_where_every_trial_fails_stops_with_a_clear_error(prepared):
    space = _space(penalty={"type": "categorical", "choices": ["bogus-1", "bogus-2"]})
    with pytest.raises(StageError, match=r"logistic_regression: all 3 trials failed \(e\.g\."):
        _logistic_study(prepared, space, 3, fixed={})


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


def test_the_study_tries_the_given_params_first_in_order(prepared):
    """`first`: the start params, then the warm start's earlier bests (warm_start.py)."""
    _, train, transformer, spec = prepared
    first = [{"num_leaves": 20}, {"num_leaves": 40}]
    space = _space(num_leaves={"type": "int", "low": 8, "high": 64})
    result = run_optuna(
        train, spec, transformer, "lightgbm", space, FAST_LGBM, 2, "stratified", 0, 3, None,
        None, first,
    )  # fmt: skip
    assert [t["params"] for t in result["history"][:2]] == first
