"""Real models and real requests for rollouts against the real model server (the integration test
and `benchmarks/rollout_local.py --real`): LightGBM model dirs trained by the features and train
stages on samples of the bundled data, and V1 instances of real 2016 rows built from a model's
feature spec."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from components.common.artifacts import read_json
from components.common.config import load_data_schema
from components.train.train import run as train
from tests.components.serve.conftest import prepare
from tests.conftest import DATA_FILE

# The reference LightGBM of benchmarks/serving_latency.py. Not the serve tests' 30-tree model on
# purpose: that model gives all rows aged under 16 (17 % of 2016) one tied score, and two such
# models from different samples tie them at slightly different values (0.02407 vs 0.02439) on
# different sides of other rows: KS reads 0.17 for a good retrain, from a point mass. Two reference
# models: KS ~0.03, PSI ~0.02.
PARAMS = {"n_estimators": 400, "num_leaves": 63, "learning_rate": 0.05, "n_jobs": 1}
ROWS_PER_YEAR = 5000


# the bundled model's three strongest features by permutation importance (test AUC lost when the
# column is shuffled, 2016 rows; benchmarks/canary_verdicts.py measures it): 0.22, 0.034, 0.018
STRONGEST = ("AGEP", "RELP", "DIS")


def train_lightgbm(
    root: Path,
    sample_seed: int,
    train_seed: int,
    data: pd.DataFrame,
    *,
    drop: tuple[str, ...] = (),
    blank: tuple[str, ...] = (),
) -> Path:
    """features + train as the pipeline runs them, on `ROWS_PER_YEAR` rows of each of 2015
    (train window) and 2016 (test window) drawn with `sample_seed`; returns the model dir
    (model.joblib + feature_spec.json). `drop`: features left out of the schema (a model with
    another feature set); `blank`: features set to one value in its training rows (the same
    feature spec, a model that learned nothing from them)."""
    schema = load_data_schema()
    if drop:
        features = {k: v for k, v in schema.features.items() if k not in drop}
        schema = schema.model_copy(update={"features": features})
        data = data.drop(columns=list(drop))
    if blank:
        data = data.assign(**{name: data[name].mode()[0] for name in blank})
    sample = pd.concat(
        [
            data[data.year == year].sample(ROWS_PER_YEAR, random_state=sample_seed + year)
            for year in (2015, 2016)
        ],
        ignore_index=True,
    )
    prepared = prepare(root, sample, schema, "standard", "native")
    out = root / "model"
    train(
        str(prepared / "train.parquet"),
        str(prepared / "transformer"),
        "lightgbm",
        PARAMS,
        train_seed,
        str(out),
    )
    return out


def stable_and_candidate(root: Path, data: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """The serving model and a retrained candidate (another sample, another seed): a good
    canary, as a scheduled retrain would produce it."""
    data = pd.read_parquet(DATA_FILE) if data is None else data
    return (
        train_lightgbm(root / "stable", 0, 7, data),
        train_lightgbm(root / "candidate", 1, 11, data),
    )


def write_request_rows(
    model_dir: Path, out: Path, data: pd.DataFrame | None = None, n: int = 2000, year: int = 2016
) -> Path:
    """`n` real rows of `year` as V1 instances (the feature spec's columns, JSON ints) in `out`."""
    data = pd.read_parquet(DATA_FILE) if data is None else data
    names = [f["name"] for f in read_json(model_dir / "feature_spec.json")["features"]]
    rows = data[data.year == year].sample(n, random_state=year)[names]
    instances = [{k: int(v) for k, v in row.items()} for row in rows.to_dict("records")]
    out.write_text(json.dumps(instances))
    return out
