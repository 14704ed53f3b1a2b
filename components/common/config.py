"""The typed configuration: config/pipeline_config.yaml and config/data_schema.yaml in one model.

Unknown keys and wrong types are rejected with the key's dotted path and the file it came from.
A key whose feature is not built accepts only its default and fails with "not supported yet";
today that is one key: `deployment.rollback_enabled` (only `true`: rollbacks cannot be turned off).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from itertools import pairwise
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from components.common.search_space import ParamSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PIPELINE_CONFIG = REPO_ROOT / "config" / "pipeline_config.yaml"
DEFAULT_DATA_SCHEMA = REPO_ROOT / "config" / "data_schema.yaml"
# profiles: config changes for where a pipeline runs (`mlpipe compile|submit|schedule` use
# `cluster`: data, MLflow and state in the cluster's services, never a repository path)
PROFILES_DIR = REPO_ROOT / "config" / "profiles"

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
    dtype: Literal["int", "float", "string"]
    description: str = ""
    # numeric: the declared range (blocking outside it)
    min: float | None = None
    max: float | None = None
    # categorical: the full set of codes, as a list or an inclusive range (blocking outside it);
    # dtype string: the list of texts, whose positions are the codes the model sees
    # (components/common/categories.py)
    values: list[int] | IntRange | list[str] | None = None
    max_missing_fraction: Annotated[float, Field(ge=0, le=1)] | None = None
    drift: DriftCheck | None = None

    @model_validator(mode="after")
    def _domain_matches_kind(self) -> FeatureSpec:
        texts = isinstance(self.values, list) and any(isinstance(v, str) for v in self.values)
        if self.dtype == "string":
            if self.kind != "categorical":
                raise ValueError("dtype string is for categorical features only")
            if not isinstance(self.values, list) or not texts:
                raise ValueError("a string feature lists its values: a non-empty list of strings")
            repeated = sorted({v for v in self.values if self.values.count(v) > 1})
            if repeated:
                raise ValueError(f"values {repeated} listed more than once")
        elif texts:
            raise ValueError(f"string values need dtype string (dtype is {self.dtype})")
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
        """Every allowed code of a categorical feature (a string feature: 0..len(values)-1)."""
        if self.dtype == "string":
            return list(range(len(self.values or [])))
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
    # rows repeating an earlier row's features and label: people share profiles (the bundled
    # census data: 54 %), copied data does not (each row 10 times: 95 %) and leaks across folds
    warn_duplicate_row_fraction: Annotated[float, Field(ge=0, le=1)] = 0.75  # drift-kind finding
    max_duplicate_row_fraction: Annotated[float, Field(ge=0, le=1)] = 0.9  # blocking
    max_missing_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    drift_threshold_default: Annotated[float, Field(gt=0, le=1)] = 0.1


class ColumnsSpec(_Strict):
    """Columns of the data that are neither features, label, id nor time."""

    # read, then dropped before any check or training: never a feature. A column neither
    # declared nor listed here stays a blocking `unexpected_column`.
    ignore: list[str] = []

    @field_validator("ignore")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"{repeated} listed more than once")
        return value


class TimeSpec(_Strict):
    """How the time column's values are read (components.common.timekeys)."""

    kind: Literal["number", "timestamp"] = "number"  # number: compared as is (integer years)
    timezone: str = "UTC"  # timestamp: the zone of naive values and naive window bounds
    unit: Literal["s", "ms"] = "s"  # timestamp: the unit of epoch numbers

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError):
            raise ValueError(f"unknown timezone {value!r} (an IANA name like UTC)") from None
        return value


class DataSchema(_Strict):
    id_column: str | None = None
    time_column: str | None = None
    time: TimeSpec = TimeSpec()
    label: LabelSpec
    checks: SchemaChecks = SchemaChecks()
    features: dict[str, FeatureSpec]
    columns: ColumnsSpec = ColumnsSpec()  # after the roles it is checked against

    @field_validator("features")
    @classmethod
    def _not_empty(cls, value: dict[str, FeatureSpec]) -> dict[str, FeatureSpec]:
        if not value:
            raise ValueError("declare at least one feature")
        return value

    @field_validator("columns")
    @classmethod
    def _ignored_are_unused(cls, value: ColumnsSpec, info: ValidationInfo) -> ColumnsSpec:
        # a column is used or ignored, never both (only roles that validated are in info.data)
        roles = {name: "a feature" for name in info.data.get("features") or {}}
        label = info.data.get("label")
        for name, role in (
            (info.data.get("id_column"), "the id column"),
            (info.data.get("time_column"), "the time column"),
            (label.name if label else None, "the label"),
        ):
            if name:
                roles[name] = role
        clash = [f"{c!r} is {roles[c]}" for c in value.ignore if c in roles]
        if clash:
            raise ValueError(f"ignore lists columns the schema uses: {'; '.join(clash)}")
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


def _iso(value: Any) -> Any:
    """YAML reads an unquoted 2013-01-01 as a date: windows keep it as its ISO string."""
    return value.isoformat() if isinstance(value, date) else value


# A window bound: a number (a number time column) or an ISO date/datetime (a timestamp one);
# which one fits is checked against the schema's `time.kind` in `load_settings`.
Bound = Annotated[int | str, BeforeValidator(_iso)]


