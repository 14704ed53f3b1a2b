"""The typed configuration: config/pipeline_config.yaml and config/data_schema.yaml in one model.

Unknown keys and wrong types are rejected with the key's dotted path and the file it came from.
A key whose feature is not built accepts only its default and fails with "not supported yet";
today that is one key: `deployment.rollback_enabled` (only `true`: rollbacks cannot be turned off).

This module loads and checks the files; each section's model lives in
components/common/config_sections/ (one module per section) and is importable from here too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from components.common.config_sections.base import (
    DEFAULT_DATA_SCHEMA,
    DEFAULT_PIPELINE_CONFIG,
    PROFILES_DIR,
    REPO_ROOT,
    ConfigError,
    StrictModel,
)
from components.common.config_sections.data_schema import (
    ColumnsSpec,
    DataSchema,
    FeatureSpec,
    LabelSpec,
    SchemaChecks,
    TimeSpec,
)
from components.common.config_sections.deployment import (
    DeploymentConfig,
    RolloutPolicy,
    RuntimeConfig,
)
from components.common.config_sections.errors import describe_errors, format_errors
from components.common.config_sections.evaluation import (
    METRIC_DIRECTIONS,
    CostMatrix,
    EvaluationConfig,
)
from components.common.config_sections.ingestion import (
    IngestChecks,
    IngestionConfig,
    Window,
    parse_duration,
)
from components.common.config_sections.monitoring import MonitoringConfig
from components.common.config_sections.training import FeatureConfig, KatibConfig, TrainingConfig

# the names other modules import from here (the sections' own modules hold the rest)
__all__ = [
    "DEFAULT_DATA_SCHEMA",
    "DEFAULT_PIPELINE_CONFIG",
    "METRIC_DIRECTIONS",
    "REPO_ROOT",
    "ColumnsSpec",
    "ConfigError",
    "CostMatrix",
    "DataSchema",
    "DeploymentConfig",
    "EvaluationConfig",
    "FeatureConfig",
    "FeatureSpec",
    "IngestChecks",
    "IngestionConfig",
    "KatibConfig",
    "LabelSpec",
    "MonitoringConfig",
    "PipelineConfig",
    "RolloutPolicy",
    "SchemaChecks",
    "Settings",
    "TimeSpec",
    "TrainingConfig",
    "describe_errors",
    "load_data_schema",
    "load_pipeline_config",
    "load_settings",
    "override_settings",
    "parse_duration",
]


class ProjectConfig(StrictModel):
    experiment: str = "acs-employment"
    registered_model: str = "acs-employment"


class PipelineConfig(StrictModel):
    project: ProjectConfig = ProjectConfig()
    data_ingestion: IngestionConfig = IngestionConfig()
    feature_engineering: FeatureConfig = FeatureConfig()
    model_training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @model_validator(mode="before")
    @classmethod
    def _katib_mounts_follow_runtime(cls, data: Any) -> Any:
        """Katib trials mount the runtime's ConfigMap unless katib names its own (the tune task
        sees only `model_training`, so the name travels there). Not `runtime.s3_secret`: that is
        the tasks' read-write key; trials have their own read-only one (`katib.s3_secret`)."""
        if not isinstance(data, dict) or not isinstance(data.get("runtime"), dict):
            return data
        training = data.get("model_training", {})
        if not isinstance(training, dict) or not isinstance(training.get("katib", {}), dict):
            return data  # model instances: already validated
        katib = dict(training.get("katib") or {})
        if "env_config_map" not in katib and "env_config_map" in data["runtime"]:
            katib["env_config_map"] = data["runtime"]["env_config_map"]
        training = {**training, "katib": katib}
        return {**data, "model_training": training}

    @model_validator(mode="after")
    def _trials_get_no_mlflow_login(self) -> PipelineConfig:
        """Katib trials run training code: no MLflow login through `katib`'s Secrets or env
        (least privilege; the track task logs the trials)."""
        katib, login = self.model_training.katib, self.runtime.mlflow_auth_secret
        if login in (katib.s3_secret, *katib.env_from_secrets):
            raise ValueError(
                f"model_training.katib mounts the MLflow login Secret {login!r} into trial pods: "
                "trials get no MLflow credentials (the track task logs them)"
            )
        leaked = sorted(k for k in katib.env if k.upper().startswith("MLFLOW_"))
        if leaked:
            raise ValueError(
                f"model_training.katib.env sets {leaked}: trials never talk to MLflow "
                "(the track task logs them)"
            )
        return self


class Settings(StrictModel):
    """Everything a run needs: the pipeline config and the data schema, with their origins."""

    pipeline: PipelineConfig
    schema_: DataSchema = Field(alias="schema")
    pipeline_path: str
    schema_path: str

    def digest(self) -> str:
        """A short hash of both files' content: a lineage tag for models and runs."""
        payload = json.dumps(
            [self.pipeline.model_dump(mode="json"), self.schema_.model_dump(mode="json")],
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def resolve_source(self) -> str:
        """The source: a relative file path is taken from the repository root."""
        return self.pipeline.data_ingestion.resolve_source(REPO_ROOT)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(path, model, exc)) from None


def load_data_schema(path: str | Path = DEFAULT_DATA_SCHEMA) -> DataSchema:
    path = Path(path)
    return _validate(DataSchema, _read_yaml(path), path)


