from pathlib import Path

import pytest
import yaml

from components.common.config import (
    DEFAULT_PIPELINE_CONFIG,
    ConfigError,
    load_data_schema,
    load_pipeline_config,
    load_settings,
)


def _write(tmp_path: Path, data: dict, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _default() -> dict:
    return yaml.safe_load(DEFAULT_PIPELINE_CONFIG.read_text())


def test_defaults_load(settings):
    assert settings.pipeline.model_training.algorithms[0] == "lightgbm"
    assert len(settings.schema_.categorical) == 15
    assert settings.schema_.numeric == ["AGEP"]
    assert settings.schema_.features["ANC"].codes() == [1, 2, 3, 4, 8]
    assert settings.schema_.features["SCHL"].codes() == list(range(25))


def test_unknown_key_names_key_and_file(tmp_path):
    data = _default()
    data["model_training"]["n_trees"] = 5
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    assert str(path) in str(err.value)
    assert "model_training.n_trees: unknown key" in str(err.value)


def test_the_removed_max_ks_is_refused_with_the_reason(tmp_path):
    """KS never decided a rollout: an old config's `max_ks` must not look like a limit."""
    data = _default()
    data["deployment"]["rollout"]["policy"]["max_ks"] = 0.5
    with pytest.raises(ConfigError, match=r"deployment\.rollout\.policy.*max_ks was removed"):
        load_pipeline_config(_write(tmp_path, data))
    with pytest.raises(ConfigError, match="max_ks was removed"):
        load_pipeline_config(overrides={"deployment.rollout.policy.max_ks": 0.5})


def test_wrong_type_names_key(tmp_path):
    data = _default()
    data["model_training"]["seed"] = "abc"
    with pytest.raises(ConfigError, match=r"model_training\.seed: .*integer"):
        load_pipeline_config(_write(tmp_path, data))


def test_bad_choice_is_rejected(tmp_path):
    data = _default()
    data["feature_engineering"]["scaling_method"] = "zscore"
    with pytest.raises(ConfigError, match="feature_engineering.scaling_method"):
        load_pipeline_config(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (("deployment", "rollback_enabled"), False),
    ],
)
def test_unbuilt_features_accept_only_default(tmp_path, key, value):
    data = _default()
    data[key[0]][key[1]] = value
    with pytest.raises(ConfigError, match="not supported yet"):
        load_pipeline_config(_write(tmp_path, data))


def test_overlapping_windows_rejected(tmp_path):
    data = _default()
    data["feature_engineering"]["split"]["test_window"] = [2015, 2016]
    with pytest.raises(ConfigError, match="overlap"):
        load_pipeline_config(_write(tmp_path, data))


def test_selection_needs_max_features():
    with pytest.raises(ConfigError, match="needs max_features"):
        load_pipeline_config(overrides={"feature_engineering.feature_selection": "rfe"})


def test_overrides_apply():
    cfg = load_pipeline_config(overrides={"model_training.algorithms": ["xgboost"]})
    assert cfg.model_training.algorithm == "xgboost"


def test_tuning_needs_a_search_space_per_algorithm(tmp_path):
    data = _default()
    data["model_training"]["algorithms"] = ["lightgbm", "xgboost"]
    del data["model_training"]["search_spaces"]["xgboost"]
    with pytest.raises(ConfigError, match=r"search_spaces for \['xgboost'\]"):
        load_pipeline_config(_write(tmp_path, data))


def test_bad_search_space_is_rejected(tmp_path):
    data = _default()
    data["model_training"]["search_spaces"]["lightgbm"]["num_leaves"] = {
        "type": "int",
        "low": 300,
        "high": 15,
    }
    with pytest.raises(ConfigError, match="search_spaces.lightgbm.num_leaves: low 300.0 must be"):
        load_pipeline_config(_write(tmp_path, data))


def test_param_both_fixed_and_searched_is_rejected(tmp_path):
    data = _default()
    data["model_training"]["params"]["lightgbm"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match="both fixed in params and searched"):
        load_pipeline_config(_write(tmp_path, data))