def _check_window(start: Any, end: Any) -> None:
    from components.common import timekeys

    if isinstance(start, str) != isinstance(end, str):
        raise ValueError(f"start {start!r} and end {end!r}: give two numbers or two dates")
    kind = "timestamp" if isinstance(start, str) else "number"
    timekeys.check_window(start, end, {"kind": kind})


class Window(_Strict):
    start: Bound
    end: Bound

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        _check_window(self.start, self.end)
        return self


# Names that mark a credential: such values come from the environment or a mounted Secret file,
# never from a config file (which is committed, logged as MLflow params and shown in KFP).
_SECRET_NAMES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "signature",
    "sig",
    "credential",
    "authorization",
    "cookie",
    "private_key",
)


def _looks_secret(name: str) -> bool:
    name = name.lower().replace("-", "_")
    return any(
        part == name or name.endswith(f"_{part}") or name.startswith(f"{part}_")
        for part in _SECRET_NAMES
    ) or name in ("key", "x_api_key")


def _check_no_inline_secret(url: str) -> None:
    """Reject a URL that carries a password or a credential-like query parameter."""
    from urllib.parse import parse_qsl, urlsplit

    if "://" not in url:
        return
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError(
            "the URL holds a password: put it in an environment variable or a mounted Secret "
            "file (sql.password_env / sql.password_file, api.auth_env), never in the config"
        )
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if _looks_secret(name):
            raise ValueError(
                f"the URL's query parameter {name!r} looks like a credential: pass it through "
                "the environment (api.auth_env) instead"
            )


class SqlSource(_Strict):
    """`source_type: sql`: `source_url` is a SQLAlchemy URL without a password."""

    query: str | None = None  # a SELECT; or
    table: str | None = None  # a table name (optionally schema.table)
    password_env: str | None = None  # environment variable holding the password
    password_file: str | None = None  # a mounted Kubernetes Secret file holding the password
    url_env: str | None = None  # or: the whole URL (with password) from this environment variable
    connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3  # whole-read retries on a lost connection
    backoff_s: Annotated[float, Field(ge=0)] = 1.0

    @model_validator(mode="after")
    def _one_of(self) -> SqlSource:
        if (self.query is None) == (self.table is None):
            raise ValueError("give exactly one of `query` and `table`")
        if self.password_env and self.password_file:
            raise ValueError("give at most one of `password_env` and `password_file`")
        return self


class ApiSource(_Strict):
    """`source_type: api`: `source_url` is the endpoint of a REST API answering JSON."""

    records_path: str = "data"  # dotted path of the list of records in a page ("" = the body)
    pagination: Literal["none", "page", "cursor"] = "page"
    page_param: str = "page"
    first_page: int = 1
    page_size_param: str | None = "per_page"
    page_size: Annotated[int, Field(ge=1)] = 1000
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"  # dotted path of the next cursor (null/absent = last)
    watermark_param: str | None = None  # send the last watermark so the server filters
    params: dict[str, str | int | float | bool] = {}  # fixed query parameters (no credentials)
    headers: dict[str, str] = {}  # fixed headers (no credentials)
    auth_header: str = "Authorization"
    auth_env: str | None = None  # environment variable holding the credential
    auth_file: str | None = None  # or a mounted Kubernetes Secret file holding it
    auth_scheme: str | None = "Bearer"  # prefix of the header value (null: the value as is)
    timeout_s: Annotated[float, Field(gt=0)] = 30.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 4  # per request, on 429/5xx/lost connection
    backoff_s: Annotated[float, Field(ge=0)] = 0.5  # first wait; doubles each retry (cap 30 s)
    max_pages: Annotated[int, Field(ge=1)] | None = None

    @field_validator("params", "headers")
    @classmethod
    def _no_credentials(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if _looks_secret(k)]
        if bad:
            raise ValueError(f"{bad} look like credentials: use auth_env or auth_file instead")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> ApiSource:
        if self.auth_env and self.auth_file:
            raise ValueError("give at most one of `auth_env` and `auth_file`")
        return self


class IncrementalConfig(_Strict):
    """Load only rows whose `watermark_column` is greater than the last committed value."""

    watermark_column: str
    initial: int | float | str | None = None  # first run: only rows above this (null: all)
    state_key: str | None = None  # name of the source's state (default: derived from the source)
    on_no_new_rows: Literal["stop", "fail"] = "stop"  # stop: exit 0 "nothing new"; fail: exit 1


class IngestChecks(_Strict):
    """Freshness and completeness of what ingest read: metrics, and anomalies when violated."""

    freshness_column: str | None = None  # timestamps (or epoch seconds)
    max_age: str | None = None  # newest row at most this old: "90m", "36h", "7d", "3600s"
    min_rows: Annotated[int, Field(ge=0)] | None = None
    max_rows: Annotated[int, Field(ge=0)] | None = None
    blocking: bool = False  # true: a violated check stops the run (no Dataset, no watermark)

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IngestChecks:
        if (self.max_age is None) != (self.freshness_column is None):
            raise ValueError("freshness needs both `freshness_column` and `max_age`")
        both = self.min_rows is not None and self.max_rows is not None
        if both and self.min_rows > self.max_rows:
            raise ValueError(f"min_rows {self.min_rows} is greater than max_rows")
        return self


