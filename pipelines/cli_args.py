"""The arguments several `mlpipe` commands share, and how they become Settings.

One module so that each command reads `--config/--schema/--set/--profile` (and `--output-dir`,
`--tfdv-python`, `-v`, `--tracking-uri`) the same way and no command module imports another (or
`pipelines.cli`, which imports them all).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from components.common.config import (
    DEFAULT_DATA_SCHEMA,
    DEFAULT_PIPELINE_CONFIG,
    REPO_ROOT,
    ConfigError,
    Settings,
    load_settings,
)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs → {key: YAML-parsed value}."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. model_training.seed=7")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The config, the schema, the profile (commands that target a cluster have `--profile`,
    default `cluster`), then `--set`."""
    profile = getattr(args, "profile", None)
    return load_settings(
        args.config,
        getattr(args, "schema", None) or DEFAULT_DATA_SCHEMA,
        parse_overrides(getattr(args, "set", None) or []),
        None if profile in (None, "none") else profile,
    )


def add_config_args(
    p: argparse.ArgumentParser, *, schema: bool = True, overrides: bool = True
) -> None:
    """`--config`, and unless switched off `--schema` and `--set`."""
    p.add_argument("--config", default=str(DEFAULT_PIPELINE_CONFIG), help="pipeline config")
    if schema:
        p.add_argument("--schema", default=str(DEFAULT_DATA_SCHEMA), help="data schema")
    if overrides:
        p.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help="override a config key (repeat)"
        )


def add_profile_arg(p: argparse.ArgumentParser) -> None:
    """`--profile` for commands whose output runs on a cluster (compile, submit, schedule)."""
    p.add_argument(
        "--profile",
        default="cluster",
        help="config changes for where the pipeline runs: `cluster` (config/profiles/cluster.yaml:"
        " data, MLflow and state in the cluster's services), a YAML file, or `none`",
    )


def add_output_dir_arg(p: argparse.ArgumentParser, default: Path = REPO_ROOT / "outputs") -> None:
    """`--output-dir`: where runs write (and `data`/`clean` read) their outputs."""
    p.add_argument("--output-dir", default=str(default))


def add_tfdv_python_arg(p: argparse.ArgumentParser) -> None:
    """`--tfdv-python` for commands that start TFDV jobs (run, monitor, schema infer)."""
    p.add_argument("--tfdv-python", default=None, help="Python of the tfdv environment")


def add_verbose_arg(p: argparse.ArgumentParser) -> None:
    """`-v/--verbose` for commands that run a pipeline locally (run, monitor)."""
    p.add_argument("-v", "--verbose", action="store_true", help="stream every task's log")


def add_tracking_uri_arg(p: argparse.ArgumentParser) -> None:
    """`--tracking-uri` for commands that read MLflow (runs, approve/reject/rollback/models)."""
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI)")
