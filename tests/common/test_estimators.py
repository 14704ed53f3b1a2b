"""The estimators of the supported algorithms: seeded, with the given params, native categorical
columns declared the way each library takes them, early stopping for the gradient-boosted ones
only, and an unknown algorithm refused by name."""

import numpy as np
import pytest

from components.common.errors import StageError
from components.common.estimators import (
    EARLY_STOPPING_ROUNDS,
    fit_with_validation,
    make_estimator,
)

SPEC = {"transformed_width": 3, "native_categorical_indices": [1]}


def _noise(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features and a label that do not depend on them: validation AUC stops improving early."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    x[:, 1] = rng.integers(0, 4, size=rows)  # the native categorical column
    return x, rng.integers(0, 2, size=rows)


@pytest.mark.parametrize(
    "algorithm, params",
    [
        ("lightgbm", {"num_leaves": 7}),
        ("xgboost", {"max_depth": 2}),
        ("random_forest", {"n_estimators": 5}),
        ("logistic_regression", {"C": 0.5}),
    ],
)
def test_each_algorithm_is_seeded_with_its_params(algorithm, params):
    est, _ = make_estimator(algorithm, params, seed=11, spec={"transformed_width": 3})
    got = est.get_params()
    assert got["random_state"] == 11
    assert all(got[k] == v for k, v in params.items())


def test_lightgbm_gets_the_native_categorical_columns_at_fit():
    _, fit_kwargs = make_estimator("lightgbm", {}, 0, SPEC)
    assert fit_kwargs == {"categorical_feature": [1]}
    assert make_estimator("lightgbm", {}, 0, {"transformed_width": 3})[1] == {}


def test_xgboost_declares_the_native_columns_as_feature_types():
    est, fit_kwargs = make_estimator("xgboost", {}, 0, SPEC)
    assert est.get_params()["feature_types"] == ["q", "c", "q"]
    assert est.get_params()["enable_categorical"] is True
    assert fit_kwargs == {}
    plain, _ = make_estimator("xgboost", {}, 0, {"transformed_width": 3})
    assert plain.get_params()["feature_types"] is None


def test_only_cross_validation_asks_xgboost_to_stop_early():
    assert make_estimator("xgboost", {}, 0, SPEC)[0].get_params()["early_stopping_rounds"] is None
    stopping, _ = make_estimator("xgboost", {}, 0, SPEC, early_stopping=True)
    assert stopping.get_params()["early_stopping_rounds"] == EARLY_STOPPING_ROUNDS


def test_an_unknown_algorithm_is_a_stage_error_naming_it():
    with pytest.raises(StageError, match="unknown algorithm 'catboost'"):
        make_estimator("catboost", {}, 0, SPEC)


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost"])
def test_gradient_boosting_stops_early_on_the_validation_fold(algorithm):
    x, y = _noise(300, seed=1)
    x_val, y_val = _noise(100, seed=2)
    rounds = 400
    est, fit_kwargs = make_estimator(
        algorithm, {"n_estimators": rounds}, 0, SPEC, early_stopping=True
    )
    best = fit_with_validation(est, algorithm, fit_kwargs, x, y, x_val, y_val)
    assert best is not None and 1 <= best < rounds - EARLY_STOPPING_ROUNDS
    assert est.predict_proba(x_val).shape == (100, 2)


def test_other_algorithms_fit_without_a_number_of_rounds():
    x, y = _noise(100, seed=3)
    est, fit_kwargs = make_estimator("logistic_regression", {}, 0, SPEC)
    assert fit_with_validation(est, "logistic_regression", fit_kwargs, x, y, x, y) is None
    assert est.predict_proba(x).shape == (100, 2)