def parse_duration(text: str) -> float:
    """'90m' -> 5400.0 seconds (units s, m, h, d, w)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = str(text).strip().lower()
    try:
        return float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"{text!r} is not a duration like 90m, 36h, 7d") from None


class IngestionConfig(_Strict):
    source_type: Literal["file", "url", "sql", "api"] = "file"
    # file: local path or glob; url: fsspec URL (s3://, gs://, http(s)://, globs on object stores);
    # sql: SQLAlchemy URL without password; api: the endpoint
    source_url: str = "data/acs_employment_ma_2015_2018.parquet"
    format: Literal["auto", "parquet", "csv", "jsonl"] = "auto"  # file/url: auto = by extension
    # csv: the field separator, one character (";", "|", "\t" for tab-separated files)
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    storage_options: dict[str, Any] = {}  # url: fsspec options (nested allowed), no secrets
    sql: SqlSource | None = None
    api: ApiSource | None = None
    batch_size: Annotated[int, Field(ge=1)] = 100_000  # rows per chunk read and written
    # cron for `mlpipe schedule` (UTC): 5 fields (standard) or 6 (KFP's, seconds first)
    schedule: str | None = None
    window: Window | None = None
    incremental: IncrementalConfig | None = None
    checks: IngestChecks = IngestChecks()
    dataset_version: str | None = None  # pin: reuse this catalogued version (id or prefix)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from components.common.cron import validate_cron

        return None if value is None else validate_cron(value)

    @field_validator("delimiter")
    @classmethod
    def _separator(cls, value: str) -> str:
        if value in ('"', "\n", "\r"):
            raise ValueError(f"{value!r} cannot separate fields (it quotes or ends lines)")
        return value

    @field_validator("source_url")
    @classmethod
    def _no_inline_password(cls, value: str) -> str:
        _check_no_inline_secret(value)
        return value

    @field_validator("storage_options")
    @classmethod
    def _no_secret_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        def keys(node: Any, prefix: str = "") -> list[str]:
            if not isinstance(node, dict):
                return []
            return [f"{prefix}{k}" for k in node] + [
                name for k, v in node.items() for name in keys(v, f"{prefix}{k}.")
            ]

        bad = [k for k in keys(value) if _looks_secret(k.rsplit(".", 1)[-1])]
        if bad:
            raise ValueError(f"{bad} look like credentials: use the environment (e.g. AWS_*)")
        return value

    @model_validator(mode="after")
    def _section_matches_type(self) -> IngestionConfig:
        if self.source_type == "sql" and self.sql is None:
            raise ValueError("source_type sql needs a `sql` section (query or table)")
        if self.source_type != "sql" and self.sql is not None:
            raise ValueError(f"a `sql` section needs source_type sql, not {self.source_type}")
        if self.source_type != "api" and self.api is not None:
            raise ValueError(f"an `api` section needs source_type api, not {self.source_type}")
        if self.storage_options and self.source_type != "url":
            raise ValueError("storage_options apply to source_type url only")
        if self.dataset_version is not None and self.incremental is not None:
            raise ValueError("a pinned dataset_version cannot be incremental: drop one of them")
        if self.delimiter != "," and self.source_type in ("sql", "api"):
            raise ValueError(
                f"delimiter applies to CSV files only, not to a {self.source_type} source"
            )
        if self.delimiter != "," and self.format in ("parquet", "jsonl"):
            raise ValueError(f"delimiter applies to CSV files only, not {self.format} files")
        return self

    @property
    def live(self) -> bool:
        """Whether a read depends on more than the source's content digest (state or a live
        system): such an ingest has side effects or changing answers and must not be cached."""
        if self.dataset_version is not None:
            return False
        return self.incremental is not None or self.source_type in ("sql", "api")

    def resolve_source(self, root: Path = REPO_ROOT) -> str:
        """The source: a relative local path is taken from `root`; URLs are returned as they are."""
        if self.source_type != "file":
            return self.source_url
        path = Path(self.source_url)
        return str(path if path.is_absolute() else root / path)


class SplitConfig(_Strict):
    method: Literal["time", "random"] = "time"
    # numbers for a number time column, ISO dates/datetimes (an end date: its whole day) for a
    # timestamp one
    train_window: tuple[Bound, Bound] = (2015, 2015)
    test_window: tuple[Bound, Bound] = (2016, 2016)
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    seed: int = 42

    @model_validator(mode="after")
    def _windows(self) -> SplitConfig:
        from components.common import timekeys

        for name in ("train_window", "test_window"):
            try:
                _check_window(*getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        if self.method == "time":
            kinds = {isinstance(b, str) for b in (*self.train_window, *self.test_window)}
            if len(kinds) > 1:
                raise ValueError("train_window and test_window: give numbers or dates, not both")
            time = {"kind": "timestamp" if kinds == {True} else "number"}
            if timekeys.overlap(self.train_window, self.test_window, time):
                raise ValueError("train_window and test_window overlap")
        return self


class DegradeConfig(_Strict):
    """Deliberately worsen the training rows (the test rows stay intact): rehearses the quality
    gate with a model that must be blocked. Off by default."""

    label_noise: Annotated[float, Field(ge=0, le=0.5)] = 0.0  # share of train labels flipped
    drop_features: list[str] = []  # e.g. the strongest ones: [SCHL, AGEP]
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.label_noise > 0 or bool(self.drop_features)


class FeatureConfig(_Strict):
    split: SplitConfig = SplitConfig()
    scaling_method: Literal["standard", "minmax", "robust", "none"] = "standard"
    categorical_encoding: Literal["native", "onehot", "ordinal"] = "native"
    feature_selection: Literal["none", "rfe", "mutual_info", "importance"] = "none"
    max_features: Annotated[int, Field(ge=1)] | None = None
    degrade: DegradeConfig = DegradeConfig()

    @model_validator(mode="after")
    def _selection_needs_count(self) -> FeatureConfig:
        if self.feature_selection != "none" and self.max_features is None:
            raise ValueError(f"feature_selection {self.feature_selection!r} needs max_features")
        return self


class KatibConfig(_Strict):
    """The Katib backend (`tuning_backend: katib`): where and how the Experiment runs.

    `namespace`: where the Experiment and its trial pods run: `mlpipe` (where manifests/ grants
    the pipeline's service account its Katib rights, labels the namespace for Katib's collector
    injection and lets trial pods reach the object store, not MLflow); null: the namespace the
    tune task's own pod runs in (its service-account mount tells). `staging_url`: where the tune
    task copies what trials read (default `<MLPIPE_STATE_DIR>/katib-staging`); `env_config_map`:
    the ConfigMap in that namespace the trials take the object store's endpoint from (default
    `runtime.env_config_map`); `s3_secret`: the Secret there with the trials' object-store
    credentials, a read-only key (trials only read what the tune task staged; default
    `mlpipe-s3-readonly`, which the model servers' ServiceAccount lists too); `s3_secret`,
    `env_from_secrets` and `env` may not give trials the MLflow login or `MLFLOW_*` settings
    (refused).
    `resources`: the trial container's requests and limits (both, cpu and memory; default
    requests 1 CPU / 2Gi, limits 2 CPU / 4Gi)."""

    namespace: str | None = "mlpipe"
    staging_url: str | None = None
    env_config_map: str = "mlpipe-pipeline-env"
    s3_secret: str = "mlpipe-s3-readonly"
    algorithm: str = "tpe"
    algorithm_settings: dict[str, Any] = {}
    parallel_trials: Annotated[int, Field(ge=1)] = 2
    max_failed_trials: Annotated[int, Field(ge=0)] | None = None
    goal: float | None = None
    early_stopping: dict[str, int] | None = {"min_trials_required": 5, "start_step": 1}
    timeout_s: Annotated[float, Field(gt=0)] = 3600.0
    poll_s: Annotated[float, Field(gt=0)] = 15.0
    image: str | None = None  # default: the project's pipeline image
    resources: dict[str, Any] | None = None
    env: dict[str, str] = {}
    env_from_secrets: list[str] = []  # Secrets mounted as env (S3 credentials for the data)
    service_account: str | None = None


class TrainingConfig(_Strict):
    algorithms: Annotated[
        list[Literal["lightgbm", "xgboost", "random_forest", "logistic_regression"]],
        Field(min_length=1),
    ] = ["lightgbm"]
    cv_folds: Annotated[int, Field(ge=2, le=10)] = 3
    cv_strategy: Literal["stratified", "time"] = "stratified"
    # the final model: `folds` = the mean of the k cross-validation fold models of the best params
    # (components/common/fold_ensemble.py; stratified folds only: time folds train on ever fewer
    # rows, so those refit), `refit` = one model on all rows with the folds' rounds
    final_fit: Literal["folds", "refit"] = "folds"
    hyperparameter_tuning: bool = False
    tuning_backend: Literal["optuna", "katib"] = "optuna"
    # the study stops on a trial count (reproducible); time_budget_s is an optional wall-time cap
    # (when it binds, the result depends on machine speed and the tune result says so)
    max_trials: Annotated[int, Field(ge=1, le=1000)] = 12
    # the best params of up to this many earlier studies (same algorithm and features, the
    # champion's first) are the study's first trials after the configured params; 0 = off
    warm_start: Annotated[int, Field(ge=0, le=20)] = 3
    time_budget_s: Annotated[float, Field(gt=0)] | None = None
    tuning_parallelism: Annotated[int, Field(ge=1, le=8)] = 2
    threads_per_trial: Annotated[int, Field(ge=1, le=64)] = 1
    seed: int = 42
    params: dict[str, dict[str, Any]] = {}
    # values of searched params: the study's first trial, and the model's params untuned
    start_params: dict[str, dict[str, Any]] = {}
    search_spaces: dict[str, dict[str, ParamSpec]] = {}
    katib: KatibConfig = KatibConfig()

    @field_validator("algorithms")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each algorithm at most once")
        return value

    @field_validator("params", "search_spaces")
    @classmethod
    def _known_algorithms(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(ALGORITHMS))
        if unknown:
            raise ValueError(f"unknown algorithm(s) {unknown}; known: {list(ALGORITHMS)}")
        return value

    @model_validator(mode="after")
    def _spaces_for_tuning(self) -> TrainingConfig:
        if self.hyperparameter_tuning:
            missing = [a for a in self.algorithms if not self.search_spaces.get(a)]
            if missing:
                raise ValueError(f"hyperparameter_tuning needs search_spaces for {missing}")
        for algorithm, space in self.search_spaces.items():
            clash = sorted(set(space) & set(self.params.get(algorithm, {})))
            if clash:
                raise ValueError(f"{algorithm}: {clash} both fixed in params and searched")
        for algorithm, start in self.start_params.items():
            space = self.search_spaces.get(algorithm, {})
            fixed = sorted(set(start) - set(space))
            if fixed:
                raise ValueError(
                    f"start_params.{algorithm}: {fixed} not searched (fixed values go in params)"
                )
            for name, value in start.items():
                spec = space[name]
                inside = (
                    value in spec.choices
                    if spec.type == "categorical"
                    else (isinstance(value, (int, float)) and spec.low <= value <= spec.high)
                )
                if not inside:
                    raise ValueError(
                        f"start_params.{algorithm}.{name}: {value!r} is outside its search space"
                    )
        return self

    @property
    def algorithm(self) -> str:
        return self.algorithms[0]

    def params_for(self, algorithm: str) -> dict[str, Any]:
        """The fixed params (not searched)."""
        return dict(self.params.get(algorithm, {}))

    def start_for(self, algorithm: str) -> dict[str, Any]:
        """The start values of searched params: a study's trial 0, the model when untuned."""
        return dict(self.start_params.get(algorithm, {}))


