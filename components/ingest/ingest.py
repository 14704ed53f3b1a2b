"""Ingest: read the configured source in chunks, keep the window (and, for incremental loads, the
rows above the watermark), write one Dataset; never leave a half Dataset behind.

Source types (`data_ingestion.source_type`): `file`, `url`, `sql`, `api` — see sources/. Rows are
written chunk by chunk to a temporary Parquet file that is renamed into place only after every
chunk was read and the blocking checks passed. A failure worth retrying (a lost connection) restarts
the read from an empty file. The Dataset's metadata carries the dataset version (content digest),
the source, query, window and watermark; with a state store (`MLPIPE_STATE_DIR`) the version is
also catalogued (`mlpipe data list`) and a later `commit` advances the watermark.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from components.common import runtime_env, timekeys
from components.common.artifacts import atomic_path, sha256_file
from components.common.config import IngestionConfig
from components.common.errors import DataError, StageError
from components.common.retry import retrying
from components.ingest import checks as ingest_checks
from components.ingest.sources import SourceError, TransientSourceError, api, files, redact, sql
from components.ingest.state import StateStore, open_store
from components.ingest.writer import DatasetWriter, json_value

STAGE = "ingest"
URL_ATTEMPTS = 3
URL_BACKOFF_S = 1.0

__all__ = ["NoNewData", "SourceError", "run", "source_digest"]


class NoNewData(StageError):
    """An incremental load found no row above the watermark: nothing to do (not a failure)."""

    def __init__(self, message: str, subject: str | None = None) -> None:
        super().__init__(STAGE, message, subject)


# ---------------------------------------------------------------- identity


def _config(ingestion: dict[str, Any] | IngestionConfig) -> IngestionConfig:
    # re-validate: KFP passes dict parameters as JSON numbers (400 arrives as 400.0)
    if isinstance(ingestion, IngestionConfig):
        return ingestion
    return IngestionConfig.model_validate(ingestion)


def _location(cfg: IngestionConfig, source: str | None) -> str:
    """Where to read: the `source` parameter (a path or glob for `file`, a URL for `url`), else
    the configured one (a relative file path taken from the repository); sql and api read what
    their section says. In cluster mode a relative file path is refused: it would resolve inside
    the task's image, which holds no data."""
    if cfg.source_type not in ("file", "url"):
        return cfg.resolve_source()
    cluster = runtime_env.in_cluster()
    location = source or (cfg.source_url if cluster else cfg.resolve_source())
    if cfg.source_type == "file" and cluster and not os.path.isabs(location):
        raise DataError(
            STAGE,
            f"source {location!r} is a path relative to the repository, which does not exist in "
            "a cluster's task: read from an object store (source_type url, e.g. "
            "s3://bucket/data.parquet; `mlpipe compile|submit` use config/profiles/"
            "cluster.yaml) or an absolute path of a volume mounted into the pods",
            subject=location,
        )
    return location


def describe_query(cfg: IngestionConfig) -> str | None:
    if cfg.sql is not None:
        return cfg.sql.query or f"table {cfg.sql.table}"
    if cfg.api is not None:
        return json.dumps(
            {
                "params": cfg.api.params,
                "records": cfg.api.records_path,
                "pages": cfg.api.pagination,
            },
            sort_keys=True,
        )
    return None


