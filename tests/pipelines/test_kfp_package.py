"""Compiled pipeline packages (pipelines/kfp_package.py): the real training and monitoring
pipelines compiled by `compile_package`, loaded back from a file, and their `--param` values
typed, or refused before anything is sent to a server."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from components.common.config import ConfigError
from components.common.pipeline_params import monitoring_parameters, training_parameters
from pipelines.kfp_package import (
    PIPELINES,
    compile_package,
    describe_params,
    load_package,
    parse_params,
)


@pytest.fixture(scope="module")
def package(settings, compile_once):
    return compile_once(settings)


def _typed(package, **kinds: str):
    """The package with these parameters declared of these KFP types (the real pipelines declare
    no boolean or double), and none derived from the config."""
    parameters = {name: {"parameterType": kind} for name, kind in kinds.items()}
    spec = {**package.spec, "root": {"inputDefinitions": {"parameters": parameters}}}
    return dataclasses.replace(package, spec=spec, from_config=frozenset())


def test_params_take_the_types_the_pipeline_declares(package):
    package = dataclasses.replace(package, from_config=frozenset())  # read from a file: typed only
    values = parse_params(
        package,
        ["source=data/2015.parquet", "seed=7", "algorithms=[lightgbm, xgboost]",
         "experiment=2015", "ingestion={source_type: file}"],
    )  # fmt: skip
    assert values == {
        "source": "data/2015.parquet",
        "seed": 7,
        "algorithms": ["lightgbm", "xgboost"],
        "experiment": "2015",  # a string parameter stays a string
        "ingestion": {"source_type": "file"},
    }
    with pytest.raises(ConfigError, match="expected number_integer"):
        parse_params(package, ["seed=true"])


def test_the_version_name_ignores_the_yaml_comment_header(package):
    # kfp writes dict defaults into a header comment in a per-process order (measured: two
    # `mlpipe compile` runs differ only there); the version must name the spec, not the bytes
    header = b"# config: dict [Default: {'b': 1, 'a': 2}]\n"
    shuffled = dataclasses.replace(package, yaml_bytes=header + package.yaml_bytes)
    assert shuffled.version_name == package.version_name
    changed = {**package.spec, "pipelineInfo": {**package.spec["pipelineInfo"], "name": "x"}}
    assert dataclasses.replace(package, spec=changed).digest != package.digest


def test_the_pipeline_registry_names_the_training_pipeline(package):
    assert "training" in PIPELINES and package.name == "mlpipe-training"
    assert package.version_name.startswith("mlpipe-training-") and len(package.version_name) == 28


def test_an_unknown_pipeline_is_refused_naming_the_known_ones(settings):
    with pytest.raises(ConfigError, match=r"unknown pipeline 'serving' \(known: \['monitoring'"):
        compile_package(settings, "serving")


def test_the_config_derived_parameters_are_those_of_the_pipeline_compiled(
    settings, package, compile_once
):
    assert package.from_config == frozenset(training_parameters(settings))
    assert package.from_config <= set(package.parameters)
    # what the run fills in, not the config: settable with --param
    assert {"tracking_uri", "source_digest"} <= set(package.parameters) - package.from_config
    monitoring = compile_once(settings, "monitoring")
    assert monitoring.name == "mlpipe-monitoring"
    assert monitoring.from_config == frozenset(monitoring_parameters(settings))
    assert monitoring.digest != package.digest
    assert package.description.startswith("Ingest, validate")
    assert package.parameters["seed"]["parameterType"] == "NUMBER_INTEGER"


def test_a_package_loaded_from_its_file_has_the_same_spec_and_version(package, tmp_path: Path):
    path = tmp_path / "training.yaml"
    path.write_bytes(package.yaml_bytes)
    loaded = load_package(path.read_bytes())
    assert loaded.spec == package.spec and loaded.platform == package.platform
    assert "kubernetes" in loaded.platform["platforms"]  # the second document: the pod mounts
    assert loaded.version_name == package.version_name
    # read from a file, the package does not know its config: every parameter is settable
    assert loaded.from_config == frozenset()
    assert parse_params(loaded, ["seed=3"]) == {"seed": 3}


def test_a_single_document_package_has_no_platform_spec(package, tmp_path: Path):
    path = tmp_path / "spec-only.yaml"
    first = package.yaml_bytes.split(b"\n---\n")[0]
    path.write_bytes(b"---\n" + first + b"\n---\n")  # empty documents around it are skipped
    loaded = load_package(path.read_bytes())
    assert loaded.platform == {} and loaded.spec == package.spec
    assert loaded.digest != package.digest  # the mounts are part of what a version names


def test_a_package_without_inputs_has_no_parameters(package):
    bare = dataclasses.replace(package, spec={**package.spec, "root": {"dag": {}}})
    assert bare.parameters == {}
    assert parse_params(bare, []) == {}
    with pytest.raises(ConfigError, match=r"has no parameter 'seed' \(parameters: \)"):
        parse_params(bare, ["seed=1"])


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("seed", "expected key=value"),
        ("=7", "expected key=value"),
        ("  =7", "expected key=value"),
        ("sed=7", "mlpipe-training has no parameter 'sed' (parameters: algorithms, config,"),
        ("seed=7", "seed: comes from the config; change the config with --set KEY=VALUE"),
        ("config={}", "config: comes from the config"),
    ],
)
def test_a_malformed_unknown_or_config_derived_param_is_refused(package, pair, message):
    with pytest.raises(ConfigError) as raised:
        parse_params(package, ["tracking_uri=http://mlflow:5000", pair])
    assert message in str(raised.value)


def test_run_parameters_are_accepted_beside_the_config(package):
    values = parse_params(
        package, [" tracking_uri =http://mlflow:5000/a=b", "source_digest=", "source_digest=ab"]
    )
    # the key is trimmed, the value kept whole after the first "=", the last one wins
    assert values == {"tracking_uri": "http://mlflow:5000/a=b", "source_digest": "ab"}
    assert parse_params(package, ["source_digest="]) == {"source_digest": ""}


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("NUMBER_INTEGER", "-3", -3),
        ("NUMBER_DOUBLE", "3", 3.0),
        ("NUMBER_DOUBLE", "0.25", 0.25),
        ("BOOLEAN", "false", False),
        ("LIST", "[]", []),
        ("STRUCT", "{a: [1, 2]}", {"a": [1, 2]}),
        ("STRING", " 2015 ", " 2015 "),
        ("", "[1, x]", [1, "x"]),  # no declared type: YAML, unchecked
    ],
)
def test_each_declared_type_is_parsed(package, kind, text, value):
    parsed = parse_params(_typed(package, p=kind), [f"p={text}"])["p"]
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("NUMBER_INTEGER", "1.5"),
        ("NUMBER_INTEGER", "true"),  # a bool is an int to Python, not to KFP
        ("NUMBER_INTEGER", ""),
        ("NUMBER_DOUBLE", "false"),
        ("NUMBER_DOUBLE", "fast"),
        ("BOOLEAN", "1"),
        ("LIST", "lightgbm"),
        ("STRUCT", "[a]"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(package, kind, text):
    with pytest.raises(ConfigError, match=re.escape(f"--param p={text}: expected {kind.lower()}")):
        parse_params(_typed(package, p=kind), [f"p={text}"])


@pytest.mark.parametrize(("kind", "text"), [("LIST", "[a, b"), ("STRUCT", "{a: 1"), ("", "*x")])
def test_a_value_that_is_not_yaml_is_refused_as_a_config_error(package, kind, text):
    with pytest.raises(ConfigError, match=re.escape(f"--param p={text}: not valid YAML (")):
        parse_params(_typed(package, p=kind), [f"p={text}"])


def test_mlpipe_submit_says_which_param_is_not_yaml_and_sends_nothing(kfp_offline, capsys):
    from pipelines.cli import main

    # the monitoring pipeline's `retraining` (a dict) is a run parameter, not from the config
    argv = ["submit", "--pipeline", "monitoring", "--host", "http://127.0.0.1:9"]
    assert main([*argv, "--param", "retraining={mode: kfp"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "--param retraining={mode: kfp: not valid YAML" in err


def test_the_description_of_values_is_sorted_json_and_cut_at_60_characters():
    assert describe_params({}) == "(defaults)"
    assert describe_params({"seed": 7, "algorithms": ["lightgbm"], "on": True}) == (
        'algorithms=["lightgbm"], on=true, seed=7'
    )
    long = describe_params({"x": "y" * 100})
    assert long == "x=" + json.dumps("y" * 100)[:60]
