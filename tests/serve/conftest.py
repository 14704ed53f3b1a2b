"""Small real models for the server tests, trained on a sample of the bundled data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.common.artifacts import read_dataset
from components.features.features import run as features
from components.train.train import run as train

SPLIT = {"method": "time", "train_window": [2015, 2015], "test_window": [2016, 2016]}
FAST_PARAMS = {
    "lightgbm": {"n_estimators": 30, "num_leaves": 15, "n_jobs": 1},
    "xgboost": {"n_estimators": 30, "max_depth": 4, "n_jobs": 1, "tree_method": "hist"},
    "random_forest": {"n_estimators": 15, "max_depth": 10, "n_jobs": 1},
    "logistic_regression": {"max_iter": 300},
}


def train_model(
    root: Path,
    data: pd.DataFrame,
    schema,
    algorithm: str = "lightgbm",
    scaling: str = "standard",
    encoding: str = "native",
) -> Path:
    """features + train exactly as the pipeline runs them; returns the model dir."""
    root.mkdir(parents=True, exist_ok=True)
    data.to_parquet(root / "data.parquet")
    features(
        str(root / "data.parquet"),
        schema.model_dump(mode="json"),
        {"split": SPLIT, "scaling_method": scaling, "categorical_encoding": encoding},
        str(root / "train.parquet"),
        str(root / "test.parquet"),
        str(root / "transformer"),
    )
    train(
        str(root / "train.parquet"),
        str(root / "transformer"),
        algorithm,
        FAST_PARAMS[algorithm],
        7,
        str(root / "model"),
    )
    return root / "model"


@pytest.fixture(scope="session")
def lgbm_model_dir(tmp_path_factory, sample_data, schema) -> Path:
    return train_model(tmp_path_factory.mktemp("lgbm"), sample_data, schema)


@pytest.fixture(scope="session")
def test_rows(lgbm_model_dir) -> pd.DataFrame:
    """The held-out 2016 rows of the sample (raw feature columns + label)."""
    return read_dataset(lgbm_model_dir.parent / "test.parquet")
