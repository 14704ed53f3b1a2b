"""Unit tests of components/tune/cv.py: `cross_validate`, the objective both tuning backends
share (ROC AUC per fold, early-stopping rounds, given folds, pruning, kept fold models), and
`CVResult.rounds` (the final fit's rounds from the folds' best rounds)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.common.splitting import split_indices
from components.tune.cv import CVResult, cross_validate

FAST_LGBM = {"n_estimators": 200, "learning_rate": 0.1, "n_jobs": 1}
LOGISTIC = {"max_iter": 300}


def logistic(prepared, folds=3, **kwargs):
    """Cross-validate logistic regression (no early stopping) on the prepared rows, seed 1."""
    _, train, transformer, spec = prepared
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of a capped max_iter
        return cross_validate(
            train, spec, transformer, "logistic_regression", LOGISTIC, folds, "stratified", 1,
            **kwargs,
        )  # fmt: skip


def test_cross_validation_scores_each_fold(prepared):
    _, train, transformer, spec = prepared
    result = cross_validate(train, spec, transformer, "lightgbm", FAST_LGBM, 3, "stratified", 1)
    assert len(result.fold_scores) == 3 and 0.8 < result.mean < 1
    assert len(result.best_iterations) == 3 and all(0 < b <= 200 for b in result.best_iterations)
    assert result.rounds() >= max(1, int(np.mean(result.best_iterations)))


def test_a_model_without_early_stopping_has_no_rounds_and_keeps_no_models(prepared):
    result = logistic(prepared)
    assert len(result.fold_scores) == 3 and all(0.7 < s < 1 for s in result.fold_scores)
    assert result.mean == pytest.approx(np.mean(result.fold_scores))
    assert result.std == pytest.approx(np.std(result.fold_scores)) and result.std > 0
    assert result.best_iterations == [] and result.rounds() is None
    assert result.models == [] and result.seconds > 0


def test_the_same_seed_scores_the_same_and_given_folds_are_used_as_they_are(prepared):
    _, train, _, spec = prepared
    y = train[spec["label"]].to_numpy()
    first = logistic(prepared)
    assert logistic(prepared).fold_scores == first.fold_scores
    # the folds split_indices makes, given explicitly: the same scores
    given = split_indices(y, 3, "stratified", 1)
    assert logistic(prepared, splits=given).fold_scores == first.fold_scores
    # given folds in another order: the scores follow them
    assert logistic(prepared, splits=given[::-1]).fold_scores == first.fold_scores[::-1]


def test_each_fold_is_scored_on_its_own_validation_rows(prepared):
    _, train, transformer, spec = prepared
    y = train[spec["label"]].to_numpy()
    splits = split_indices(y, 2, "stratified", 3)
    result = logistic(prepared, folds=2, splits=splits, keep_models=True)
    x = transformer.transform(train[[f["name"] for f in spec["features"]]])
    for (_, val), model, score in zip(splits, result.models, result.fold_scores, strict=True):
        assert score == pytest.approx(roc_auc_score(y[val], model.predict_proba(x[val])[:, 1]))


def test_kept_models_are_one_fitted_model_per_fold(prepared):
    result = logistic(prepared, keep_models=True)
    assert len(result.models) == 3 and len({id(m) for m in result.models}) == 3
    assert all(hasattr(m, "coef_") for m in result.models)  # fitted


def test_given_folds_must_number_folds(prepared):
    _, train, _, spec = prepared
    two = split_indices(train[spec["label"]].to_numpy(), 2, "stratified", 1)
    with pytest.raises(ValueError, match="2 folds given, 3 expected"):
        logistic(prepared, folds=3, splits=two)


def test_on_fold_sees_the_running_mean_and_may_stop_the_run(prepared):
    seen: list[tuple[int, float]] = []
    result = logistic(prepared, on_fold=lambda step, mean: seen.append((step, mean)))
    scores = result.fold_scores
    assert seen == [
        (0, pytest.approx(scores[0])),
        (1, pytest.approx(np.mean(scores[:2]))),
        (2, pytest.approx(np.mean(scores))),
    ]

    class Pruned(Exception):
        pass

    calls: list[int] = []

    def prune(step: int, mean: float) -> None:
        calls.append(step)
        raise Pruned

    # the second fold cannot be fitted (one class): a stop after the first never reaches it
    _, train, _, spec = prepared
    y = train[spec["label"]].to_numpy()
    good = split_indices(y, 2, "stratified", 1)[0]
    negatives = np.flatnonzero(y == 0)
    one_class = (negatives[:300], good[1])
    with pytest.raises(ValueError):
        logistic(prepared, folds=2, splits=[good, one_class])
    with pytest.raises(Pruned):
        logistic(prepared, folds=2, splits=[good, one_class], on_fold=prune)
    assert calls == [0]


def test_a_validation_fold_with_one_class_scores_nan_not_a_number_to_trust(prepared):
    """sklearn has no AUC for one class: the fold (and the mean) is NaN, which the backends
    treat as a failed trial, not as a score."""
    _, train, _, spec = prepared
    y = train[spec["label"]].to_numpy()
    negatives, positives = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    fit = np.concatenate([negatives[:200], positives])
    result = logistic(prepared, folds=1, splits=[(fit, negatives[200:400])])
    assert np.isnan(result.fold_scores[0]) and np.isnan(result.mean)


def test_a_feature_missing_from_the_rows_is_a_key_error(prepared):
    _, train, transformer, spec = prepared
    missing = spec["features"][0]["name"]
    with pytest.raises(KeyError, match=missing):
        cross_validate(
            train.drop(columns=missing), spec, transformer, "logistic_regression", LOGISTIC,
            3, "stratified", 1,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("best", "folds", "rounds"),
    [
        ([], 3, None),
        ([90, 110, 100], 3, 150),  # mean 100 on 2/3 of the rows: 150 on all of them
        ([10, 11, 10, 11], 4, 14),  # 10.5 * 4/3 = 14
        ([40], 1, 40),  # one fold: no scaling (and no division by zero)
        ([0, 0], 2, 1),  # at least one round
    ],
)
def test_rounds_scale_the_mean_best_round_to_all_rows(best, folds, rounds):
    result = CVResult(mean=0.9, std=0.0, fold_scores=[0.9] * folds, best_iterations=best)
    assert result.rounds() == rounds