# gate metrics and which way is better (+1 higher, -1 lower)
METRIC_DIRECTIONS: dict[str, int] = {
    "roc_auc": 1,
    "pr_auc": 1,
    "accuracy": 1,
    "precision": 1,
    "recall": 1,
    "f1": 1,
    "log_loss": -1,
    "brier": -1,
    "expected_cost": -1,
}
GateMetric = Literal[
    "roc_auc",
    "pr_auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "brier",
    "expected_cost",
]


class CostMatrix(_Strict):
    """What a wrong decision costs (any unit; per row). The business threshold minimises
    `false_positive * FP + false_negative * FN` over the test rows."""

    false_positive: Annotated[float, Field(ge=0)] = 1.0
    false_negative: Annotated[float, Field(ge=0)] = 1.0

    @model_validator(mode="after")
    def _some_cost(self) -> CostMatrix:
        if self.false_positive == 0 and self.false_negative == 0:
            raise ValueError("at least one of false_positive / false_negative must cost > 0")
        return self


class SliceConfig(_Strict):
    """Per-slice metrics: one slice per value of each categorical feature, one per bucket of
    each bucketed numeric feature."""

    features: list[str] = ["SEX", "RAC1P"]
    buckets: dict[str, Annotated[list[float], Field(min_length=1)]] = {"AGEP": [25, 35, 45, 55, 65]}
    min_rows: Annotated[int, Field(ge=1)] = 200  # smaller slices are shown, never gated
    thresholds: dict[Literal["roc_auc", "accuracy", "precision", "recall", "f1"], float] = {}
    max_gap: dict[Literal["roc_auc", "accuracy", "precision", "recall", "f1"], float] = {}

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, edges in value.items():
            if any(b <= a for a, b in pairwise(edges)):
                raise ValueError(f"{name}: bucket edges must increase, got {edges}")
        return value


