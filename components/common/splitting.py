"""Train/test split by time window or stratified random draw.

Shared by validate (statistics per window) and features (the split the model is trained on), so
both see exactly the same rows. Plain pandas/numpy: it also runs in the tfdv environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from components.common import timekeys
from components.common.artifacts import restore_ints
from components.common.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def split(
    df: pd.DataFrame,
    split_cfg: dict[str, Any],
    label: str,
    time_column: str | None,
    stage: str,
    time: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train, test). `split_cfg` is `feature_engineering.split` as a plain dict; `time`
    is the schema's `time` block (how the time column is read: components.common.timekeys)."""
    split_cfg = restore_ints(split_cfg)  # via KFP: [2015.0, 2015.0] would print as such
    method = split_cfg.get("method", "time")
    if method == "time":
        if not time_column or time_column not in df.columns:
            raise DataError(
                stage, f"time split needs the time column {time_column!r}", subject=time_column
            )
        times = df[time_column]
        try:
            train = df[timekeys.in_window(times, *split_cfg["train_window"], time)]
            test = df[timekeys.in_window(times, *split_cfg["test_window"], time)]
        except ValueError as exc:  # a bound that does not fit the column's kind
            raise DataError(stage, str(exc), subject=time_column) from None
    elif method == "random":
        rng = np.random.default_rng(int(split_cfg.get("seed", 42)))
        fraction = float(split_cfg.get("test_fraction", 0.2))
        is_test = np.zeros(len(df), dtype=bool)
        # stratify: draw the same share from each label value
        for value in df[label].dropna().unique():
            idx = np.flatnonzero((df[label] == value).to_numpy())
            take = round(len(idx) * fraction)
            is_test[rng.choice(idx, size=take, replace=False)] = True
        train, test = df[~is_test], df[is_test]
    else:
        raise ValueError(f"unknown split method {method!r}")
    for name, part, window in (
        ("train", train, split_cfg.get("train_window")),
        ("test", test, split_cfg.get("test_window")),
    ):
        if part.empty:
            where = (
                f" (window {window[0]}-{window[1]} of {time_column})" if method == "time" else ""
            )
            raise DataError(stage, f"the {name} split is empty{where}", subject=time_column)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def split_indices(
    y: np.ndarray, folds: int, strategy: str, seed: int, order: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) row indices. `time`: each fold validates on later rows than it trains
    on (rows ordered by `order`, e.g. the time column then id); `stratified`: shuffled, label
    balance kept. The folds of tuning (both backends) and of the final fold models (train).
    sklearn is imported here only: this module also runs in the tfdv environment."""
    from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit

    if strategy == "time":
        rows = np.argsort(order, kind="stable") if order is not None else np.arange(len(y))
        return [(rows[a], rows[b]) for a, b in TimeSeriesSplit(n_splits=folds).split(rows)]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))
