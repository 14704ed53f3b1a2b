"""The numpy fast path gives the sklearn Pipeline's predict_proba for every supported algorithm,
scaling and encoding — for batches and for one row at a time — and anything else falls back to
the pipeline itself with a warning."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import Pipeline

from components.common.artifacts import load_model, read_dataset
from components.serve.fast_path import FastScorer, PandasScorer, build_scorer
from components.train.train import run as train
from tests.components.serve.conftest import FAST_PARAMS, fit, prepare

ALGORITHMS = ["lightgbm", "xgboost", "random_forest", "logistic_regression"]
SCALINGS = ["standard", "minmax", "robust", "none"]
ENCODINGS = ["native", "onehot", "ordinal"]
TOLERANCE = 1e-12  # float rounding only (BLAS may sum a lone row in another order)
ONE_ROW_CHECKS = 25


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample_data, schema):
    root = tmp_path_factory.mktemp("fast-path")
    return {
        (s, e): prepare(root / f"{s}-{e}", sample_data, schema, s, e)
        for s, e in itertools.product(SCALINGS, ENCODINGS)
    }


def reference_and_raw(model_dir, prepared_dir):
    pipeline, spec = load_model(model_dir)
    names = [f["name"] for f in spec["features"]]
    test = read_dataset(prepared_dir / "test.parquet")
    # the test rows plus codes the encoders never saw in training (unknown → zeros / -1)
    rare = test[names].head(3).copy()
    rare["SCHL"], rare["RELP"], rare["ANC"] = 0, 17, 8
    frame = pd.concat([test[names], rare], ignore_index=True)
    return pipeline, spec, frame.to_numpy(dtype=np.float64), pipeline.predict_proba(frame)[:, 1]


@pytest.mark.parametrize(
    ("algorithm", "scaling", "encoding"), list(itertools.product(ALGORITHMS, SCALINGS, ENCODINGS))
)
def test_fast_path_equals_pipeline(prepared, algorithm, scaling, encoding):
    prepared_dir = prepared[(scaling, encoding)]
    model_dir = fit(prepared_dir, algorithm)
    pipeline, spec, raw, reference = reference_and_raw(model_dir, prepared_dir)
    scorer = build_scorer(pipeline, spec)
    assert isinstance(scorer, FastScorer), f"fell back: {scorer.reason}"
    batch = scorer(raw)
    assert batch.shape == reference.shape
    assert np.max(np.abs(batch - reference)) <= TOLERANCE
    # one row at a time (LightGBM's single-row C API, tiny-batch thread settings)
    picks = [*range(ONE_ROW_CHECKS), len(raw) - 1, len(raw) - 2]
    one = np.array([scorer(raw[i : i + 1])[0] for i in picks])
    assert np.max(np.abs(one - reference[picks])) <= TOLERANCE
    assert batch.min() >= 0.0 and batch.max() <= 1.0


def test_unsupported_estimator_falls_back_to_pandas_with_a_warning(prepared, caplog):
    prepared_dir = prepared[("standard", "onehot")]
    model_dir = fit(prepared_dir, "lightgbm")
    pipeline, spec, raw, _ = reference_and_raw(model_dir, prepared_dir)
    train = read_dataset(prepared_dir / "train.parquet")
    names = [f["name"] for f in spec["features"]]
    transformer = pipeline.steps[0][1]
    gbc = GradientBoostingClassifier(n_estimators=5, random_state=0)
    gbc.fit(transformer.transform(train[names]), train[spec["label"]])
    other = Pipeline([("transform", transformer), ("model", gbc)])
    with caplog.at_level(logging.WARNING, logger="components.serve.fast_path"):
        scorer = build_scorer(other, spec)
    assert isinstance(scorer, PandasScorer) and "GradientBoostingClassifier" in scorer.reason
    assert "fast path not available" in caplog.text
    frame = pd.DataFrame(raw, columns=names).astype("int64")
    np.testing.assert_array_equal(scorer(raw), other.predict_proba(frame)[:, 1])


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost"])
def test_fast_path_averages_a_fold_ensemble_like_the_pipeline(prepared, algorithm):
    """`final_fit: folds` models: the fast path replays each fold model and averages them."""
    prepared_dir = prepared[("standard", "native")]
    model_dir = prepared_dir / f"folds-{algorithm}"
    train(
        str(prepared_dir / "train.parquet"),
        str(prepared_dir / "transformer"),
        algorithm,
        FAST_PARAMS[algorithm],
        7,
        str(model_dir),
        final={"method": "folds", "folds": 3, "params": FAST_PARAMS[algorithm]},
    )
    pipeline, spec, raw, reference = reference_and_raw(model_dir, prepared_dir)
    scorer = build_scorer(pipeline, spec)
    assert isinstance(scorer, FastScorer), f"fell back: {scorer.reason}"
    assert scorer.estimator_name == f"{algorithm} x3"
    assert np.max(np.abs(scorer(raw) - reference)) <= TOLERANCE
    one = np.array([scorer(raw[i : i + 1])[0] for i in range(ONE_ROW_CHECKS)])
    assert np.max(np.abs(one - reference[:ONE_ROW_CHECKS])) <= TOLERANCE