class ExplainConfig(_Strict):
    enabled: bool = True
    sample_rows: Annotated[int, Field(ge=100)] = 5000  # rows permuted / averaged over
    repeats: Annotated[int, Field(ge=1, le=20)] = 3  # shuffles per feature
    top_features: Annotated[int, Field(ge=1)] = 4  # partial dependence for the top N
    grid_points: Annotated[int, Field(ge=3, le=100)] = 20
    seed: int = 0


class EvaluationConfig(_Strict):
    # "min_cost": the threshold that minimises the expected cost on the test rows
    decision_threshold: Annotated[float, Field(gt=0, lt=1)] | Literal["min_cost"] = "min_cost"
    cost: CostMatrix = CostMatrix()
    # absolute gate: a minimum for higher-is-better metrics, a maximum for the others
    thresholds: dict[GateMetric, float] = {"roc_auc": 0.85}
    # change gate against the champion: how much worse than the champion a metric may be
    max_regression: dict[GateMetric, Annotated[float, Field(ge=0)]] = {"roc_auc": 0.005}
    slices: SliceConfig = SliceConfig()
    explain: ExplainConfig = ExplainConfig()

    @field_validator("thresholds")
    @classmethod
    def _bounded(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, limit in value.items():
            if metric not in ("log_loss", "expected_cost") and not 0 <= limit <= 1:
                raise ValueError(f"{metric}: {limit} is outside [0, 1]")
        return value


class RolloutPolicy(_Strict):
    """When a canary window fails: any limit exceeded once the canary answered enough requests."""

    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01  # 5xx + connection errors
    max_p99_ms: Annotated[float, Field(gt=0)] = 10.0  # the upstream's p99 latency ...
    latency_stable_ratio: Annotated[float, Field(ge=1)] = 1.5  # ... if slower than stable
    max_psi: Annotated[float, Field(gt=0)] = 0.2  # score distribution vs stable (effect size)
    min_canary_requests: Annotated[int, Field(ge=1)] = 200  # no decision before
    # the canary's 4xx rate may exceed stable's by this much (a candidate refusing its requests)
    max_client_error_increase: Annotated[float, Field(ge=0, le=1)] = 0.01
    min_answered_share: Annotated[float, Field(ge=0, le=1)] = 0.99  # 2xx with scores, x stable's
    # Spearman's rho of both versions' scores on the same rows (retrains ~0.8-0.9, invert -1)
    min_rank_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.5

    @model_validator(mode="before")
    @classmethod
    def _no_max_ks(cls, data: Any) -> Any:
        # an old config's key, refused with the reason rather than as an unknown field
        if isinstance(data, dict) and "max_ks" in data:
            raise ValueError(
                "max_ks was removed: KS is reported with each window but never decides (equal-"
                "quality retrains exceed any useful limit); delete the key — max_psi and "
                "min_rank_correlation judge the score distribution"
            )
        return data


class AnalysisWindow(_Strict):
    """One window per step: done after `seconds` and `min_requests` canary requests; a window
    that cannot gather its requests within `max_seconds` fails."""

    seconds: Annotated[float, Field(gt=0)] = 10.0  # a local rehearsal; raise it on a cluster
    min_requests: Annotated[int, Field(ge=1)] = 200
    max_seconds: Annotated[float, Field(gt=0)] = 600.0
    check_interval_s: Annotated[float, Field(gt=0)] = 1.0  # a failing window ends at once

    @model_validator(mode="after")
    def _ordered(self) -> AnalysisWindow:
        if self.max_seconds < self.seconds:
            raise ValueError(f"max_seconds {self.max_seconds} is below seconds {self.seconds}")
        return self


class KServeRollout(_Strict):
    """Where and how the InferenceService runs (`environment: kserve`)."""

    namespace: str = "mlpipe"
    # reads the model store with the read-only key its ServiceAccount lists (manifests/)
    service_account: str | None = "mlpipe-serving"
    runtime: str = "mlpipe"  # the ServingRuntime (model format `mlpipe`)
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    min_replicas: Annotated[int, Field(ge=0)] = 1
    ready_timeout_s: Annotated[float, Field(gt=0)] = 600.0
    poll_s: Annotated[float, Field(gt=0)] = 5.0
    prometheus_url: str | None = None  # analysis metrics; None: the model pods' own /metrics
    server_port: Annotated[int, Field(gt=0, lt=65536)] = 8080  # the ServingRuntime's port
    # send test rows through the InferenceService's URL during the rollout: a cluster without
    # live traffic (kind) still has windows to judge. Off for real traffic.
    replay_test_rows: bool = False


class RolloutConfig(_Strict):
    strategy: Literal["canary", "blue_green", "direct"] = "canary"
    steps: Annotated[list[int], Field(min_length=1)] = [10, 50, 100]  # canary traffic percent
    window: AnalysisWindow = AnalysisWindow()
    policy: RolloutPolicy = RolloutPolicy()
    kserve: KServeRollout = KServeRollout()

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, value: list[int]) -> list[int]:
        if any(not 0 < s <= 100 for s in value):
            raise ValueError(f"each step is a traffic percent in 1..100, got {value}")
        if any(a >= b for a, b in pairwise(value)):
            raise ValueError(f"steps must increase, got {value}")
        if value[-1] != 100:
            raise ValueError(f"the last step must be 100 (all traffic), got {value}")
        return value


