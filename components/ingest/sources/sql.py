"""`sql` sources: a SQLAlchemy URL plus a query or a table, read in partitions of `batch_size`
rows; the watermark filter and the time window are pushed into the query."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from components.common.config import IngestionConfig
from components.ingest.sources import (
    AuthError,
    SourceError,
    TransientSourceError,
    read_secret,
    redact,
)


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


# what drivers (psycopg, MySQL, SQLite) say when the credentials are refused / the link failed
SQL_AUTH = 'authentication failed|access denied for user|no password supplied|role "|pg_hba.conf'
SQL_TRANSIENT = (
    "connection refused|could not connect|server closed the connection|terminating connection|"
    "connection timeout|timeout expired|connection is closed|consuming input failed|"
    "lost connection|could not receive data|the database system is|connection reset|"
    "network is unreachable|could not translate host name|name or service not known"
)


def classify_sql(exc: BaseException) -> str:
    text = str(exc).lower()
    if any(s in text for s in SQL_AUTH.split("|")):
        return "auth"
    if getattr(exc, "connection_invalidated", False) or any(
        s in text for s in SQL_TRANSIENT.split("|")
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
