"""Config errors: one line per problem, naming the key, what was given and what is allowed."""

import copy
from pathlib import Path

import pytest
import yaml

from components.common.config import (
    DEFAULT_DATA_SCHEMA,
    DEFAULT_PIPELINE_CONFIG,
    ConfigError,
    load_data_schema,
    load_pipeline_config,
    load_settings,
    override_settings,
)


def _schema_with(tmp_path: Path, feature: str, spec: object) -> Path:
    data = yaml.safe_load(DEFAULT_DATA_SCHEMA.read_text())
    data["features"][feature] = spec
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _lines(error: pytest.ExceptionInfo, path: Path) -> list[str]:
    lines = str(error.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line.removeprefix(f"{path}: ") for line in lines]


@pytest.mark.parametrize(
    ("feature", "spec", "expected"),
    [
        (
            "SEX",
            {"kind": "categorical", "dtype": "str", "values": [1, 2]},
            "features.SEX.dtype: got 'str'; allowed: 'int', 'float' or 'string'",
        ),
        (
            "SEX",
            {"kind": "categorical", "dtype": "int", "values": ["a", "b"]},
            "features.SEX: string values need dtype string (dtype is int)",
        ),
        (
            "SEX",
            {"kind": "categorical", "dtype": "string", "values": {"min": 1, "max": 2}},
            "features.SEX: a string feature lists its values: a non-empty list of strings",
        ),
        (
            "SEX",
            {"kind": "categorical", "dtype": "string", "values": []},
            "features.SEX: a string feature lists its values: a non-empty list of strings",
        ),
        (
            "SEX",
            {"kind": "categorical", "dtype": "string", "values": [1, 2]},
            "features.SEX: a string feature lists its values: a non-empty list of strings",
        ),
        (
            "SEX",
            {"kind": "categorical", "dtype": "string", "values": ["a", "b", "a"]},
            "features.SEX: values ['a'] listed more than once",
        ),
        (
            "AGEP",
            {"kind": "numeric", "dtype": "string", "min": 0, "max": 99},
            "features.AGEP: dtype string is for categorical features only",
        ),
        (
            "SEX",
            {"kind": "categorical", "dtype": "string", "values": ["a", 2]},
            "features.SEX.values: got ['a', 2]; allowed: a list of integers, a mapping with "
            "keys min, max or a list of strings",
        ),
        (
            "SEX",
            {"kind": "categorical", "dtype": "int", "values": [1, 2], "colour": "red"},
            "features.SEX.colour: unknown key (allowed: kind, dtype, description, min, max, "
            "values, max_missing_fraction, drift)",
        ),
        (
            "AGEP",
            {"kind": "numeric", "dtype": "int", "min": 99, "max": 0},
            "features.AGEP: min 99.0 is greater than max 0.0",
        ),
        (
            "SEX",
            {"kind": "categorical", "dtype": "int", "values": {"min": 2, "max": 1}},
            "features.SEX.values: min 2 is greater than max 1",
        ),
        (
            "AGEP",
            {"kind": "numeric", "dtype": "int", "drift": {"metric": "ks", "threshold": 0.1}},
            "features.AGEP.drift.metric: got 'ks'; allowed: 'jensen_shannon' or 'linf'",
        ),
    ],
)
def test_a_bad_schema_says_in_one_line_what_is_wrong(tmp_path, feature, spec, expected):
    path = _schema_with(tmp_path, feature, spec)
    with pytest.raises(ConfigError) as error:
        load_data_schema(path)
    assert _lines(error, path) == [expected]


