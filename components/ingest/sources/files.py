"""`file` and `url` sources: local paths and globs, fsspec URLs (s3://, gs://, http(s)://; globs
on object stores); Parquet, CSV or JSON lines by suffix or `data_ingestion.format`."""

from __future__ import annotations

import glob
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from components.common.config import IngestionConfig
from components.common.delimited import delimiter_hint, one_column_message
from components.common.errors import DataError
from components.common.retry import RETRY_STATUSES
from components.ingest.sources import STAGE, AuthError, SourceError, TransientSourceError, redact

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
FORMATS |= {".ndjson": "jsonl", ".json": "jsonl"}
# connection failures of aiohttp (http, gcsfs) and botocore (s3fs) worth another attempt
TRANSIENT_NAMES = (
    "ClientConnectorError ServerDisconnectedError ClientPayloadError ClientOSError "
    "EndpointConnectionError ConnectionClosedError ReadTimeoutError ConnectTimeoutError "
    "TimeoutError ContentLengthError IncompleteRead"
)


def file_format(path: str, configured: str) -> str:
    if configured != "auto":
        return configured
    suffix = Path(urlsplit(path).path if "://" in path else path).suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        raise SourceError(
            path,
            f"unsupported file type {suffix!r} (expected one of {sorted(FORMATS)}, "
            "or set data_ingestion.format)",
        )
    return kind


def _streaming(kind: str) -> dict[str, Any]:
    """Scan options that keep a Parquet read near one batch in memory: by default the scanner
    decodes a row group's columns in parallel and buffers them (+400 MB at 10x the bundled data,
    whose replicated file is few large row groups)."""
    import pyarrow.dataset as ds

    if kind != "parquet":
        return {}
    options = ds.ParquetFragmentScanOptions(pre_buffer=False, use_buffered_stream=True)
    return {
        "fragment_scan_options": options,
        "batch_readahead": 0,
        "fragment_readahead": 0,
        "use_threads": False,
    }


def read_tables(
    arrow_fs: Any, path: str, kind: str, cfg: IngestionConfig, name: str
) -> Iterator[pa.Table]:
    """Tables of at most `batch_size` rows of one file, read by `pyarrow.dataset` from the pyarrow
    filesystem `arrow_fs` (local, or fsspec's through `FSSpecHandler`)."""
    import pyarrow.csv as pcsv
    import pyarrow.dataset as ds

    if arrow_fs.get_file_info(path).size == 0:
        raise SourceError(name, "the file is empty")
    if kind == "csv":
        options = pcsv.ParseOptions(delimiter=cfg.delimiter)
        fmt: Any = ds.CsvFileFormat(parse_options=options)
    else:
        fmt = "json" if kind == "jsonl" else kind
    try:
        data = ds.dataset(path, filesystem=arrow_fs, format=fmt)
        # a pandas index saved beside the data (e.g. `__index_level_0__`) is not data
        index = (data.schema.pandas_metadata or {}).get("index_columns", [])
        columns = [n for n in data.schema.names if n not in index]
        batches = data.to_batches(columns=columns, batch_size=cfg.batch_size, **_streaming(kind))
        for batch in batches:
            # one column of whole lines: the file uses another delimiter
            if kind == "csv" and batch.num_columns == 1 and (hint := _hint(arrow_fs, path, cfg)):
                raise SourceError(name, one_column_message(cfg.delimiter, hint))
            yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        # e.g. "Expected 1 columns, got 2": a one-column header, decimal commas in the rows
        hint = _hint(arrow_fs, path, cfg) if kind == "csv" else None
        raise SourceError(
            name, f"unreadable {kind} file: {exc}" + (f"; {hint}" if hint else "")
        ) from exc


def _hint(arrow_fs: Any, path: str, cfg: IngestionConfig) -> str | None:
    with arrow_fs.open_input_stream(path) as fh:
        return delimiter_hint(fh.read(1 << 16), cfg.delimiter)


def resolve_files(source: str) -> list[Path]:
    """The files a path or glob names, sorted; an error if there are none."""
    matches = sorted(glob.glob(source)) if glob.has_magic(source) else [source]
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        what = "no file matches" if glob.has_magic(source) else "file not found:"
        raise DataError(STAGE, f"{what} {source}", subject=source)
    return files


def iter_file(source: str, cfg: IngestionConfig) -> Iterator[pa.Table]:
    from pyarrow.fs import LocalFileSystem

    kinds = [(str(f), file_format(str(f), cfg.format)) for f in resolve_files(source)]
    for path, kind in kinds:  # every format checked before reading
        try:
            yield from read_tables(LocalFileSystem(), path, kind, cfg, path)
        except OSError as exc:
            raise SourceError(path, f"unreadable {kind} file: {exc}") from exc