class InfraValidationConfig(_Strict):
    """Before any rollout the candidate's own server must answer real test rows like the model
    does offline (`tolerance`) and fast enough (one-row p99)."""

    rows: Annotated[int, Field(ge=10)] = 200
    p99_budget_ms: Annotated[float, Field(gt=0)] = 50.0
    tolerance: Annotated[float, Field(gt=0)] = 1e-6


class DeploymentConfig(_Strict):
    environment: Literal["local", "kserve"] = "local"
    # True: a version that passes the gate waits as `challenger` until `mlpipe approve`
    approval_required: bool = False
    rollback_enabled: bool = True
    rollout: RolloutConfig = RolloutConfig()
    infra_validation: InfraValidationConfig = InfraValidationConfig()

    _rollback = field_validator("rollback_enabled")(_only_default(True))


class RuntimeConfig(_Strict):
    image_registry: str = "ghcr.io/mlpipe"
    local_retries: Annotated[int, Field(ge=0, le=5)] = 0
    cluster_retries: Annotated[int, Field(ge=0, le=5)] = 2
    # what the compiled pipeline asks the cluster for, by name (manifests/ creates them):
    service_account: str = "mlpipe-pipeline"  # runs and recurring runs (mlpipe submit|schedule)
    env_config_map: str = "mlpipe-pipeline-env"  # MLflow URI, state store, ... for every task
    s3_secret: str = "mlpipe-s3"  # read-write S3 credentials for every task
    # MLflow login (MLFLOW_TRACKING_USERNAME/PASSWORD) for every task; only here, not in `katib`:
    # trials and model servers get no MLflow credentials
    mlflow_auth_secret: str = "mlpipe-mlflow-auth"
    alerts_secret: str = "mlpipe-alerts"  # key webhook_url: the alert webhook (optional)


class DecayTolerance(_Strict):
    """How much worse than its own evaluation the champion may score on a labelled batch."""

    roc_auc: Annotated[float, Field(ge=0, le=1)] = 0.02  # AUC drop allowed
    expected_cost: Annotated[float, Field(ge=0)] = 0.02  # expected cost per row increase allowed


class DecisionPolicy(_Strict):
    """How monitoring findings become a decision (none | alert | retrain)."""

    on_drift: Literal["alert", "retrain"] = "retrain"
    min_drifted_features: Annotated[int, Field(ge=1)] = 1  # fewer: no drift incident
    on_decay: Literal["alert", "retrain"] = "retrain"
    # a batch with blocking anomalies (bad data) is never trained on: it only alerts
    min_rows: Annotated[int, Field(ge=1)] = 200  # smaller batches: statistics too noisy to act


