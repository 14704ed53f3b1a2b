"""Compiled pipeline packages for KFP: which pipelines exist, their spec, their parameters.

`PIPELINES` maps a CLI name (training, monitoring) to the function that builds the pipeline
from the settings. `compile_package` compiles one to the YAML KFP uploads;
`parse_params` turns `--param key=value` pairs into values of the types the spec declares, and
refuses an unknown name, a wrong type or a parameter derived from the config (`--set` changes
those: components/common/pipeline_params.py) before anything is sent to a server.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.common.config import ConfigError, Settings
from components.common.pipeline_params import monitoring_parameters, training_parameters


def _training(settings: Settings) -> Any:
    from pipelines.training import build_pipeline

    return build_pipeline(settings)


def _monitoring(settings: Settings) -> Any:
    from pipelines.monitoring import build_monitoring_pipeline

    return build_monitoring_pipeline(settings)


PIPELINES: dict[str, Callable[[Settings], Any]] = {
    "training": _training,
    "monitoring": _monitoring,
}
# each pipeline's parameters whose values come from the config
CONFIG_PARAMETERS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "training": training_parameters,
    "monitoring": monitoring_parameters,
}


@dataclass(frozen=True)
class Package:
    """A compiled pipeline: its YAML, parsed spec (the first YAML document) and platform spec
    (the second: `platforms.kubernetes`, what pods mount), name and content-derived version."""

    yaml_bytes: bytes
    spec: dict[str, Any]
    platform: dict[str, Any]
    from_config: frozenset[str] = frozenset()  # parameters derived from the config it compiled

    @property
    def name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    @property
    def description(self) -> str:
        return self.spec["pipelineInfo"].get("description", "")

    @property
    def digest(self) -> str:
        """sha256 of the specs' canonical JSON. Not of the YAML: kfp's header comment lists
        dict defaults in an order that changes from one process to the next."""
        canonical = json.dumps([self.spec, self.platform], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def version_name(self) -> str:
        """Names the content: re-submitting the same package reuses its KFP version."""
        return f"{self.name}-{self.digest[:12]}"

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        """name -> {parameterType, defaultValue, isOptional} from the root's input definitions."""
        return self.spec["root"].get("inputDefinitions", {}).get("parameters", {})


def compile_package(settings: Settings, pipeline: str = "training") -> Package:
    if pipeline not in PIPELINES:
        raise ConfigError(f"unknown pipeline {pipeline!r} (known: {sorted(PIPELINES)})")
    from kfp import compiler

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(PIPELINES[pipeline](settings), str(path))
        data = path.read_bytes()
    return load_package(data, frozenset(CONFIG_PARAMETERS[pipeline](settings)))


def load_package(data: bytes, from_config: frozenset[str] = frozenset()) -> Package:
    """A package from compiled YAML (ours, or a file `mlpipe compile` wrote)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [d for d in yaml.load_all(data, Loader=loader) if d]
    return Package(data, docs[0], docs[1] if len(docs) > 1 else {}, from_config)


def _coerce(name: str, kind: str, text: str) -> Any:
    if kind == "STRING":
        return text  # as typed: "2015" stays a string
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:  # a user's typo: said as a config error, not a traceback
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"--param {name}={text}: not valid YAML ({problem})") from None
    expected: dict[str, tuple[type, ...]] = {
        "NUMBER_INTEGER": (int,),
        "NUMBER_DOUBLE": (int, float),
        "BOOLEAN": (bool,),
        "LIST": (list,),
        "STRUCT": (dict,),
    }
    types = expected.get(kind)
    if types is None:
        return value
    is_bool = isinstance(value, bool)
    if not isinstance(value, types) or (is_bool and kind != "BOOLEAN"):
        raise ConfigError(f"--param {name}={text}: expected {kind.lower()}, got {text!r}")
    return float(value) if kind == "NUMBER_DOUBLE" else value


def parse_params(package: Package, pairs: list[str]) -> dict[str, Any]:
    """`--param key=value` pairs as typed values for the package's parameters (YAML syntax for
    numbers, booleans, lists and dicts; strings as typed). One derived from the config is
    refused: set alone it would disagree with the config the run records (`config_hash`)."""
    declared = package.parameters
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--param {pair!r}: expected key=value, e.g. tracking_uri=http://mlflow:5000"
            )
        if key not in declared:
            raise ConfigError(
                f"--param {key}: {package.name} has no parameter {key!r} "
                f"(parameters: {', '.join(sorted(declared))})"
            )
        if key in package.from_config:
            raise ConfigError(
                f"--param {key}: comes from the config; change the config with --set KEY=VALUE "
                "(validated, and every parameter derived from it)"
            )
        values[key] = _coerce(key, declared[key].get("parameterType", ""), text)
    return values


def describe_params(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)[:60]}" for k, v in sorted(values.items())) or "(defaults)"