# ---------------------------------------------------------------- url (fsspec)


def _fs(url: str, cfg: IngestionConfig):
    import fsspec

    options = dict(cfg.storage_options)
    s3 = url.startswith(("s3://", "s3a://"))
    if s3:
        # fail fast inside one attempt: the caller retries the whole read (URL_ATTEMPTS)
        config = {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 2}}
        options["config_kwargs"] = {**config, **options.get("config_kwargs", {})}
    fs, path = fsspec.core.url_to_fs(url, **options)
    if s3 and hasattr(fs, "retries"):
        fs.retries = 2  # s3fs's own retry loop (default 5, with growing sleeps)
    return fs, path


def classify_remote(exc: BaseException) -> str:
    """'auth' | 'missing' | 'transient' | 'other' for an exception from fsspec/aiohttp/botocore."""
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or "NoSuchKey" in text or "NoSuchBucket" in text:
        return "missing"
    if isinstance(exc, PermissionError) or any(
        code in text
        for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden")
    ):
        return "auth"
    status = getattr(exc, "status", None) or getattr(exc, "code", None)
    if status in (401, 403):
        return "auth"
    if isinstance(exc, ConnectionError | TimeoutError) or name in TRANSIENT_NAMES.split():
        return "transient"
    if status in RETRY_STATUSES:
        return "transient"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return classify_remote(cause)
    if isinstance(exc, OSError):
        return "transient"
    return "other"


def _remote_error(url: str, exc: BaseException, doing: str) -> SourceError:
    kind = classify_remote(exc)
    detail = f"{type(exc).__name__}: {exc}".strip()
    if kind == "missing":
        return SourceError(url, f"file not found ({detail})")
    if kind == "auth":
        return AuthError(url, f"access denied while {doing}: check the credentials ({detail})")
    if kind == "transient":
        return TransientSourceError(url, f"connection failed while {doing} ({detail})")
    return SourceError(url, f"failed while {doing} ({detail})")


def resolve_urls(source: str, cfg: IngestionConfig) -> tuple[Any, list[str]]:
    """The filesystem and the (sorted) objects a URL or URL glob names."""
    shown = redact(source)
    try:
        fs, path = _fs(source, cfg)
        if glob.has_magic(path) and not path.startswith(("http://", "https://")):
            paths = sorted(p for p in fs.glob(path) if not fs.isdir(p))
            if not paths:
                raise SourceError(shown, "no object matches")
            return fs, paths
        if not fs.exists(path) and not path.startswith(("http://", "https://")):
            raise SourceError(shown, "file not found")
        return fs, [path]
    except SourceError:
        raise
    except Exception as exc:  # every backend raises its own types
        raise _remote_error(shown, exc, "listing the source") from exc


def iter_url(source: str, cfg: IngestionConfig) -> Iterator[pa.Table]:
    from pyarrow.fs import FSSpecHandler, LocalFileSystem, PyFileSystem

    fs, paths = resolve_urls(source, cfg)
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    kinds = [(p, file_format(p, cfg.format)) for p in paths]
    for path, kind in kinds:
        shown = redact(path if "://" in path else f"{protocol}://{path}")
        try:
            if protocol not in ("http", "https"):
                yield from read_tables(PyFileSystem(FSSpecHandler(fs)), path, kind, cfg, shown)
                continue
            # pyarrow reads by ranges, which a plain HTTP server may not serve: a local copy
            with tempfile.TemporaryDirectory(prefix="mlpipe-ingest-") as tmp:
                fs.get_file(path, f"{tmp}/data")
                yield from read_tables(LocalFileSystem(), f"{tmp}/data", kind, cfg, shown)
        except SourceError:
            raise
        except Exception as exc:
            raise _remote_error(shown, exc, "reading") from exc


def url_digest(source: str, cfg: IngestionConfig) -> str:
    """A cheap digest of the named objects' identity (ETag / checksum, size, mtime)."""
    import hashlib
    import json

    fs, paths = resolve_urls(source, cfg)
    digest = hashlib.sha256()
    for path in paths:
        try:
            info = fs.info(path)
        except Exception as exc:
            raise _remote_error(redact(source), exc, "reading object metadata") from exc
        keep = {
            k: str(v)
            for k, v in info.items()
            if k.lower() in ("etag", "size", "last_modified", "lastmodified", "mtime", "md5hash")
            or k.lower().startswith("checksum")
        }
        digest.update(json.dumps([path, keep], sort_keys=True).encode())
    return digest.hexdigest()
