"""Fixtures of the tune tests: the stand-in cluster, and the data a trial reads (features built
from the sample data: a train set and its transformer)."""

from __future__ import annotations

import pytest

from components.common.config import load_pipeline_config
from tests.support.k8s_standin import InMemoryCluster


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