def profile_path(profile: str | Path) -> Path:
    """A profile by name (`cluster` -> config/profiles/cluster.yaml) or by path."""
    path = Path(profile)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    candidate = PROFILES_DIR / f"{profile}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown profile {profile!r} (known: {known}, or a YAML file's path)")
    return candidate


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_pipeline_config(
    path: str | Path = DEFAULT_PIPELINE_CONFIG,
    overrides: dict[str, Any] | None = None,
    profile: str | Path | None = None,
) -> PipelineConfig:
    """The config file, then the profile's changes (merged key by key), then `overrides`."""
    path = Path(path)
    data = _read_yaml(path)
    if profile is not None:
        data = _merge(data, _read_yaml(profile_path(profile)))
    return _overridden(data, Blame(path, overrides))


class Blame:
    """Names where a problem's value came from: "key: what is wrong" gets the override that set
    the key (or a key above or below it) in front, else the config file."""

    def __init__(self, path: str | Path, overrides: dict[str, Any] | None, by: str = "--set"):
        self.path, self.overrides, self.by = Path(path), overrides or {}, by

    def __call__(self, problem: str) -> str:
        key = problem.split(":", 1)[0]
        for dotted in self.overrides:
            if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
                return f"{self.by} {problem}"
        return f"{self.path}: {problem}"

    def error(self, problems: list[str]) -> ConfigError:
        return ConfigError("\n".join(self(x) for x in problems))


def _overridden(data: dict[str, Any], blame: Blame) -> Any:
    """The raw config `data` with the overrides set in place, validated."""
    for dotted, value in blame.overrides.items():
        _set_dotted(data, dotted, value)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise blame.error(describe_errors(PipelineConfig, exc)) from None


def load_settings(
    config_path: str | Path = DEFAULT_PIPELINE_CONFIG,
    schema_path: str | Path = DEFAULT_DATA_SCHEMA,
    overrides: dict[str, Any] | None = None,
    profile: str | Path | None = None,
) -> Settings:
    pipeline = load_pipeline_config(config_path, overrides, profile)
    blame = Blame(config_path, overrides)
    return _checked(pipeline, load_data_schema(schema_path), blame, schema_path)


def override_settings(settings: Settings, overrides: dict[str, Any], by: str = "--set") -> Settings:
    """`settings` with dotted-key `overrides` (`model_training.seed`) applied, checked exactly as
    `load_settings` checks a config file and its `--set` flags (the same errors, an override's
    blamed on `by`, what made it): monitoring's retraining and simulate change a config only
    through here."""
    blame = Blame(settings.pipeline_path, overrides, by)
    pipeline = _overridden(settings.pipeline.model_dump(mode="json"), blame)
    return _checked(pipeline, settings.schema_, blame, settings.schema_path)


def _checked(
    pipeline: PipelineConfig, schema: DataSchema, blame: Blame, schema_path: str | Path
) -> Settings:
    """The checks across the config and the schema, then the Settings."""
    _check_feature_references(pipeline, schema, blame)
    _check_time_windows(pipeline, schema, blame)
    return Settings(
        pipeline=pipeline,
        schema=schema,
        pipeline_path=str(blame.path.resolve()),
        schema_path=str(Path(schema_path).resolve()),
    )


def _check_feature_references(pipeline: PipelineConfig, schema: DataSchema, blame: Blame) -> None:
    """Keys of the pipeline config that name features must name the schema's features."""
    known = set(schema.feature_names)
    slices = pipeline.evaluation.slices
    degrade = pipeline.feature_engineering.degrade
    references = {
        "evaluation.slices.features": slices.features,
        "evaluation.slices.buckets": list(slices.buckets),
        "feature_engineering.degrade.drop_features": degrade.drop_features,
    }
    problems = [
        f"{key}: unknown feature(s) {sorted(set(names) - known)}"
        for key, names in references.items()
        if set(names) - known
    ]
    numeric = {n for n, f in schema.features.items() if f.kind == "numeric"}
    problems += [
        f"evaluation.slices.buckets: {name} is not numeric (slice it by value instead)"
        for name in slices.buckets
        if name in known and name not in numeric
    ]
    if problems:
        raise blame.error(problems)


def _check_time_windows(pipeline: PipelineConfig, schema: DataSchema, blame: Blame) -> None:
    """Windows must fit the schema's time kind: numbers for `number`, dates for `timestamp`."""
    from components.common import timekeys

    time = schema.time.model_dump()
    split = pipeline.feature_engineering.split
    windows = {"data_ingestion.window": pipeline.data_ingestion.window}
    if split.method == "time":
        windows |= {"feature_engineering.split.train_window": split.train_window}
        windows |= {"feature_engineering.split.test_window": split.test_window}
    problems = []
    for key, window in windows.items():
        bounds = (window.start, window.end) if isinstance(window, Window) else window
        try:
            timekeys.check_window(*bounds, time) if bounds else None
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
    monitoring = pipeline.monitoring
    if schema.time.kind == "timestamp":
        # why: automatic retraining steps its windows in integer years (monitor/actions.py)
        if monitoring.retrain_window_years:
            problems.append(
                "monitoring.retrain_window_years: not supported for a timestamp time "
                "column (set it to null)"
            )
        retrains = [
            k for k in ("on_drift", "on_decay") if getattr(monitoring.decision, k) == "retrain"
        ]
        if retrains:
            problems.append(
                f"monitoring.decision.{retrains[0]}: automatic retraining needs a number "
                "time column (years); with a timestamp one set on_drift and on_decay to alert"
            )
    if problems:
        raise blame.error(problems)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {part} is not a mapping")
    node[leaf] = value