class ResourceThresholds(_Strict):
    """A task above these (wall time, peak memory) raises a resource alert."""

    max_task_wall_s: Annotated[float, Field(gt=0)] = 1800.0
    max_task_peak_mb: Annotated[float, Field(gt=0)] = 8000.0
    max_run_wall_s: Annotated[float, Field(gt=0)] = 3600.0  # the run's timeout alert


class MonitoringConfig(_Strict):
    """The monitoring pipeline: drift and decay checks, alerts, automatic retraining."""

    every: str = "1h"  # `mlpipe monitor --every` default interval
    # the Slack-compatible incoming webhook's URL comes only from this environment variable (on a
    # cluster: the Secret runtime.alerts_secret, key webhook_url, mounted as it); its path is a
    # secret, so the config holds no `webhook_url`
    webhook_url_env: str = "MLPIPE_ALERT_WEBHOOK"
    webhook_retries: Annotated[int, Field(ge=0, le=10)] = 3
    webhook_backoff_s: Annotated[float, Field(ge=0)] = 0.5  # first wait; doubles each retry
    webhook_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    decay_tolerance: DecayTolerance = DecayTolerance()
    decision: DecisionPolicy = DecisionPolicy()
    resources: ResourceThresholds = ResourceThresholds()
    retrain_window_years: Annotated[int, Field(ge=1)] | None = None  # null: keep the start

    @field_validator("every")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_inline_webhook(cls, data: Any) -> Any:
        """A webhook URL in the config is refused (a Slack URL's path is its secret, and the
        config is committed, logged as MLflow params and compiled into specs); `null` is
        dropped, so older configs still load."""
        if not isinstance(data, dict) or "webhook_url" not in data:
            return data
        if data["webhook_url"] is not None:
            raise ValueError(
                "monitoring.webhook_url is not accepted in the config (the URL's path is a "
                "secret): put the URL in the environment variable that "
                "monitoring.webhook_url_env names (default MLPIPE_ALERT_WEBHOOK; on a cluster "
                "the Secret runtime.alerts_secret, key webhook_url)"
            )
        return {k: v for k, v in data.items() if k != "webhook_url"}


class PipelineConfig(_Strict):
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


# ---------------------------------------------------------------- error messages
#
# pydantic reports a value that fits no member of a union once per member, each under a label
# ('list[int]', 'function-after[_ordered(), IntRange]', ...): 2-30 lines for one mistake. The
# formatter walks the model's annotations beside each error's location, so it knows where a union
# is, drops those labels and says in one line what was given and what the key allows.

_TYPE_ERRORS = {"literal_error", "enum", "is_instance_of", "int_from_float", "none_required"}
_NOUNS = {int: "integer", float: "number", str: "string", bool: "true/false value"}


