"""`components/common/pipeline_params.py`: the pipelines' config-derived parameters. They are the
compiled pipelines' defaults (one source: a parameter added to a pipeline without a value here, or
the reverse, fails), `config_hash` describes the settings they came from, numbers keep their type
through `training_json`, and the schedule stays out of ingest's cache key."""

from __future__ import annotations

import json

import pytest
import yaml
from kfp import compiler

from components.common.config import override_settings
from components.common.pipeline_params import monitoring_parameters, training_parameters
from pipelines.monitoring import build_monitoring_pipeline
from pipelines.training import build_pipeline

# the pipelines' parameters that are not the config's (per run, or chosen by the caller)
RUN_PARAMETERS = {
    "training": {"source_digest", "tracking_uri"},
    "monitoring": {
        "source",
        "source_kind",
        "labels",
        "labels_column",
        "source_digest",
        "tracking_uri",
        "retrain_mode",
        "retraining",
    },
}


def _compiled_defaults(pipeline, tmp_path) -> dict:
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    spec = next(yaml.safe_load_all(path.read_text()))
    return {
        name: p.get("defaultValue")
        for name, p in spec["root"]["inputDefinitions"]["parameters"].items()
    }


@pytest.mark.parametrize(
    ("name", "derive", "build"),
    [
        ("training", training_parameters, build_pipeline),
        ("monitoring", monitoring_parameters, build_monitoring_pipeline),
    ],
)
def test_the_compiled_defaults_are_the_derived_parameters(settings, tmp_path, name, derive, build):
    derived = derive(settings)
    compiled = _compiled_defaults(build(settings), tmp_path)
    assert set(compiled) - RUN_PARAMETERS[name] == set(derived)
    for key, value in derived.items():
        # KFP stores numbers in a struct as doubles: 400 comes back as 400.0 (equal in Python)
        assert compiled[key] == value, key


def test_the_config_hash_is_the_digest_of_the_settings_the_parameters_come_from(settings):
    changed = override_settings(
        settings, {"model_training.seed": settings.pipeline.model_training.seed + 1}
    )
    before, after = training_parameters(settings), training_parameters(changed)
    assert before["config_hash"] == settings.digest()
    assert after["config_hash"] == changed.digest() != before["config_hash"]
    assert after["seed"] == before["seed"] + 1
    assert after["config"]["model_training"]["seed"] == after["seed"]


def test_training_json_keeps_integers_integers(settings):
    """A dict parameter would turn 2000 into 2000.0 (a struct's doubles); estimators tell 1 from
    1.0, so the training section travels as JSON text."""
    training = json.loads(training_parameters(settings)["training_json"])
    rounds = training["params"]["lightgbm"]["n_estimators"]
    assert rounds == settings.pipeline.model_training.params["lightgbm"]["n_estimators"]
    assert isinstance(rounds, int)
    assert training == settings.pipeline.model_training.model_dump(mode="json")


def test_the_schedule_is_not_part_of_ingests_parameters(settings):
    scheduled = override_settings(settings, {"data_ingestion.schedule": "0 6 * * *"})
    params = training_parameters(scheduled)
    assert "schedule" not in params["ingestion"]
    assert params["ingestion"] == training_parameters(settings)["ingestion"]
    assert params["config"]["data_ingestion"]["schedule"] == "0 6 * * *"  # still logged


def test_no_parameter_carries_a_webhook_url(settings, monkeypatch):
    """The alert webhook's URL comes from a Secret (or the CLI's environment), never a
    parameter: it would be stored with every run."""
    url = "https://hooks.example.com/services/T000/B000/very-secret"
    monkeypatch.setenv(settings.pipeline.monitoring.webhook_url_env, url)
    for derive in (training_parameters, monitoring_parameters):
        assert url not in json.dumps(derive(settings))
