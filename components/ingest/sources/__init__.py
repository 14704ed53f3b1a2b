"""Readers for each `data_ingestion.source_type`, one module each: each yields pyarrow Tables of
about `batch_size` rows, so memory stays bounded whatever the source's size.

- `file` (files.py): local paths and globs (Parquet, CSV, JSON lines);
- `url` (files.py): fsspec URLs (s3://, gs://, http(s)://; globs on object stores), same formats;
- `sql` (sql.py): a SQLAlchemy URL plus a query or a table; the password from the environment or
  a mounted Secret file; the watermark filter is pushed into the query;
- `api` (api.py): a REST endpoint answering JSON, page or cursor pagination, an auth header from
  the environment, retries (common/retry.py) on 429/5xx and lost connections, timeouts.

Every error names the source (credentials redacted). `TransientSourceError` marks a failure worth
retrying the whole read (a lost connection, an unreachable host); the caller restarts from an empty
temporary file, so a retry never duplicates rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from components.common.errors import DataError

STAGE = "ingest"


class SourceError(DataError):
    """The source could not be read: the message names it (without credentials)."""

    def __init__(self, source: str, message: str, subject: str | None = None) -> None:
        super().__init__(STAGE, f"{source}: {message}", subject=subject or source)


class TransientSourceError(SourceError):
    """A failure a later attempt may not meet (lost connection, host unreachable, timeout)."""


class AuthError(SourceError):
    """The source refused our credentials (never retried)."""


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
