"""`data_ingestion`: the source, its window and its checks."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from components.common.config_sections.base import (
    REPO_ROOT,
    StrictModel,
    check_no_inline_secret,
    looks_secret,
)


def _iso(value: Any) -> Any:
    """YAML reads an unquoted 2013-01-01 as a date: windows keep it as its ISO string."""
    return value.isoformat() if isinstance(value, date) else value


# A window bound: a number (a number time column) or an ISO date/datetime (a timestamp one);
# which one fits is checked against the schema's `time.kind` in `load_settings`.
Bound = Annotated[int | str, BeforeValidator(_iso)]


def check_window(start: Any, end: Any) -> None:
    from components.common import timekeys

    if isinstance(start, str) != isinstance(end, str):
        raise ValueError(f"start {start!r} and end {end!r}: give two numbers or two dates")
    kind = "timestamp" if isinstance(start, str) else "number"
    timekeys.check_window(start, end, {"kind": kind})


class Window(StrictModel):
    start: Bound
    end: Bound

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        check_window(self.start, self.end)
        return self


class SqlSource(StrictModel):
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


class ApiSource(StrictModel):
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
        bad = [k for k in value if looks_secret(k)]
        if bad:
            raise ValueError(f"{bad} look like credentials: use auth_env or auth_file instead")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> ApiSource:
        if self.auth_env and self.auth_file:
            raise ValueError("give at most one of `auth_env` and `auth_file`")
        return self


class IncrementalConfig(StrictModel):
    """Load only rows whose `watermark_column` is greater than the last committed value."""

    watermark_column: str
    initial: int | float | str | None = None  # first run: only rows above this (null: all)
    state_key: str | None = None  # name of the source's state (default: derived from the source)
    on_no_new_rows: Literal["stop", "fail"] = "stop"  # stop: exit 0 "nothing new"; fail: exit 1


class IngestChecks(StrictModel):
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


class IngestionConfig(StrictModel):
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
        check_no_inline_secret(value)
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

        bad = [k for k in keys(value) if looks_secret(k.rsplit(".", 1)[-1])]
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