def state_key(cfg: IngestionConfig, location: str) -> str:
    """The name of a source's watermark: the configured one, else a digest of its identity."""
    if cfg.incremental and cfg.incremental.state_key:
        return cfg.incremental.state_key
    identity = {
        "type": cfg.source_type,
        "source": redact(location),
        "query": describe_query(cfg),
        "watermark": cfg.incremental.watermark_column if cfg.incremental else None,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{cfg.source_type}-{digest[:16]}"


def source_digest(source: str, ingestion: dict[str, Any] | IngestionConfig | None = None) -> str:
    """The cache key of a run's data, computed by the CLI before the run.

    file: sha256 of every named file's content; url: a digest of the objects' ETag/size/mtime;
    a pinned version: the version; sql and api (live systems): a digest of the source's
    definition, prefixed `live:` — such an ingest has caching off (see `IngestionConfig.live`).
    """
    cfg = _config(ingestion) if ingestion is not None else IngestionConfig(source_url=source)
    if cfg.dataset_version:
        return f"version:{cfg.dataset_version}"
    location = _location(cfg, source)
    if cfg.source_type == "url":
        return files.url_digest(location, cfg)
    if cfg.source_type in ("sql", "api"):
        identity = json.dumps([cfg.source_type, redact(location), describe_query(cfg)])
        return "live:" + hashlib.sha256(identity.encode()).hexdigest()
    digest = hashlib.sha256()
    for file in files.resolve_files(location):
        digest.update(file.name.encode())
        with open(file, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- reading


def _batches(
    cfg: IngestionConfig,
    location: str,
    watermark: Any,
    stats: dict[str, Any],
    window: dict[str, int] | None,
    time_column: str | None,
) -> Iterator[pa.Table]:
    if cfg.source_type == "file":
        return files.iter_file(location, cfg)
    if cfg.source_type == "url":
        return files.iter_url(location, cfg)
    if cfg.source_type == "sql":
        return sql.iter_sql(cfg, watermark, window, time_column)  # pushed down
    return api.iter_api(cfg, watermark, stats)


def _pinned_batches(store: StateStore, entry: dict[str, Any], cfg: IngestionConfig):
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    name, path = f"dataset version {entry['version']}", entry["data"]
    try:
        yield from files.read_tables(
            PyFileSystem(FSSpecHandler(store.fs)), path, "parquet", cfg, name
        )
    except FileNotFoundError as exc:
        raise SourceError(name, f"its data is missing from {path}") from exc


def _attempts(cfg: IngestionConfig) -> tuple[int, float]:
    if cfg.source_type == "sql" and cfg.sql is not None:
        return cfg.sql.max_attempts, cfg.sql.backoff_s
    if cfg.source_type == "url":
        return URL_ATTEMPTS, URL_BACKOFF_S
    return 1, 0.0  # file: nothing transient; api: retries each request itself


# ---------------------------------------------------------------- run


def run(
    source: str,
    output_path: str,
    ingestion: dict[str, Any],
    time_column: str | None,
    digest: str = "",
    sleep=time.sleep,
    time_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read the source, keep the window (and rows above the watermark), write the Dataset.
    `time_spec` is the schema's `time` block: how the window's column is read (timekeys).

    Returns the Dataset's metadata. Raises `NoNewData` when an incremental load finds nothing new
    (`incremental.on_no_new_rows: stop`), a `DataError` for anything that makes the source unusable.
    """
    cfg = _config(ingestion)
    window = cfg.window.model_dump() if cfg.window else None
    location = _location(cfg, source)
    shown = redact(location)
    inc = cfg.incremental

    need = (
        "an incremental load"
        if inc
        else "a pinned dataset_version"
        if cfg.dataset_version
        else None
    )
    store = open_store(need)
    pinned = store.resolve_version(cfg.dataset_version) if cfg.dataset_version and store else None
    key = state_key(cfg, location) if inc else None
    committed = store.watermark(key) if (store and key) else None
    wm_from = committed["value"] if committed else (inc.initial if inc else None)

    attempts, first_wait = (1, 0.0) if pinned else _attempts(cfg)
    stats: dict[str, Any] = {}
    policy = retrying(attempts, first_wait, (TransientSourceError,), sleep)
    args = (cfg, output_path, location, window, time_column, wm_from, stats, pinned, store)
    try:
        writer = policy(_write, *args, time_spec)
    except TransientSourceError as exc:
        raise TransientSourceError(
            shown, f"{_detail(exc, shown)} (gave up after {attempts} attempts)"
        ) from exc

    meta = {
        "rows": writer.rows,
        "columns": writer.columns,
        "sha256": sha256_file(output_path),
        "format": "parquet",
        "content_sha256": writer.content_sha256,
        "version": writer.content_sha256[:12],
        "source": shown if not pinned else pinned.get("source", shown),
        "source_type": cfg.source_type if not pinned else pinned.get("source_type", "file"),
        "query": describe_query(cfg) if not pinned else pinned.get("query"),
        "source_digest": digest,
        "rows_read": writer.rows_read,
        "window": window,
        "pinned_version": pinned["version"] if pinned else None,
        "incremental": inc is not None,
        "read": {"chunks": writer.chunks, "attempts": policy.statistics["attempt_number"], **stats},
        **writer.check_result,
    }
    if inc:
        value, kind = json_value(writer.wm_max)
        meta["watermark"] = {
            "state_key": key,
            "column": inc.watermark_column,
            "committed": committed,  # the store's value when this batch was read (None: first)
            "from": wm_from,
            "to": {"value": value, "type": kind},
            "rows_null_watermark": writer.rows_null_watermark,
        }
    if store is not None and not pinned:
        entry = store.add_version(output_path, _catalogue_entry(meta))
        meta["catalogue"] = {"root": store.root, "status": entry["status"]}
    return meta


def _write(
    cfg: IngestionConfig,
    output_path: str,
    location: str,
    window: dict[str, int] | None,
    time_column: str | None,
    wm_from: Any,
    stats: dict[str, Any],
    pinned: dict[str, Any] | None,
    store: StateStore | None,
    time_spec: dict[str, Any] | None = None,
) -> DatasetWriter:
    """One full pass: every chunk into a temporary file, checks, then the rename."""
    stats.clear()  # a retried pass counts afresh
    inc = cfg.incremental
    shown = redact(location)
    with atomic_path(output_path, ".parquet") as tmp:
        writer = DatasetWriter(
            str(tmp),
            name=shown,
            time_column=time_column,
            window=window,
            time_spec=time_spec,
            watermark_column=inc.watermark_column if inc else None,
            watermark_from=wm_from,
            freshness_column=cfg.checks.freshness_column,
        )
        try:
            if pinned:
                assert store is not None
                chunks = _pinned_batches(store, pinned, cfg)
            else:
                # a timestamp window is not pushed down to SQL (the database's own time types
                # and zones would decide): the writer applies it
                pushed = None if timekeys.is_timestamp(time_spec) else window
                chunks = _batches(cfg, location, wm_from, stats, pushed, time_column)
            for table in chunks:
                writer.write(table)
        finally:
            writer.close()
        _check_rows(cfg, writer, shown, window, time_column, wm_from)
        result = ingest_checks.evaluate(cfg.checks, writer.rows, writer.fresh_max)
        blocking = [a for a in result["anomalies"] if a["severity"] == "blocking"]
        if blocking:
            raise DataError(
                STAGE,
                f"{shown}: " + "; ".join(a["message"] for a in blocking),
                subject=blocking[0]["subject"],
            )
        unfiltered = writer.rows == writer.rows_read
        if pinned and unfiltered and writer.content_sha256 != pinned["content_sha256"]:
            raise DataError(
                STAGE,
                f"dataset version {pinned['version']}: its stored data does not match its digest",
                subject=pinned["version"],
            )
        writer.check_result = result
    return writer


def _check_rows(cfg, writer: DatasetWriter, shown: str, window, time_column, wm_from) -> None:
    if writer.rows_read == 0:
        if cfg.incremental and cfg.source_type in ("sql", "api"):  # the filter ran at the source
            _nothing_new(cfg, shown, wm_from)
        raise DataError(STAGE, f"{shown}: no rows", subject=shown)
    if window and writer.rows_after_window == 0:
        raise DataError(
            STAGE,
            f"no rows with {time_column} in {window['start']}-{window['end']}",
            subject=time_column,
        )
    if writer.rows == 0 and cfg.incremental:
        _nothing_new(cfg, shown, wm_from)


def _nothing_new(cfg: IngestionConfig, shown: str, wm_from: Any) -> None:
    inc = cfg.incremental
    assert inc is not None
    since = "" if wm_from is None else f" above the watermark {inc.watermark_column} > {wm_from}"
    message = f"nothing new in {shown}: no rows{since}"
    if inc.on_no_new_rows == "fail":
        raise DataError(STAGE, message, subject=inc.watermark_column)
    raise NoNewData(message, subject=inc.watermark_column)


def _detail(exc: SourceError, shown: str) -> str:
    return str(exc).removeprefix(f"{shown}: ")


def _catalogue_entry(meta: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "version",
        "content_sha256",
        "sha256",
        "rows",
        "columns",
        "source",
        "source_type",
        "query",
        "window",
        "watermark",
        "checks",
        "anomalies",
    )
    return {k: meta.get(k) for k in keep}
