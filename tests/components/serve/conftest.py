"""Small real models for the server tests, trained on a sample of the bundled data."""

from __future__ import annotations

import warnings
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
    "logistic_regression": {"max_iter": 200},
}


def prepare(root: Path, data: pd.DataFrame, schema, scaling: str, encoding: str) -> Path:
    """The features stage as the pipeline runs it: train/test rows and the fitted transformer."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "transformer").exists():
        data.to_parquet(root / "data.parquet")
        features(
            str(root / "data.parquet"),
            schema.model_dump(mode="json"),
            {"split": SPLIT, "scaling_method": scaling, "categorical_encoding": encoding},
            str(root / "train.parquet"),
            str(root / "test.parquet"),
            str(root / "transformer"),
        )
    return root


def fit(prepared: Path, algorithm: str, out: Path | None = None) -> Path:
    """The train stage on prepared rows; returns the model dir."""
    out = out or prepared / f"model-{algorithm}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few iterations on purpose: convergence warnings
        train(
            str(prepared / "train.parquet"),
            str(prepared / "transformer"),
            algorithm,
            FAST_PARAMS[algorithm],
            7,
            str(out),
        )
    return out


def train_model(
    root: Path,
    data: pd.DataFrame,
    schema,
    algorithm: str = "lightgbm",
    scaling: str = "standard",
    encoding: str = "native",
) -> Path:
    """features + train exactly as the pipeline runs them; returns the model dir (its test rows
    are in the parent folder's test.parquet)."""
    return fit(prepare(root, data, schema, scaling, encoding), algorithm, root / "model")


@pytest.fixture(scope="session")
def lgbm_model_dir(tmp_path_factory, sample_data, schema) -> Path:
    return train_model(tmp_path_factory.mktemp("lgbm"), sample_data, schema)


@pytest.fixture(scope="session")
def test_rows(lgbm_model_dir) -> pd.DataFrame:
    """The held-out 2016 rows of the sample (raw feature columns + label)."""
    return read_dataset(lgbm_model_dir.parent / "test.parquet")


def spec_from_schema(schema) -> dict:
    """The feature spec the features stage writes, for every feature of the schema."""
    return {
        "features": [
            {"name": f, **schema.features[f].model_dump(mode="json", exclude_none=True)}
            for f in schema.feature_names
        ]
    }


def valid_rows(frame: pd.DataFrame, names: list[str], n: int) -> list[dict]:
    """JSON-ready rows (Python ints) of the first n rows."""
    return [{k: int(v) for k, v in row.items()} for row in frame[names].head(n).to_dict("records")]


def offline_predictions(model_dir: Path, test_rows: pd.DataFrame, n: int):
    """(feature names, `n` valid request rows, the model's offline P(label = 1) for them)."""
    from components.common.artifacts import load_model

    pipeline, spec = load_model(model_dir)
    names = [f["name"] for f in spec["features"]]
    rows = valid_rows(test_rows, names, n)
    return names, rows, pipeline.predict_proba(test_rows[names].head(n))[:, 1]
