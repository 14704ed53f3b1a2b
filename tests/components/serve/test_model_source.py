"""Loading a served model from a model dir or from the MLflow registry (alias or version)."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.artifacts import FEATURE_SPEC_FILE, load_model
from components.serve.model_source import (
    ModelSourceError,
    load_model_source,
    load_model_uri,
)
from tests.fixtures.models import record_manifest
from tests.support.mlflow_env import use_local_store


def test_model_dir_and_its_digest_version(lgbm_model_dir):
    loaded = load_model_source(lgbm_model_dir)
    assert loaded.version.startswith("sha256:") and len(loaded.version) == 19
    assert loaded.spec["features"][0]["name"] == "AGEP"
    assert load_model_source(lgbm_model_dir).version == loaded.version  # content-addressed


def test_not_a_model_dir(tmp_path):
    with pytest.raises(ModelSourceError, match="not a model dir"):
        load_model_source(tmp_path)


@pytest.mark.parametrize("uri", ["models:/m", "models:/m@", "models:/m/x", "runs:/abc/model"])
def test_bad_model_uri(uri, tmp_path):
    from components.serve.model_source import fetch_registered_model

    with pytest.raises(ModelSourceError, match="expected models:/<name>@<alias>"):
        fetch_registered_model(uri, tmp_path, tracking_uri=f"sqlite:///{tmp_path}/x.db")


@pytest.mark.integration
def test_registered_model_by_alias_and_version(lgbm_model_dir, test_rows, tmp_path, monkeypatch):
    import mlflow

    use_local_store(monkeypatch, tmp_path, "serve-test")
    pipeline, spec = load_model(lgbm_model_dir)
    names = [f["name"] for f in spec["features"]]
    with mlflow.start_run():  # as the track stage logs it: cloudpickle + the feature spec
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="cloudpickle",
            extra_files=[str(lgbm_model_dir / FEATURE_SPEC_FILE)],
            registered_model_name="acs-test",
        )
    client = mlflow.MlflowClient()
    record_manifest(client, "acs-test", info.registered_model_version)
    client.set_registered_model_alias("acs-test", "champion", info.registered_model_version)

    by_alias = load_model_uri("models:/acs-test@champion", tmp_path / "a")
    by_version = load_model_uri("models:/acs-test/1", tmp_path / "b")
    assert by_alias.version == by_version.version == "1"
    assert by_alias.spec == spec and by_alias.source == "models:/acs-test@champion"
    rows = test_rows[names].head(50)
    np.testing.assert_array_equal(
        by_alias.pipeline.predict_proba(rows), pipeline.predict_proba(rows)
    )
    with pytest.raises(ModelSourceError, match="models:/acs-test@missing"):
        load_model_uri("models:/acs-test@missing", tmp_path / "c")
