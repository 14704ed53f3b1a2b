"""pipelines/cli_args.py: the flags several `mlpipe` commands share and how they become Settings,
through real argparse parsers built with the module's own `add_*` functions."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from components.common.config import (
    DEFAULT_DATA_SCHEMA,
    DEFAULT_PIPELINE_CONFIG,
    REPO_ROOT,
    ConfigError,
    load_settings,
)
from pipelines.cli_args import (
    add_config_args,
    add_output_dir_arg,
    add_profile_arg,
    add_tfdv_python_arg,
    add_tracking_uri_arg,
    add_verbose_arg,
    parse_overrides,
    settings_from_args,
)

CLUSTER_SOURCE = "s3://mlpipe-data/datasets/acs_employment_ma_2015_2018.parquet"


def _parser(*, profile: bool = False, **config_kwargs: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlpipe-test", exit_on_error=False)
    add_config_args(p, **config_kwargs)
    if profile:
        add_profile_arg(p)
    return p


# ---------------------------------------------------------------- parse_overrides


def test_overrides_are_parsed_as_yaml_values():
    got = parse_overrides(
        [
            "model_training.seed=7",
            "a.ratio=0.25",
            "a.flag=true",
            "a.list=[lightgbm, xgboost]",
            "a.none=null",
            "a.text=hello",
            "a.quoted='7'",
        ]
    )
    assert got == {
        "model_training.seed": 7,
        "a.ratio": 0.25,
        "a.flag": True,
        "a.list": ["lightgbm", "xgboost"],
        "a.none": None,
        "a.text": "hello",
        "a.quoted": "7",
    }


def test_an_override_splits_at_the_first_equals_sign_and_strips_the_key():
    assert parse_overrides([" a.url =http://h/?x=1&y=2"]) == {"a.url": "http://h/?x=1&y=2"}
    assert parse_overrides(["a.empty="]) == {"a.empty": None}  # YAML's empty value


def test_a_repeated_key_keeps_the_last_value():
    assert parse_overrides(["k=1", "k=2"]) == {"k": 2}
    assert parse_overrides([]) == {}


@pytest.mark.parametrize("pair", ["model_training.seed", "=7", ""])
def test_an_override_without_a_key_and_an_equals_sign_is_refused(pair):
    with pytest.raises(ConfigError, match=r"expected key=value"):
        parse_overrides(["ok=1", pair])


def test_an_override_value_that_is_not_yaml_is_refused():
    with pytest.raises(Exception, match="flow sequence|expected"):
        parse_overrides(["a.list=[1, 2"])


# ---------------------------------------------------------------- settings_from_args


def test_the_defaults_are_the_repository_config_and_schema_without_a_profile():
    args = _parser().parse_args([])
    assert args.config == str(DEFAULT_PIPELINE_CONFIG) and args.schema == str(DEFAULT_DATA_SCHEMA)
    assert args.set is None
    settings = settings_from_args(args)
    assert settings.digest() == load_settings().digest()
    assert settings.pipeline.data_ingestion.source_url != CLUSTER_SOURCE


def test_set_flags_override_the_config_in_order():
    args = _parser().parse_args(
        ["--set", "model_training.seed=7", "--set", "model_training.seed=8"]
    )
    assert args.set == ["model_training.seed=7", "model_training.seed=8"]
    assert settings_from_args(args).pipeline.model_training.seed == 8


def test_the_cluster_profile_is_the_default_of_commands_with_profile():
    args = _parser(profile=True).parse_args([])
    assert args.profile == "cluster"
    assert settings_from_args(args).pipeline.data_ingestion.source_url == CLUSTER_SOURCE
    # `none` turns it off; --set still wins over the profile
    none = settings_from_args(_parser(profile=True).parse_args(["--profile", "none"]))
    assert none.digest() == load_settings().digest()
    args = _parser(profile=True).parse_args(["--set", "data_ingestion.source_url=s3://b/x.csv"])
    assert settings_from_args(args).pipeline.data_ingestion.source_url == "s3://b/x.csv"


def test_a_profile_file_changes_the_config(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text("model_training:\n  seed: 123\n")
    args = _parser(profile=True).parse_args(["--profile", str(profile)])
    assert settings_from_args(args).pipeline.model_training.seed == 123


def test_an_unknown_profile_is_refused():
    args = _parser(profile=True).parse_args(["--profile", "no-such-profile"])
    with pytest.raises(ConfigError, match="unknown profile 'no-such-profile'"):
        settings_from_args(args)


def test_the_config_and_schema_flags_are_read(tmp_path):
    config = tmp_path / "pipeline.yaml"
    data = yaml.safe_load(DEFAULT_PIPELINE_CONFIG.read_text())
    data["model_training"]["seed"] += 1
    config.write_text(yaml.safe_dump(data))
    schema = tmp_path / "schema.yaml"
    schema.write_text(DEFAULT_DATA_SCHEMA.read_text())
    args = _parser().parse_args(["--config", str(config), "--schema", str(schema)])
    settings = settings_from_args(args)
    assert Path(settings.pipeline_path) == config.resolve()
    assert Path(settings.schema_path).resolve() == schema.resolve()
    assert settings.pipeline.model_training.seed != load_settings().pipeline.model_training.seed


def test_a_bad_set_flag_or_a_missing_config_fails():
    with pytest.raises(ConfigError, match="--set"):
        settings_from_args(_parser().parse_args(["--set", "model_training.no_such_key=1"]))
    with pytest.raises(ConfigError, match="expected key=value"):
        settings_from_args(_parser().parse_args(["--set", "model_training.seed"]))
    with pytest.raises((ConfigError, OSError)):
        settings_from_args(_parser().parse_args(["--config", "/nonexistent/pipeline.yaml"]))


def test_without_schema_and_set_flags_the_defaults_are_used():
    p = _parser(schema=False, overrides=False)
    args = p.parse_args([])
    assert not hasattr(args, "schema") and not hasattr(args, "set")
    assert settings_from_args(args).digest() == load_settings().digest()
    for flag in ("--schema", "--set"):
        with pytest.raises(SystemExit):  # argparse: unrecognized arguments
            p.parse_args([flag, "x"])


# ---------------------------------------------------------------- the other shared flags


def test_output_dir_defaults_to_the_repository_outputs_or_the_given_default(tmp_path):
    p = argparse.ArgumentParser()
    add_output_dir_arg(p)
    assert p.parse_args([]).output_dir == str(REPO_ROOT / "outputs")
    assert p.parse_args(["--output-dir", str(tmp_path)]).output_dir == str(tmp_path)
    q = argparse.ArgumentParser()
    add_output_dir_arg(q, default=tmp_path / "elsewhere")
    assert q.parse_args([]).output_dir == str(tmp_path / "elsewhere")


def test_tfdv_python_verbose_and_tracking_uri_flags():
    p = argparse.ArgumentParser(exit_on_error=False)
    add_tfdv_python_arg(p)
    add_verbose_arg(p)
    add_tracking_uri_arg(p)
    off = p.parse_args([])
    assert (off.tfdv_python, off.verbose, off.tracking_uri) == (None, False, None)
    on = p.parse_args(["--tfdv-python", "/t/python", "-v", "--tracking-uri", "http://m:5000"])
    assert (on.tfdv_python, on.verbose, on.tracking_uri) == ("/t/python", True, "http://m:5000")
    assert p.parse_args(["--verbose"]).verbose is True
    with pytest.raises(argparse.ArgumentError):
        p.parse_args(["--tfdv-python"])  # the flag needs its value