def test_each_problem_gets_its_own_line(tmp_path):
    data = yaml.safe_load(DEFAULT_DATA_SCHEMA.read_text())
    data["features"]["SEX"]["dtype"] = "text"
    data["features"]["AGEP"]["drift"]["threshold"] = 2
    del data["label"]["name"]
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_data_schema(path)
    assert _lines(error, path) == [
        "label.name: missing (required: a string)",
        "features.AGEP.drift.threshold: got 2; allowed: less than or equal to 1",
        "features.SEX.dtype: got 'text'; allowed: 'int', 'float' or 'string'",
    ]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        (
            "evaluation",
            "decision_threshold",
            "best",
            "evaluation.decision_threshold: got 'best'; allowed: a number or 'min_cost'",
        ),
        (
            "model_training",
            "seed",
            "abc",
            "model_training.seed: got 'abc'; allowed: an integer",
        ),
    ],
)
def test_pipeline_config_errors_use_the_same_form(tmp_path, section, key, value, expected):
    data = yaml.safe_load(DEFAULT_PIPELINE_CONFIG.read_text())
    data = copy.deepcopy(data)
    data.setdefault(section, {})[key] = value
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_pipeline_config(path)
    assert _lines(error, path) == [expected]


def test_stages_word_config_errors_the_same_way():
    """validate, evaluate and deploy check their parameters with the same one-line form."""
    from components.common.errors import StageError
    from components.deploy.deploy import _config
    from components.evaluate.evaluate import parse_config
    from components.validate.validate import _check_schema

    schema = yaml.safe_load(DEFAULT_DATA_SCHEMA.read_text())
    schema["features"]["SEX"]["values"] = ["a", "b"]
    with pytest.raises(StageError) as error:
        _check_schema(schema)
    assert str(error.value).endswith(
        "invalid data schema: features.SEX: string values need dtype string (dtype is int)"
    )
    with pytest.raises(StageError) as error:
        parse_config({"decision_threshold": "best"})
    assert str(error.value).endswith(
        "invalid evaluation config: decision_threshold: got 'best'; allowed: a number or 'min_cost'"
    )
    with pytest.raises(StageError) as error:
        _config({"environment": "cloud"})
    assert str(error.value).endswith(
        "invalid deployment config: environment: got 'cloud'; allowed: 'local' or 'kserve'"
    )


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model_training.max_trials=abc", "--set model_training.max_trials: got 'abc'; allowed"),
        ("model_training.bogus=1", "--set model_training.bogus: unknown key (allowed: "),
        ("evaluation.slices.features=[NOPE]", "--set evaluation.slices.features: unknown feature"),
    ],
)
def test_a_bad_set_flag_is_blamed_not_the_config_file(override, expected, capsys):
    """What `mlpipe` prints: the `--set` flag is named, the (valid) config file is not."""
    from pipelines.cli import main

    code = main(["compile", "--set", override, "--output", "/dev/null"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[1].startswith(expected), err
    assert str(DEFAULT_PIPELINE_CONFIG) not in err


def test_a_bad_config_file_is_still_blamed_when_a_set_flag_is_valid(tmp_path):
    data = yaml.safe_load(DEFAULT_PIPELINE_CONFIG.read_text())
    data["model_training"]["seed"] = "abc"
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        load_pipeline_config(path, overrides={"model_training.max_trials": 3})
    assert _lines(error, path) == ["model_training.seed: got 'abc'; allowed: an integer"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"evaluation.slices.features": ["NOPE"]},  # the schema's features
        {"evaluation.slices.buckets": {"SEX": [1.5]}},  # only numeric ones
        {"data_ingestion.window": {"start": "2015-01-01", "end": "2016-01-01"}},  # time kind
        {"model_training.seed": "abc"},  # the model itself
    ],
)
def test_overriding_settings_checks_what_loading_them_checks(settings, overrides):
    """Monitoring's retraining and simulate change loaded settings: the same checks as `--set`,
    the same message, the override blamed."""
    with pytest.raises(ConfigError) as loading:
        load_settings(overrides=overrides)
    with pytest.raises(ConfigError) as overriding:
        override_settings(settings, overrides)
    assert str(overriding.value) == str(loading.value)
    assert str(overriding.value).startswith(f"--set {next(iter(overrides))}: ")
    # an override a program made is blamed on that program, with the same problem
    with pytest.raises(ConfigError) as retraining:
        override_settings(settings, overrides, by="retraining:")
    assert str(retraining.value) == str(loading.value).replace("--set ", "retraining: ", 1)