def test_duplicate_algorithms_rejected():
    with pytest.raises(ConfigError, match="at most once"):
        load_pipeline_config(overrides={"model_training.algorithms": ["xgboost", "xgboost"]})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_pipeline_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline_config(bad)


def test_schema_categorical_needs_values(tmp_path):
    data = {"label": {"name": "y"}, "features": {"A": {"kind": "categorical", "dtype": "int"}}}
    with pytest.raises(ConfigError, match="features.A: .*values"):
        load_data_schema(_write(tmp_path, data, "schema.yaml"))


def test_settings_digest_changes_with_config():
    a = load_settings()
    b = load_settings(overrides={"model_training.seed": 7})
    assert a.digest() != b.digest()
    assert a.digest() == load_settings().digest()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("evaluation.slices.features", ["SEX", "GENDER"], "unknown feature(s) ['GENDER']"),
        ("evaluation.slices.buckets", {"AGE": [30]}, "unknown feature(s) ['AGE']"),
        ("evaluation.slices.buckets", {"SEX": [2]}, "SEX is not numeric"),
        ("feature_engineering.degrade.drop_features", ["SCHOOL"], "unknown feature(s)"),
    ],
)
def test_feature_references_must_name_schema_features(key, value, message):
    with pytest.raises(ConfigError) as info:
        load_settings(overrides={key: value})
    assert key.rsplit(".", 1)[0] in str(info.value) and message in str(info.value)


def test_approval_and_degrade_are_accepted():
    settings = load_settings(
        overrides={
            "deployment.approval_required": True,
            "feature_engineering.degrade.label_noise": 0.3,
        }
    )
    assert settings.pipeline.deployment.approval_required
    assert settings.pipeline.feature_engineering.degrade.active


def test_deployment_environment_kserve_allowed_and_unknown_rejected(tmp_path):
    cfg = load_pipeline_config(overrides={"deployment.environment": "kserve"})
    assert cfg.deployment.environment == "kserve"
    with pytest.raises(ConfigError, match="deployment.environment"):
        load_pipeline_config(overrides={"deployment.environment": "knative"})


def test_rollout_defaults_and_bad_values():
    rollout = load_pipeline_config().deployment.rollout
    assert rollout.strategy == "canary" and rollout.steps[-1] == 100
    assert rollout.policy.min_canary_requests >= 1
    bad = {
        "deployment.rollout.steps": [50, 10, 100],
        "deployment.rollout.strategy": "linear",
        "deployment.rollout.policy.max_error_rate": 2,
        "deployment.rollout.window.max_seconds": 1,
        "deployment.rollout.kserve.replicas": 3,
    }
    for key, value in bad.items():
        with pytest.raises(ConfigError, match=key.rsplit(".", 1)[0]):
            load_pipeline_config(overrides={key: value})
    with pytest.raises(ConfigError, match="last step must be 100"):
        load_pipeline_config(overrides={"deployment.rollout.steps": [10, 50]})


@pytest.mark.parametrize(
    ("start", "error"),
    [
        ({"n_estimators": 100}, r"start_params.lightgbm: \['n_estimators'\] not searched"),
        ({"learning_rate": 0.9}, r"start_params.lightgbm.learning_rate: 0.9 is outside"),
        ({"learning_rate": "fast"}, r"start_params.lightgbm.learning_rate: 'fast' is outside"),
    ],
)
def test_start_params_must_be_searched_values_inside_the_space(tmp_path, start, error):
    data = _default()
    data["model_training"]["start_params"] = {"lightgbm": start}
    with pytest.raises(ConfigError, match=error):
        load_pipeline_config(_write(tmp_path, data))


def test_start_params_are_the_untuned_params_and_trial_0():
    cfg = load_settings().pipeline.model_training
    start = cfg.start_params["lightgbm"]
    assert start and set(start) <= set(cfg.search_spaces["lightgbm"])
    assert cfg.start_for("lightgbm") == start
    assert not set(cfg.params_for("lightgbm")) & set(start)  # fixed params stay fixed
