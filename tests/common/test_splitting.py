"""The train/test split (time windows, stratified random draw) and the cross-validation folds;
the split's error names the window as the config wrote it, even after KFP made it doubles."""

import numpy as np
import pandas as pd
import pytest

from components.common.errors import DataError
from components.common.splitting import split, split_indices


def test_an_empty_window_that_went_through_kfp_prints_whole_years():
    df = pd.DataFrame({"year": [2016, 2017], "employed": [0, 1]})
    through_kfp = {
        "method": "time",
        "train_window": [2015.0, 2015.0],
        "test_window": [2016.0, 2016.0],
    }
    with pytest.raises(DataError, match=r"the train split is empty \(window 2015-2015 of year\)$"):
        split(df, through_kfp, "employed", "year", "validate")


FRAME = pd.DataFrame(
    {"year": [2015] * 6 + [2016] * 4, "employed": [0, 1] * 5, "x": range(10)},
)
TIME = {"method": "time", "train_window": [2015, 2015], "test_window": [2016, 2016]}


def test_a_time_split_takes_each_window_and_renumbers_the_rows():
    train, test = split(FRAME, TIME, "employed", "year", "features")
    assert train["x"].tolist() == [0, 1, 2, 3, 4, 5]
    assert test["x"].tolist() == [6, 7, 8, 9]
    assert test.index.tolist() == [0, 1, 2, 3]


def test_a_time_split_without_the_time_column_names_it():
    with pytest.raises(DataError, match="time split needs the time column 'when'"):
        split(FRAME, TIME, "employed", "when", "features")


def test_a_window_bound_of_the_wrong_kind_is_a_data_error():
    dates = {**TIME, "train_window": ["2015-01-01", "2015-12-31"]}
    with pytest.raises(DataError):
        split(FRAME, dates, "employed", "year", "features")


def test_a_random_split_is_stratified_and_repeatable():
    df = pd.DataFrame({"employed": [0] * 80 + [1] * 20, "x": range(100)})
    cfg = {"method": "random", "test_fraction": 0.25, "seed": 7}
    train, test = split(df, cfg, "employed", None, "features")
    assert len(test) == 25 and test["employed"].sum() == 5  # a quarter of each label
    assert sorted([*train["x"], *test["x"]]) == list(range(100))
    again, _ = split(df, cfg, "employed", None, "features")
    assert again["x"].tolist() == train["x"].tolist()
    other, _ = split(df, {**cfg, "seed": 8}, "employed", None, "features")
    assert other["x"].tolist() != train["x"].tolist()


def test_an_unknown_split_method_is_refused():
    with pytest.raises(ValueError, match="unknown split method 'kfold'"):
        split(FRAME, {"method": "kfold"}, "employed", "year", "features")


def test_time_folds_validate_on_later_rows_than_they_train_on():
    order = np.array([5, 3, 9, 1, 7, 0, 8, 2, 6, 4])  # row i's time
    y = np.array([0, 1] * 5)
    folds = split_indices(y, 3, "time", seed=0, order=order)
    assert len(folds) == 3
    for train, val in folds:
        assert order[train].max() < order[val].min()


def test_stratified_folds_cover_every_row_once_and_keep_the_label_balance():
    y = np.array([0] * 30 + [1] * 15)
    folds = split_indices(y, 3, "stratified", seed=1)
    validated = np.concatenate([val for _, val in folds])
    assert sorted(validated) == list(range(45))
    for train, val in folds:
        assert not set(train) & set(val)
        assert y[val].sum() == 5  # a third of the positives in each fold
    assert [v.tolist() for _, v in folds] == [
        v.tolist() for _, v in split_indices(y, 3, "stratified", seed=1)
    ]


def test_more_folds_than_rows_of_every_label_is_an_error():
    with pytest.raises(ValueError):
        split_indices(np.array([0, 0, 1, 1]), 3, "stratified", seed=0)
