"""The typed configuration: config/pipeline_config.yaml and config/data_schema.yaml in one model.

Unknown keys and wrong types are rejected with the key's dotted path and the file it came from.
Keys whose feature is not built yet accept only their default and fail with "not supported yet".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PIPELINE_CONFIG = REPO_ROOT / "config" / "pipeline_config.yaml"
DEFAULT_DATA_SCHEMA = REPO_ROOT / "config" / "data_schema.yaml"

ALGORITHMS = ("lightgbm", "xgboost", "random_forest", "logistic_regression")


class ConfigError(ValueError):
    """A configuration file is unreadable or does not match the model."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _only_default(default: Any):
    """A validator that accepts only `default`: the key exists, its feature does not yet."""

    def check(value: Any) -> Any:
        if value != default:
            raise ValueError(f"value {value!r} is not supported yet (only {default!r} is)")
        return value

    return check


# ---------------------------------------------------------------- data schema


class IntRange(_Strict):
    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class DriftCheck(_Strict):
    metric: Literal["jensen_shannon", "linf"]
    threshold: Annotated[float, Field(gt=0, le=1)]


class FeatureSpec(_Strict):
    kind: Literal["numeric", "categorical"]
    dtype: Literal["int", "float"]
    description: str = ""
    # numeric: the declared range (blocking outside it)
    min: float | None = None
    max: float | None = None
    # categorical: the full set of codes, as a list or an inclusive range (blocking outside it)
    values: list[int] | IntRange | None = None
    max_missing_fraction: Annotated[float, Field(ge=0, le=1)] | None = None
    drift: DriftCheck | None = None

    @model_validator(mode="after")
    def _domain_matches_kind(self) -> FeatureSpec:
        if self.kind == "categorical":
            if self.values is None:
                raise ValueError("a categorical feature must declare its codes in `values`")
            if self.min is not None or self.max is not None:
                raise ValueError("a categorical feature declares `values`, not min/max")
        else:
            if self.values is not None:
                raise ValueError("a numeric feature declares min/max, not `values`")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    def codes(self) -> list[int]:
        """Every allowed code of a categorical feature."""
        if isinstance(self.values, IntRange):
            return list(range(self.values.min, self.values.max + 1))
        return list(self.values or [])


class LabelSpec(_Strict):
    name: str
    values: list[int] = [0, 1]
    min_positive_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_positive_rate: Annotated[float, Field(ge=0, le=1)] = 0.99


class SchemaChecks(_Strict):
    min_rows: Annotated[int, Field(ge=1)] = 100
    max_duplicate_id_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    max_missing_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    drift_threshold_default: Annotated[float, Field(gt=0, le=1)] = 0.1