def _unwrap(tp: Any) -> Any:
    """`tp` without Annotated[...] metadata and without `| None`."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, UnionType) and len(_members(tp)) == 1:
            tp = _members(tp)[0]
        else:
            return tp


def _members(tp: Any) -> list[Any]:
    return [a for a in get_args(tp) if a is not type(None)]


def _union(tp: Any) -> list[Any] | None:
    """The alternatives when `tp` is a union pydantic labels branch by branch (2+ non-null)."""
    tp = _unwrap(tp)
    return _members(tp) if get_origin(tp) in (Union, UnionType) else None


def _step(tp: Any, item: str | int) -> Any:
    """The annotation at `item` inside `tp` (a model's key, a mapping's value, a list's item)."""
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return next(
            (f.annotation for name, f in tp.model_fields.items() if item in (name, f.alias)),
            None,
        )
    args = get_args(tp)
    if get_origin(tp) is dict and len(args) == 2:
        return args[1]
    if get_origin(tp) in (list, set, frozenset) and args:
        return args[0]
    if get_origin(tp) is tuple and args:
        if args[-1] is Ellipsis or not isinstance(item, int):
            return args[0]
        return args[item] if item < len(args) else None
    return None


def _keys(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def _either(words: list[str]) -> str:
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"


def _describe(tp: Any) -> str:
    """What a key of annotation `tp` accepts, in words: 'an integer', "'int' or 'float'"."""
    tp = _unwrap(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return _either([repr(a) for a in args])
    if origin in (Union, UnionType):
        return _either([_describe(a) for a in _members(tp)])
    if tp in _NOUNS:
        noun = _NOUNS[tp]
        return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
    if origin in (list, set, frozenset, tuple):
        inner = _unwrap(args[0]) if args else None
        count = f"{len(args)} " if origin is tuple and Ellipsis not in args else ""
        return f"a list of {count}{_NOUNS[inner]}s" if inner in _NOUNS else "a list"
    if origin is dict:
        return "a mapping"
    if keys := _keys(tp):
        return f"a mapping with keys {', '.join(keys)}"
    return getattr(tp, "__name__", str(tp))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_type_error(err: Any) -> bool:
    kind = err["type"]
    return kind in _TYPE_ERRORS or kind.endswith(("_type", "_parsing"))


def _problem(path: str, err: Any, tp: Any, parent: Any) -> str:
    """One line for one error that is not a failed union."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        allowed = _keys(parent)
        return f"{path}: unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return f"{path}: missing" + (f" (required: {_describe(tp)})" if tp is not None else "")
    if kind in ("value_error", "assertion_error"):  # the project's validators word these
        return f"{path}: {msg.removeprefix('Value error, ').removeprefix('Assertion failed, ')}"
    given = f"got {_shown(err.get('input'))}"
    if _is_type_error(err) and tp is not None:
        return f"{path}: {given}; allowed: {_describe(tp)}"
    if msg.startswith("Input should be "):
        return f"{path}: {given}; allowed: {msg.removeprefix('Input should be ')}"
    return f"{path}: {given}; {msg[:1].lower()}{msg[1:]}"


def _problems(tp: Any, loc: tuple, errors: list[tuple[tuple, Any]], parent: Any = None) -> list:
    """One line per problem among `errors` (each with its location relative to `loc`)."""
    path = ".".join(str(p) for p in loc) or "(top)"
    members = _union(tp)
    if members is not None and errors and all(rel for rel, _ in errors):
        branches: dict[Any, list[tuple[tuple, Any]]] = {}
        for rel, err in errors:  # the first item is the branch's label, branches in order
            branches.setdefault(rel[0], []).append((rel[1:], err))
        typed = dict(zip(branches, members, strict=False)) if len(branches) == len(members) else {}
        # a branch whose every error is a type error is a shape the value does not have
        fitting = [b for b, errs in branches.items() if not all(_is_type_error(e) for _, e in errs)]
        if len(fitting) == 1:
            return _problems(typed.get(fitting[0]), loc, branches[fitting[0]], parent)
        given = next((e["input"] for rel, e in errors if len(rel) == 1), None)
        shown = f"got {_shown(given)}; " if given is not None else ""
        return [f"{path}: {shown}allowed: {_describe(tp)}"]
    out = [_problem(path, err, tp, parent) for rel, err in errors if not rel]
    nested: dict[Any, list[tuple[tuple, Any]]] = {}
    for rel, err in errors:
        if rel:
            nested.setdefault(rel[0], []).append((rel[1:], err))
    for item, errs in nested.items():
        out += _problems(_step(tp, item), (*loc, item), errs, tp)
    return out


def describe_errors(model: type[BaseModel], exc: ValidationError) -> list[str]:
    """`exc` (from validating `model`) as one line per problem: the key's dotted path, what was
    given and what is allowed."""
    return _problems(model, (), [(tuple(e["loc"]), e) for e in exc.errors()])


def _format_errors(path: Path, model: type[BaseModel], exc: ValidationError) -> str:
    return "\n".join(f"{path}: {line}" for line in describe_errors(model, exc))


def _validate(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, model, exc)) from None


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
    return _overridden(data, overrides, path)


def _overridden(data: dict[str, Any], overrides: dict[str, Any] | None, path: Path) -> Any:
    """The raw config `data` with `overrides` set in place, validated; a problem names where its
    value came from."""
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        lines = describe_errors(PipelineConfig, exc)
        raise ConfigError("\n".join(_blame(x, path, overrides) for x in lines)) from None


def _blame(problem: str, path: Path, overrides: dict[str, Any] | None) -> str:
    """`problem` ("key: what is wrong") prefixed with where the key's value came from: the
    `--set` flag that set it (or a key above or below it), else the config file."""
    key = problem.split(":", 1)[0]
    for dotted in overrides or {}:
        if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
            return f"--set {problem}"
    return f"{path}: {problem}"


def load_settings(
    config_path: str | Path = DEFAULT_PIPELINE_CONFIG,
    schema_path: str | Path = DEFAULT_DATA_SCHEMA,
    overrides: dict[str, Any] | None = None,
    profile: str | Path | None = None,
) -> Settings:
    pipeline = load_pipeline_config(config_path, overrides, profile)
    return _checked(pipeline, load_data_schema(schema_path), overrides, config_path, schema_path)


def override_settings(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """`settings` with dotted-key `overrides` (`model_training.seed`) applied, checked exactly as
    `load_settings` checks a config file and its `--set` flags (the same errors, an override's
    blamed on it): monitoring's retraining and simulate change a config only through here."""
    path = Path(settings.pipeline_path)
    pipeline = _overridden(settings.pipeline.model_dump(mode="json"), overrides, path)
    return _checked(pipeline, settings.schema_, overrides, path, settings.schema_path)


def _checked(
    pipeline: PipelineConfig,
    schema: DataSchema,
    overrides: dict[str, Any] | None,
    path: str | Path,
    schema_path: str | Path,
) -> Settings:
    """The checks across the config and the schema, then the Settings."""
    _check_feature_references(pipeline, schema, Path(path), overrides)
    _check_time_windows(pipeline, schema, Path(path), overrides)
    return Settings(
        pipeline=pipeline,
        schema=schema,
        pipeline_path=str(Path(path).resolve()),
        schema_path=str(Path(schema_path).resolve()),
    )


def _check_feature_references(
    pipeline: PipelineConfig,
    schema: DataSchema,
    path: Path,
    overrides: dict[str, Any] | None = None,
) -> None:
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
        raise ConfigError("\n".join(_blame(x, path, overrides) for x in problems))


def _check_time_windows(
    pipeline: PipelineConfig,
    schema: DataSchema,
    path: Path,
    overrides: dict[str, Any] | None = None,
) -> None:
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
        raise ConfigError("\n".join(_blame(x, path, overrides) for x in problems))


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {part} is not a mapping")
    node[leaf] = value
