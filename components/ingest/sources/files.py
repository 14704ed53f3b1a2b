"""`file` and `url` sources: local paths and globs, fsspec URLs (s3://, gs://, http(s)://; globs
on object stores); Parquet, CSV or JSON lines by suffix or `data_ingestion.format`."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from components.common.config import IngestionConfig
from components.common.delimited import delimiter_hint, one_column_message
from components.common.errors import DataError
from components.ingest.sources import STAGE, AuthError, SourceError, TransientSourceError, redact

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
FORMATS |= {".ndjson": "jsonl", ".json": "jsonl"}


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


def _block_size(head: bytes, batch_size: int) -> int:
    """Bytes per block of a text reader so a block holds about `batch_size` rows."""
    lines = max(1, head.count(b"\n"))
    per_row = max(8, len(head) // lines)
    return int(min(256 << 20, max(64 << 10, per_row * batch_size)))


def iter_format(
    fh: Any, kind: str, batch_size: int, name: str, delimiter: str = ","
) -> Iterator[pa.Table]:
    """Tables of about `batch_size` rows from an open binary file `fh` of format `kind`
    (`delimiter`: a CSV file's field separator)."""
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    head = b""
    try:
        if kind == "parquet":
            pf = pq.ParquetFile(fh)
            # a pandas index saved beside the data (e.g. `__index_level_0__`) is not data
            index = (pf.schema_arrow.pandas_metadata or {}).get("index_columns", [])
            hidden = {c for c in index if isinstance(c, str)}
            columns = [n for n in pf.schema_arrow.names if n not in hidden] if hidden else None
            for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
                yield pa.Table.from_batches([batch])
            return
        head = fh.read(1 << 16)
        if not head:
            raise SourceError(name, "the file is empty")
        try:
            fh.seek(0)
            source = fh
        except (ValueError, OSError):  # a streaming HTTP body cannot seek back
            source = _Prepend(head, fh)
        block = _block_size(head, batch_size)
        if kind == "csv":
            reader = pcsv.open_csv(
                source,
                read_options=pcsv.ReadOptions(block_size=block),
                parse_options=pcsv.ParseOptions(delimiter=delimiter),
            )
        else:
            reader = pjson.open_json(source, read_options=pjson.ReadOptions(block_size=block))
        for batch in reader:
            # one column of whole lines: the file uses another delimiter
            if kind == "csv" and batch.num_columns == 1:
                hint = delimiter_hint(head, delimiter)
                if hint:
                    raise SourceError(name, one_column_message(delimiter, hint))
            yield pa.Table.from_batches([batch])
    except SourceError:
        raise
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        if kind == "csv" and "Empty CSV file" in str(exc):
            raise SourceError(name, "the file is empty") from exc
        # e.g. "Expected 1 columns, got 2": a one-column header, decimal commas in the rows
        hint = delimiter_hint(head, delimiter) if kind == "csv" else None
        raise SourceError(
            name, f"unreadable {kind} file: {exc}" + (f"; {hint}" if hint else "")
        ) from exc


class _Prepend:
    """A read-only stream: `head` then the rest of `fh` (for streams that cannot seek)."""

    def __init__(self, head: bytes, fh: Any) -> None:
        self.head, self.fh, self.closed = head, fh, False

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                out, self.head = self.head + self.fh.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            return out + (self.fh.read(n - len(out)) if len(out) < n else b"")
        return self.fh.read(n)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


# ---------------------------------------------------------------- file


def resolve_files(source: str) -> list[Path]:
    """The files a path or glob names, sorted; an error if there are none."""
    matches = sorted(glob.glob(source)) if glob.has_magic(source) else [source]
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        what = "no file matches" if glob.has_magic(source) else "file not found:"
        raise DataError(STAGE, f"{what} {source}", subject=source)
    return files


def iter_file(source: str, cfg: IngestionConfig) -> Iterator[pa.Table]:
    files = resolve_files(source)
    kinds = [(f, file_format(str(f), cfg.format)) for f in files]  # all checked before reading
    for path, kind in kinds:
        if path.stat().st_size == 0:
            raise SourceError(str(path), "the file is empty")
        try:
            with open(path, "rb") as fh:
                yield from iter_format(fh, kind, cfg.batch_size, str(path), cfg.delimiter)
        except OSError as exc:
            raise SourceError(str(path), f"unreadable {kind} file: {exc}") from exc


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
    transient_names = (
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientPayloadError",
        "ClientOSError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "TimeoutError",
        "ContentLengthError",
        "IncompleteRead",
    )
    if isinstance(exc, ConnectionError | TimeoutError) or name in transient_names:
        return "transient"
    if status is not None and (status == 429 or (isinstance(status, int) and status >= 500)):
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
    fs, paths = resolve_urls(source, cfg)
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    kinds = [(p, file_format(p, cfg.format)) for p in paths]
    for path, kind in kinds:
        shown = redact(path if "://" in path else f"{protocol}://{path}")
        try:
            # text formats stream (no range requests); Parquet needs random access
            options = (
                {"block_size": 0} if protocol in ("http", "https") and kind != "parquet" else {}
            )
            with fs.open(path, "rb", **options) as fh:
                yield from iter_format(fh, kind, cfg.batch_size, shown, cfg.delimiter)
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
