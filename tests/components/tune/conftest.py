"""Fixtures of the tune tests: the stand-in cluster, the data a trial reads (features built from
the sample data: a train set and its transformer) and the prepared rows cross-validation scores."""

from __future__ import annotations

import pytest

from components.common.artifacts import load_model, read_dataset
from components.common.config import load_pipeline_config
from tests.support.k8s_standin import InMemoryCluster
from tests.support.prepared import prepare_features


@pytest.fixture
def cluster():
    return InMemoryCluster()


@pytest.fixture(scope="module")
def trial_data(tmp_path_factory, sample_data, schema):
    from components.features.features import run as build_features

    root = tmp_path_factory.mktemp("trial")
    src = root / "data.parquet"
    sample_data.to_parquet(src)
    feature_cfg = load_pipeline_config().feature_engineering.model_dump(mode="json")
    build_features(
        str(src),
        schema.model_dump(mode="json"),
        feature_cfg,
        str(root / "train.parquet"),
        str(root / "test.parquet"),
        str(root / "transformer"),
    )
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample_data, schema):
    """(folder, train rows, fitted transformer, feature spec): 2015 trains, 2016 tests."""
    d = tmp_path_factory.mktemp("tune")
    prepare_features(d, sample_data, schema, categorical_encoding="native")
    transformer, spec = load_model(d / "transformer")
    return d, read_dataset(d / "train.parquet"), transformer, spec
