"""The local tuning backend (tune/optuna_backend.py): a real Optuna study over real cross-validation
on the prepared sample features — its trial limit, the params it tries first, failed and pruned
trials, what it returns (best params, rounds, history, fold models), and its small helpers."""

from __future__ import annotations

import pytest

from components.common.errors import StageError
from components.common.search_space import ParamSpec
from components.tune.optuna_backend import run_optuna, stop_reason, trial_name

FAST_LGBM = {"n_estimators": 60, "learning_rate": 0.2, "n_jobs": 1}


def _space(**specs):
    return {name: ParamSpec(**spec) for name, spec in specs.items()}


def _study(prepared, algorithm, space, fixed, max_trials, **kwargs):
    """Tune `algorithm` over `space`: 3 stratified folds, seed 1, a 600 s budget."""
    _, train, transformer, spec = prepared
    return run_optuna(
        train, spec, transformer, algorithm, space, fixed, 3, "stratified", 1,
        max_trials=max_trials, time_budget_s=600, **kwargs,
    )  # fmt: skip


def _lgbm_study(prepared, space, max_trials, fixed=FAST_LGBM, **kwargs):
    return _study(prepared, "lightgbm", space, fixed, max_trials, **kwargs)


def test_max_trials_is_respected(prepared):
    space = _space(learning_rate={"type": "float", "low": 0.05, "high": 0.5, "log": True})
    out = _lgbm_study(prepared, space, 4)
    assert out["trials"] == 4 and out["trials_complete"] >= 1
    assert out["stopped_by"] == "max_trials" and out["max_trials"] == 4
    assert 0.05 <= out["best_params"]["learning_rate"] <= 0.5
    assert out["best_params"]["n_jobs"] == 1  # the fixed params stay
    # a pruned trial's value is its running mean when pruned (Optuna's): the best is a complete one
    done = [t["value"] for t in out["history"] if t["state"] == "COMPLETE"]
    assert out["best_score"] == max(done)


def test_the_result_describes_every_trial(prepared):
    space = _space(num_leaves={"type": "int", "low": 4, "high": 64})
    out = _lgbm_study(prepared, space, 5)
    assert out["backend"] == "optuna" and out["algorithm"] == "lightgbm"
    history = out["history"]
    assert [t["number"] for t in history] == list(range(5))
    assert [t["name"] for t in history] == [f"tune-lightgbm-{i}" for i in range(5)]
    states = [t["state"] for t in history]
    assert out["trials_complete"] == states.count("COMPLETE")
    assert out["trials_pruned"] == states.count("PRUNED")
    assert out["trials_failed"] == states.count("FAIL") == 0
    assert out["trials_complete"] + out["trials_pruned"] == 5
    best = history[out["best_trial"]]
    assert best["state"] == "COMPLETE" and best["value"] == out["best_score"]
    assert out["best_std"] == best["std"] and out["best_std"] >= 0
    assert out["best_params"]["num_leaves"] == best["params"]["num_leaves"]
    # LightGBM stops early in each fold: the best trial's rounds replace the configured count
    assert out["best_params"]["n_estimators"] == best["rounds"]
    assert 1 <= best["rounds"] <= FAST_LGBM["n_estimators"] * 3 / 2
    assert all(t["seconds"] >= 0 for t in history if t["state"] == "COMPLETE")
    assert out["wall_s"] >= 0 and out["trials_per_min"] > 0 and out["time_budget_s"] == 600


def test_the_best_trials_fold_models_are_kept(prepared):
    space = _space(num_leaves={"type": "int", "low": 4, "high": 64})
    models: list = ["stale"]
    # six trials: with seed 1 a later complete trial scores lower than the best (trial 3)
    out = _lgbm_study(prepared, space, 6, models_out=models)
    done = [t for t in out["history"] if t["state"] == "COMPLETE"]
    assert done[-1]["number"] != out["best_trial"]
    assert len(models) == 3 and "stale" not in models  # one model per fold
    _, train, transformer, spec = prepared
    names = [f["name"] for f in spec["features"]]
    x = transformer.transform(train[names].head(20))
    for model in models:
        assert model.predict_proba(x).shape == (20, 2)
        assert model.get_params()["num_leaves"] == out["best_params"]["num_leaves"]


def test_a_failing_trial_is_recorded_and_the_study_goes_on(prepared):
    space = _space(boosting_type={"type": "categorical", "choices": ["gbdt", "not-a-booster"]})
    out = _lgbm_study(prepared, space, 6)
    states = [t["state"] for t in out["history"]]
    assert "FAIL" in states and "COMPLETE" in states
    assert out["trials_failed"] == states.count("FAIL")
    assert out["best_params"]["boosting_type"] == "gbdt"
    failed = next(t for t in out["history"] if t["state"] == "FAIL")
    assert "not-a-booster" in failed["error"] and failed["value"] is None


def test_a_study_where_every_trial_fails_stops_with_a_clear_error(prepared):
    space = _space(penalty={"type": "categorical", "choices": ["bogus-1", "bogus-2"]})
    with pytest.raises(StageError, match=r"logistic_regression: all 3 trials failed \(e\.g\."):
        _study(prepared, "logistic_regression", space, {}, 3)


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


def test_empty_and_repeated_first_params_are_tried_once(prepared):
    space = _space(num_leaves={"type": "int", "low": 8, "high": 64})
    first = [{}, {"num_leaves": 20}, {"num_leaves": 20}, {"num_leaves": 30}]
    out = _lgbm_study(prepared, space, 3, first=first)
    assert [t["params"] for t in out["history"]][:2] == [{"num_leaves": 20}, {"num_leaves": 30}]
    assert out["history"][2]["params"] != {"num_leaves": 20}


def test_searched_params_override_the_fixed_ones(prepared):
    space = _space(num_leaves={"type": "categorical", "choices": [7]})
    models: list = []
    out = _lgbm_study(prepared, space, 1, fixed={**FAST_LGBM, "num_leaves": 99}, models_out=models)
    assert out["best_params"]["num_leaves"] == 7
    assert {m.get_params()["num_leaves"] for m in models} == {7}  # what the trial fitted


@pytest.mark.filterwarnings("ignore:lbfgs failed to converge")  # few iterations: fast
def test_a_model_without_rounds_keeps_its_params(prepared):
    """Logistic regression has no boosting rounds: no n_estimators is added."""
    space = _space(C={"type": "categorical", "choices": [1.0]})
    out = _study(prepared, "logistic_regression", space, {"max_iter": 50}, 1)
    assert out["best_params"] == {"max_iter": 50, "C": 1.0}
    assert out["history"][0]["rounds"] is None


@pytest.mark.parametrize(
    ("algorithm", "number", "name"),
    [
        ("lightgbm", 0, "tune-lightgbm-0"),
        ("random_forest", 12, "tune-random-forest-12"),
        ("XGBoost", 3, "tune-xgboost-3"),
    ],
)
def test_trial_name_is_a_kubernetes_style_name(algorithm, number, name):
    assert trial_name(algorithm, number) == name


@pytest.mark.parametrize(
    ("trials", "max_trials", "budget", "reason"),
    [
        (10, 10, None, "max_trials"),
        (10, 10, 60.0, "max_trials"),  # all trials ran: the budget did not bind
        (4, 10, 60.0, "time_budget"),
        (4, 10, None, "max_trials"),  # fewer without a budget: Optuna stopped for another reason
        (0, 10, 0.0, "time_budget"),
    ],
)
def test_stop_reason(trials, max_trials, budget, reason):
    assert stop_reason(trials, max_trials, budget) == reason
