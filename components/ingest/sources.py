"""Readers for each `data_ingestion.source_type`: each yields pyarrow Tables of about `batch_size`
rows, so memory stays bounded whatever the source's size.

- `file`: local paths and globs (Parquet, CSV, JSON lines);
- `url`: fsspec URLs (s3://, gs://, http(s)://; globs on object stores), same formats;
- `sql`: a SQLAlchemy URL plus a query or a table; the password from the environment or a mounted
  Secret file; the watermark filter is pushed into the query;
- `api`: a REST endpoint answering JSON, page or cursor pagination, an auth header from the
  environment, retries with exponential backoff on 429/5xx and lost connections, timeouts.

Every error names the source (credentials redacted). `TransientSourceError` marks a failure worth
retrying the whole read (a lost connection, an unreachable host); the caller restarts from an empty
temporary file, so a retry never duplicates rows.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from components.common.config import IngestionConfig
from components.common.delimited import delimiter_hint, one_column_message
from components.common.errors import DataError
from components.common.retry import RETRY_STATUSES, retrying

STAGE = "ingest"
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
FORMATS |= {".ndjson": "jsonl", ".json": "jsonl"}


class SourceError(DataError):
    """The source could not be read: the message names it (without credentials)."""

    def __init__(self, source: str, message: str, subject: str | None = None) -> None:
        super().__init__(STAGE, f"{source}: {message}", subject=subject or source)


class TransientSourceError(SourceError):
    """A failure a later attempt may not meet (lost connection, host unreachable, timeout)."""


class AuthError(SourceError):
    """The source refused our credentials (never retried)."""


# ---------------------------------------------------------------- naming and secrets


def redact(url: str) -> str:
    """`url` without a password or query string: safe for messages, metadata and MLflow."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            netloc = f"{user.split(':', 1)[0]}:***@{host}"
    return f"{scheme}://{netloc}{slash}{path}"