class DataSchema(_Strict):
    id_column: str | None = None
    time_column: str | None = None
    label: LabelSpec
    checks: SchemaChecks = SchemaChecks()
    features: dict[str, FeatureSpec]

    @field_validator("features")
    @classmethod
    def _not_empty(cls, value: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        if not value:
            raise ValueError("declare at least one feature")
        return value

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def categorical(self) -> list[str]:
        return [n for n, f in self.features.items() if f.kind == "categorical"]

    @property
    def numeric(self) -> list[str]:
        return [n for n, f in self.features.items() if f.kind == "numeric"]

    @property
    def required_columns(self) -> list[str]:
        extra = [c for c in (self.id_column, self.time_column) if c]
        return [*extra, *self.features, self.label.name]


# ---------------------------------------------------------------- pipeline config


class ProjectConfig(_Strict):
    experiment: str = "acs-employment"
    registered_model: str = "acs-employment"


class Window(_Strict):
    start: int
    end: int

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class IngestionConfig(_Strict):
    source_type: Literal["file"] = "file"
    source_url: str = "data/acs_employment_ma_2015_2018.parquet"
    batch_size: Annotated[int, Field(ge=1)] = 100_000
    schedule: str | None = None
    window: Window | None = None

    _schedule = field_validator("schedule")(_only_default(None))


class SplitConfig(_Strict):
    method: Literal["time", "random"] = "time"
    train_window: tuple[int, int] = (2015, 2015)
    test_window: tuple[int, int] = (2016, 2016)
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    seed: int = 42

    @model_validator(mode="after")
    def _windows(self) -> SplitConfig:
        for name in ("train_window", "test_window"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: start {lo} is after end {hi}")
        if self.method == "time":
            (a, b), (c, d) = self.train_window, self.test_window
            if not (b < c or d < a):
                raise ValueError("train_window and test_window overlap")
        return self


class FeatureConfig(_Strict):
    split: SplitConfig = SplitConfig()
    scaling_method: Literal["standard", "minmax", "robust", "none"] = "standard"
    categorical_encoding: Literal["native", "onehot", "ordinal"] = "native"
    feature_selection: Literal["none", "rfe", "mutual_info", "importance"] = "none"
    max_features: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _selection_needs_count(self) -> FeatureConfig:
        if self.feature_selection != "none" and self.max_features is None:
            raise ValueError(f"feature_selection {self.feature_selection!r} needs max_features")
        return self


class TrainingConfig(_Strict):
    algorithms: list[Literal["lightgbm", "xgboost", "random_forest", "logistic_regression"]] = [
        "lightgbm"
    ]
    cv_folds: int = 3
    hyperparameter_tuning: bool = False
    max_trials: int = 20
    seed: int = 42
    params: dict[str, dict[str, Any]] = {}

    _cv = field_validator("cv_folds")(_only_default(3))
    _tuning = field_validator("hyperparameter_tuning")(_only_default(False))
    _trials = field_validator("max_trials")(_only_default(20))

    @field_validator("algorithms")
    @classmethod
    def _one_algorithm(cls, value: list[str]) -> list[str]:
        if len(value) != 1:
            raise ValueError("exactly one algorithm for now (several: not supported yet)")
        return value

    @field_validator("params")
    @classmethod
    def _known_algorithms(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(ALGORITHMS))
        if unknown:
            raise ValueError(f"unknown algorithm(s) {unknown}; known: {list(ALGORITHMS)}")
        return value

    @property
    def algorithm(self) -> str:
        return self.algorithms[0]

    def params_for(self, algorithm: str) -> dict[str, Any]:
        return dict(self.params.get(algorithm, {}))


class EvaluationConfig(_Strict):
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    thresholds: dict[
        Literal["roc_auc", "accuracy", "precision", "recall", "f1"],
        Annotated[float, Field(ge=0, le=1)],
    ] = {"roc_auc": 0.85}


class DeploymentConfig(_Strict):
    environment: str = "local"
    approval_required: bool = False
    rollback_enabled: bool = True

    _env = field_validator("environment")(_only_default("local"))
    _approval = field_validator("approval_required")(_only_default(False))
    _rollback = field_validator("rollback_enabled")(_only_default(True))


class RuntimeConfig(_Strict):
    image_registry: str = "ghcr.io/mlpipe"
    local_retries: Annotated[int, Field(ge=0, le=5)] = 0
    cluster_retries: Annotated[int, Field(ge=0, le=5)] = 2


class PipelineConfig(_Strict):
    project: ProjectConfig = ProjectConfig()
    data_ingestion: IngestionConfig = IngestionConfig()
    feature_engineering: FeatureConfig = FeatureConfig()
    model_training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    runtime: RuntimeConfig = RuntimeConfig()


class Settings(_Strict):
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
        """The source path with relative paths taken from the repository root."""
        url = self.pipeline.data_ingestion.source_url
        path = Path(url)
        return str(path if path.is_absolute() else REPO_ROOT / path)


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


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{path}: {key}: {msg}")
    return "\n".join(lines)


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None


def load_data_schema(path: str | Path = DEFAULT_DATA_SCHEMA) -> DataSchema:
    path = Path(path)
    return _validate(DataSchema, _read_yaml(path), path)


def load_pipeline_config(
    path: str | Path = DEFAULT_PIPELINE_CONFIG, overrides: dict[str, Any] | None = None
) -> PipelineConfig:
    path = Path(path)
    data = _read_yaml(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    return _validate(PipelineConfig, data, path)


def load_settings(
    config_path: str | Path = DEFAULT_PIPELINE_CONFIG,
    schema_path: str | Path = DEFAULT_DATA_SCHEMA,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    pipeline = load_pipeline_config(config_path, overrides)
    schema = load_data_schema(schema_path)
    return Settings(
        pipeline=pipeline,
        schema=schema,
        pipeline_path=str(Path(config_path).resolve()),
        schema_path=str(Path(schema_path).resolve()),
    )


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {part} is not a mapping")
    node[leaf] = value
