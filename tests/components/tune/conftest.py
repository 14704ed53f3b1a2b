"""Shared by the tune stage's test modules: the features stage run on the sample rows."""

from __future__ import annotations

import pytest

from components.common.artifacts import load_model, read_dataset
from tests.support.prepared import prepare_features


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample_data, schema):
    """(folder, train rows, fitted transformer, feature spec): 2015 trains, 2016 tests."""
    d = tmp_path_factory.mktemp("tune")
    prepare_features(d, sample_data, schema, categorical_encoding="native")
    transformer, spec = load_model(d / "transformer")
    return d, read_dataset(d / "train.parquet"), transformer, spec