def read_secret(env: str | None, file: str | None, what: str, source: str) -> str | None:
    """A credential from an environment variable or a mounted Secret file (trailing newline off)."""
    if env:
        value = os.environ.get(env)
        if not value:
            raise AuthError(source, f"{what}: environment variable {env} is not set", subject=env)
        return value
    if file:
        try:
            return Path(file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise AuthError(
                source, f"{what}: cannot read secret file {file}: {exc.strerror}", subject=file
            ) from exc
    return None


# ---------------------------------------------------------------- formats (file and url)


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


# ---------------------------------------------------------------- sql


def sql_url(cfg: IngestionConfig) -> str:
    """The connection URL with the password from the environment or the Secret file."""
    from sqlalchemy.engine import make_url

    sql = cfg.sql
    assert sql is not None
    shown = redact(cfg.source_url)
    if sql.url_env:
        value = os.environ.get(sql.url_env)
        if not value:
            raise AuthError(shown, f"environment variable {sql.url_env} (the URL) is not set")
        return value
    url = make_url(cfg.source_url)
    password = read_secret(sql.password_env, sql.password_file, "database password", shown)
    if password is not None:
        url = url.set(password=password)
    return url.render_as_string(hide_password=False)


def _quote_name(engine: Any, name: str) -> str:
    prep = engine.dialect.identifier_preparer
    return ".".join(prep.quote(part) for part in name.split("."))


def sql_statement(
    cfg: IngestionConfig,
    engine: Any,
    watermark: Any,
    window: dict[str, int] | None = None,
    time_column: str | None = None,
) -> tuple[str, dict]:
    """The SELECT to run: the query or table, with the watermark filter and the time window
    pushed down (the database reads and sends only those rows; the writer still applies both,
    which then removes nothing)."""
    sql = cfg.sql
    assert sql is not None
    base = (
        sql.query.strip().rstrip(";")
        if sql.query
        else f"SELECT * FROM {_quote_name(engine, sql.table)}"
    )
    where: list[str] = []
    params: dict[str, Any] = {}
    if window and time_column:
        time = _quote_name(engine, time_column)
        where.append(f"{time} >= :window_start AND {time} <= :window_end")
        params.update(window_start=window["start"], window_end=window["end"])
    order = ""
    if cfg.incremental is not None:
        column = _quote_name(engine, cfg.incremental.watermark_column)
        if watermark is None:
            where.append(f"{column} IS NOT NULL")
        else:
            where.append(f"{column} > :watermark")
            params["watermark"] = watermark
        order = f" ORDER BY {column}"
    if not where:
        return base, {}
    if sql.query:
        base = f"SELECT * FROM ({base}) AS mlpipe_source"
    return f"{base} WHERE {' AND '.join(where)}{order}", params


def classify_sql(exc: BaseException) -> str:
    text = str(exc).lower()
    if any(
        s in text
        for s in (
            "password authentication failed",
            "authentication failed",
            "access denied for user",
            "no password supplied",
            'role "',
            "pg_hba.conf",
        )
    ):
        return "auth"
    if getattr(exc, "connection_invalidated", False) or any(
        s in text
        for s in (
            "connection refused",
            "could not connect",
            "server closed the connection",
            "terminating connection",
            "connection timeout",
            "timeout expired",
            "connection is closed",
            "consuming input failed",
            "lost connection",
            "could not receive data",
            "the database system is",
            "connection reset",
            "network is unreachable",
            "could not translate host name",
            "name or service not known",
        )
    ):
        return "transient"
    return "other"


def _sql_error(shown: str, exc: BaseException, doing: str) -> SourceError:
    kind = classify_sql(exc)
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if kind == "auth":
        return AuthError(shown, f"authentication failed while {doing}: {detail}")
    if kind == "transient":
        return TransientSourceError(shown, f"connection failed while {doing}: {detail}")
    return SourceError(shown, f"query failed while {doing}: {detail}")


def iter_sql(
    cfg: IngestionConfig,
    watermark: Any,
    window: dict[str, int] | None = None,
    time_column: str | None = None,
) -> Iterator[pa.Table]:
    import sqlalchemy as sa
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    sql = cfg.sql
    assert sql is not None
    shown = redact(cfg.source_url)
    url = sql_url(cfg)
    connect_args: dict[str, Any] = {}
    backend = sa.engine.make_url(url).get_backend_name()
    if backend in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = max(1, int(sql.connect_timeout_s))
    try:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise SourceError(shown, f"cannot use this database URL: {exc}") from exc
    doing = "connecting"
    try:
        with engine.connect() as conn:
            doing = "running the query"
            text, params = sql_statement(cfg, engine, watermark, window, time_column)
            conn = conn.execution_options(stream_results=True, max_row_buffer=cfg.batch_size)
            result = conn.execute(sa.text(text), params)
            names = list(result.keys())
            doing = "reading rows"
            empty = True
            for rows in result.partitions(cfg.batch_size):
                empty = False
                yield rows_to_table(rows, names, shown)
            if empty:
                yield pa.table({n: pa.array([], pa.null()) for n in names})
    except (DBAPIError, SQLAlchemyError) as exc:
        raise _sql_error(shown, exc, doing) from exc
    finally:
        engine.dispose()


def rows_to_table(rows: list[Any], names: list[str], shown: str) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for name, values in zip(names, columns, strict=True):
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SourceError(shown, f"column {name!r}: values of mixed types ({exc})") from exc
    return pa.Table.from_arrays(arrays, names=names)


# ---------------------------------------------------------------- api


def _dig(obj: Any, dotted: str) -> Any:
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(obj, dict) or part not in obj:
            raise KeyError(dotted)
        obj = obj[part]
    return obj


class ApiReader:
    """Pages of a REST JSON endpoint, each request retried with backoff when worth it."""

    def __init__(self, cfg: IngestionConfig, watermark: Any, sleep=time.sleep) -> None:
        import requests

        assert cfg.api is not None
        self.cfg, self.api, self.sleep = cfg, cfg.api, sleep
        self.url = cfg.source_url
        self.shown = redact(cfg.source_url)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", **self.api.headers})
        secret = read_secret(self.api.auth_env, self.api.auth_file, "API credential", self.shown)
        if secret is not None:
            scheme = self.api.auth_scheme
            self.session.headers[self.api.auth_header] = f"{scheme} {secret}" if scheme else secret
        self.params: dict[str, Any] = dict(self.api.params)
        if self.api.watermark_param and watermark is not None:
            self.params[self.api.watermark_param] = watermark
        self.requests = 0
        self.retries = 0

    def get(self, params: dict[str, Any], page_no: int) -> Any:
        import requests

        api, where = self.api, f"page {page_no}"
        policy = retrying(
            api.max_retries + 1, api.backoff_s, (requests.RequestException,), self.sleep
        )
        before = self.requests
        try:
            resp = policy(self._request, params)
        except requests.RequestException as exc:
            kind = (
                "timed out"
                if isinstance(exc, requests.Timeout)
                else "connection failed"
                if isinstance(exc, requests.ConnectionError)
                else "connection lost while reading"  # e.g. ChunkedEncodingError
            )
            raise SourceError(
                self.shown,
                f"{where}: {kind} after {self.requests - before} attempts "
                f"({type(exc).__name__}: {_short(exc)})",
            ) from exc
        finally:
            self.retries += self.requests - before - 1
        status = resp.status_code
        if status in (401, 403):
            hint = (
                f" (credential from {api.auth_env or api.auth_file})"
                if api.auth_env or api.auth_file
                else " (no credential configured: set api.auth_env)"
            )
            raise AuthError(self.shown, f"{where}: authentication failed: HTTP {status}{hint}")
        if status in RETRY_STATUSES:
            raise SourceError(
                self.shown, f"{where}: HTTP {status} after {self.requests - before} attempts"
            )
        if status >= 400:
            raise SourceError(self.shown, f"{where}: HTTP {status}: {resp.text[:200]}")
        try:
            return resp.json() if resp.content else None
        except ValueError as exc:
            raise SourceError(
                self.shown, f"{where}: malformed response: not JSON ({resp.content[:80]!r})"
            ) from exc

    def _request(self, params: dict[str, Any]) -> Any:
        self.requests += 1
        # not streamed: the whole body is read here, so a cut connection raises (and is retried)
        return self.session.get(self.url, params=params, timeout=self.api.timeout_s)

    def records(self, page: Any, page_no: int) -> list[dict[str, Any]]:
        try:
            records = _dig(page, self.api.records_path)
        except KeyError:
            raise SourceError(
                self.shown,
                f"page {page_no}: malformed response: no {self.api.records_path!r} field",
            ) from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SourceError(
                self.shown,
                f"page {page_no}: malformed response: {self.api.records_path or 'the body'!r} "
                "is not a list of objects",
            )
        return records

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        api = self.api
        page_no, cursor = 0, None
        while True:
            page_no += 1
            params = dict(self.params)
            if api.pagination == "page":
                params[api.page_param] = api.first_page + page_no - 1
                if api.page_size_param:
                    params[api.page_size_param] = api.page_size
            elif api.pagination == "cursor" and cursor is not None:
                params[api.cursor_param] = cursor
            body = self.get(params, page_no)
            records = self.records(body, page_no)
            if records:
                yield records
            if api.max_pages and page_no >= api.max_pages:
                return
            if api.pagination == "none" or not records:
                return
            if api.pagination == "page":
                if api.page_size_param and len(records) < api.page_size:
                    return
            else:
                try:
                    cursor = _dig(body, api.next_cursor_path)
                except KeyError:
                    cursor = None
                if cursor in (None, ""):
                    return


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""


def iter_api(cfg: IngestionConfig, watermark: Any, stats: dict[str, Any]) -> Iterator[pa.Table]:
    reader = ApiReader(cfg, watermark)
    buffer: list[dict[str, Any]] = []
    pages = 0
    try:
        for records in reader.pages():
            pages += 1
            buffer.extend(records)
            if len(buffer) >= cfg.batch_size:
                yield _records_table(buffer, reader.shown, pages)
                buffer = []
        if buffer or pages == 0:
            yield _records_table(buffer, reader.shown, pages)
    finally:
        stats.update(pages=pages, requests=reader.requests, retries=reader.retries)


def _records_table(records: list[dict[str, Any]], shown: str, page: int) -> pa.Table:
    try:
        return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(shown, f"page {page}: malformed records: {exc}") from exc
