"""Explanations: row sampling, permutation importance (the ROC AUC drop when one feature is
shuffled), the partial dependence grid and curve, and `explain` putting them together. A real
sklearn model fitted on a frame where one feature decides, one helps a little and one is noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression

from components.evaluate.explain import (
    MAX_CATEGORIES,
    explain,
    grid_for,
    partial_dependence,
    permutation_importance,
    sample_rows,
)

COLUMNS = ["noise", "code", "weak", "signal"]  # not in importance order


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame(
        {
            "signal": rng.normal(size=n),
            "weak": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "code": rng.integers(1, 5, n).astype(np.int64),  # a categorical code
        }
    )
    logit = 3 * X.signal + 0.5 * X.weak + 0.4 * (X.code == 3) + rng.normal(scale=0.5, size=n)
    y = (logit > 0).astype(int).to_numpy()
    X = X[COLUMNS]
    model = LogisticRegression().fit(X, y)

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(frame[COLUMNS])[:, 1]

    return X, y, predict


# ---------------------------------------------------------------- sample_rows


def test_sample_rows_keeps_a_small_set_whole():
    df = pd.DataFrame({"a": [1, 2, 3]})
    y = np.array([0, 1, 0])
    for n in (3, 10):
        got, labels = sample_rows(df, y, n, seed=0)
        assert got is df and labels is y


def test_sample_rows_draws_n_distinct_rows_with_their_labels_reproducibly():
    df = pd.DataFrame({"a": np.arange(100)}, index=np.arange(100) * 10)
    y = np.arange(100) % 7
    got, labels = sample_rows(df, y, 20, seed=3)
    assert len(got) == 20 and got["a"].is_unique
    assert (labels == got["a"].to_numpy() % 7).all()  # each label stays with its row
    again, _ = sample_rows(df, y, 20, seed=3)
    other, _ = sample_rows(df, y, 20, seed=4)
    assert got.index.equals(again.index) and not got.index.equals(other.index)


# ---------------------------------------------------------------- permutation importance


def test_permutation_importance_ranks_the_deciding_feature_first(fitted):
    X, y, predict = fitted
    before = X.copy()
    rows = permutation_importance(predict, X, y, repeats=3, seed=0)
    assert [r["feature"] for r in rows][:2] == ["signal", "weak"]
    by = {r["feature"]: r for r in rows}
    assert by["signal"]["mean"] > 0.2  # shuffling it costs most of the AUC
    assert by["signal"]["mean"] > by["weak"]["mean"] > abs(by["noise"]["mean"])
    assert abs(by["noise"]["mean"]) < 0.005 and by["noise"]["std"] < 0.005
    means = [r["mean"] for r in rows]
    assert means == sorted(means, reverse=True) and all(r["std"] >= 0 for r in rows)
    assert set(by) == set(X.columns) and all(set(r) == {"feature", "mean", "std"} for r in rows)
    pd.testing.assert_frame_equal(X, before)  # the caller's frame is not shuffled


def test_permutation_importance_is_reproducible_and_one_repeat_has_no_spread(fitted):
    X, y, predict = fitted
    first = permutation_importance(predict, X, y, repeats=2, seed=5)
    assert permutation_importance(predict, X, y, repeats=2, seed=5) == first
    assert permutation_importance(predict, X, y, repeats=2, seed=6) != first
    assert all(r["std"] == 0.0 for r in permutation_importance(predict, X, y, 1, seed=5))


def test_permutation_importance_on_one_class_is_undefined_not_a_number(fitted):
    """AUC has no value on one class: every drop is NaN (evaluate refuses such a test set before
    it gets here), never a made-up 0."""
    X, _, predict = fitted
    with pytest.warns(UndefinedMetricWarning):
        rows = permutation_importance(predict, X, np.ones(len(X), dtype=int), 1, seed=0)
    assert len(rows) == len(COLUMNS) and all(np.isnan(r["mean"]) for r in rows)


# ---------------------------------------------------------------- grid and partial dependence


def test_grid_for_a_categorical_feature_is_its_most_frequent_codes_in_order():
    few = pd.Series([3, 1, 1, 2, 3, 3])
    assert grid_for(few, categorical=True, points=2) == [1.0, 2.0, 3.0]  # points: numeric only
    # code c appears c + 1 times: the MAX_CATEGORIES most frequent are the highest codes
    many = pd.Series(np.repeat(np.arange(50), np.arange(50) + 1))
    grid = grid_for(many, categorical=True, points=10)
    assert grid == [float(c) for c in range(50 - MAX_CATEGORIES, 50)]


def test_grid_for_a_numeric_feature_spans_the_inner_quantiles():
    values = pd.Series(np.arange(1001, dtype=float))
    grid = grid_for(values, categorical=False, points=5)
    assert grid == pytest.approx([20.0, 260.0, 500.0, 740.0, 980.0])
    assert grid_for(pd.Series([7, 7, 7, 7]), categorical=False, points=10) == [7.0]
    ints = grid_for(pd.Series([1, 1, 1, 2, 2, 2, 3, 3, 3]), categorical=False, points=20)
    assert ints == sorted(set(ints)) and ints[0] >= 1.0 and ints[-1] <= 3.0 and len(ints) <= 20


def test_partial_dependence_is_the_mean_score_with_the_feature_set_everywhere(fitted):
    X, _, predict = fitted
    rows = X.head(200)
    before = rows.copy()
    grid = [-1.0, 0.0, 1.0]
    curve = partial_dependence(predict, rows, "signal", grid)
    expected = [float(predict(rows.assign(signal=v)).mean()) for v in grid]
    assert curve == pytest.approx(expected)
    assert curve[0] < curve[1] < curve[2]  # a positive coefficient: the curve rises
    pd.testing.assert_frame_equal(rows, before)


def test_partial_dependence_keeps_an_integer_columns_dtype(fitted):
    X, _, predict = fitted
    seen = []

    def predict_and_look(frame):
        seen.append(frame["code"].dtype)
        return predict(frame)

    curve = partial_dependence(predict_and_look, X.head(50), "code", [1.0, 3.0])
    assert seen == [np.dtype("int64")]  # one batched call, codes still integers
    assert curve[1] > curve[0]  # code 3 raises the score


# ---------------------------------------------------------------- explain


def test_explain_samples_ranks_and_draws_curves_for_the_top_features(fitted):
    X, y, predict = fitted
    sizes = []

    def counting(frame):
        sizes.append(len(frame))
        return predict(frame)

    out = explain(
        counting,
        X,
        y,
        {"code"},
        sample_rows_n=2500,
        repeats=2,
        top_features=2,
        grid_points=4,
        seed=0,
    )
    assert out["rows"] == 2500 and out["repeats"] == 2
    assert [r["feature"] for r in out["permutation_importance"]][:2] == ["signal", "weak"]
    curves = out["partial_dependence"]
    assert [c["feature"] for c in curves] == ["signal", "weak"]
    assert all(c["kind"] == "numeric" and len(c["grid"]) == len(c["average"]) == 4 for c in curves)
    # importance on the 2,500 sampled rows (1 baseline + 4 features x 2 repeats), then one
    # batched call per curve over at most 1,000 of them
    assert sizes == [2500] * 9 + [4 * 1000] * 2


def test_explain_marks_categorical_curves_and_keeps_fewer_rows_whole(fitted):
    X, y, predict = fitted
    out = explain(
        predict,
        X.head(300),
        y[:300],
        {"code"},
        sample_rows_n=5000,
        repeats=1,
        top_features=10,
        grid_points=3,
        seed=1,
    )
    assert out["rows"] == 300
    kinds = {c["feature"]: (c["kind"], c["grid"]) for c in out["partial_dependence"]}
    assert set(kinds) == set(COLUMNS)  # top_features beyond the features: all of them
    assert kinds["code"] == ("categorical", [1.0, 2.0, 3.0, 4.0])
    assert kinds["noise"][0] == "numeric" and len(kinds["noise"][1]) == 3
