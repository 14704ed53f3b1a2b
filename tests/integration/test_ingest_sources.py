"""Each source type end to end by config alone, against real servers on 127.0.0.1, and the faults
of acceptance 2: unreachable host, auth failure, malformed page, a failure on page 3 of 5, a killed
connection mid-read — each a clear error naming the source, retried where sensible, no Dataset
written and the watermark not advanced.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3

import pandas as pd
import pytest

from components.common.artifacts import read_dataset
from components.common.config import ConfigError, load_pipeline_config
from components.common.errors import DataError
from components.ingest.commit import commit
from components.ingest.ingest import NoNewData, run
from components.ingest.sources import AuthError, SourceError, TransientSourceError
from components.ingest.state import StateStore
from tests.integration.conftest import closed_port, file_handler

pytestmark = pytest.mark.integration
NO_SLEEP = {"sleep": lambda s: None}


def ingest(tmp_path, ingestion: dict, time_column: str | None = "year", name: str = "out"):
    out = tmp_path / f"{name}.parquet"
    meta = run(ingestion["source_url"], str(out), ingestion, time_column, **NO_SLEEP)
    return meta, out


def frame_equal(left: pd.DataFrame, right: pd.DataFrame) -> None:
    key = ["id"]
    pd.testing.assert_frame_equal(
        left.sort_values(key).reset_index(drop=True),
        right[list(left.columns)].sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )


def records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def no_output(tmp_path, name: str = "out") -> bool:
    return not (tmp_path / f"{name}.parquet").exists() and not list(tmp_path.glob(".out*"))


# ---------------------------------------------------------------- url: S3 (moto) and HTTP


def test_s3_parquet_glob_csv_and_jsonl_by_config(tmp_path, s3_server, sample_data, state_dir):
    first, second = sample_data.iloc[:2500], sample_data.iloc[2500:]
    for i, part in enumerate((first, second)):
        buf = io.BytesIO()
        part.to_parquet(buf, index=False)
        s3_server.put("census-pq", f"acs/part-{i}.parquet", buf.getvalue())
    s3_server.put("census-pq", "acs/all.csv", sample_data.to_csv(index=False).encode())
    s3_server.put(
        "census-pq", "acs/all.jsonl", sample_data.to_json(orient="records", lines=True).encode()
    )
    options = {"endpoint_url": s3_server.endpoint}
    versions = {}
    for fmt, url in (
        ("parquet", "s3://census-pq/acs/part-*.parquet"),
        ("csv", "s3://census-pq/acs/all.csv"),
        ("jsonl", "s3://census-pq/acs/all.jsonl"),
    ):
        cfg = {
            "source_type": "url",
            "source_url": url,
            "storage_options": options,
            "batch_size": 700,
        }
        meta, out = ingest(tmp_path, cfg, name=fmt)
        frame_equal(read_dataset(out), sample_data)
        assert meta["source"] == url and meta["source_type"] == "url"
        assert meta["rows"] == len(sample_data) and meta["read"]["chunks"] >= 3
        versions[fmt] = meta["version"]
    # the version is a digest of the rows, not of the file: the same rows in the same order from
    # CSV and JSON lines are one version (the Parquet parts hold the same rows, in two files)
    assert versions["csv"] == versions["jsonl"] == versions["parquet"]
    listed = StateStore(state_dir).entries()
    assert len(listed) == 1 and listed[0]["ingest_count"] == 3


def test_s3_missing_object_unreachable_endpoint_and_auth_failure(tmp_path, s3_server, sample_data):
    s3_server.client.create_bucket(Bucket="census-f")
    base = {"source_type": "url", "storage_options": {"endpoint_url": s3_server.endpoint}}
    with pytest.raises(SourceError, match=r"s3://census-f/nothing\.csv: file not found"):
        ingest(tmp_path, {**base, "source_url": "s3://census-f/nothing.csv"})
    dead = {"endpoint_url": f"http://127.0.0.1:{closed_port()}"}
    with pytest.raises(TransientSourceError, match=r"s3://census-f/x\.csv: .*gave up after 3"):
        ingest(tmp_path, {**base, "storage_options": dead, "source_url": "s3://census-f/x.csv"})
    url = s3_server.put("census-f", "d.csv", sample_data.to_csv(index=False).encode())
    s3_server.enforce_auth(True)  # moto now checks credentials: ours are unknown to its IAM
    try:
        with pytest.raises(AuthError, match=r"s3://census-f/d\.csv: access denied"):
            ingest(
                tmp_path,
                {
                    **base,
                    "source_url": url,
                    "storage_options": {**base["storage_options"], "skip_instance_cache": True},
                },
            )
    finally:
        s3_server.enforce_auth(False)
    assert no_output(tmp_path)


def test_http_csv_and_connection_killed_mid_read(tmp_path, serve, sample_data):
    body = sample_data.to_csv(index=False).encode()
    files = {"/data/acs.csv": body, "/data/cut.csv": body}
    base_url = serve(file_handler(files, kill={"/data/cut.csv"}))
    meta, out = ingest(tmp_path, {"source_type": "url", "source_url": f"{base_url}/data/acs.csv"})
    frame_equal(read_dataset(out), sample_data)
    assert meta["source"] == f"{base_url}/data/acs.csv"
    out.unlink()
    cut = {"source_type": "url", "source_url": f"{base_url}/data/cut.csv"}
    with pytest.raises(SourceError, match=rf"{base_url}/data/cut.csv: .*gave up after 3 attempts"):
        ingest(tmp_path, cut)
    assert no_output(tmp_path)


# ---------------------------------------------------------------- api


def api_cfg(api, **extra) -> dict:
    section = {
        "records_path": "data",
        "pagination": "page",
        "page_size": 100,
        "auth_env": "MLPIPE_TEST_API_TOKEN",
        "backoff_s": 0.0,
        "timeout_s": 5,
        **extra,
    }
    return {"source_type": "api", "source_url": api.url, "api": section, "batch_size": 150}


@pytest.fixture
def api(api_server, sample_data, monkeypatch):
    api_server.records = records(sample_data.iloc[:450])  # 5 pages of 100 (the last holds 50)
    monkeypatch.setenv("MLPIPE_TEST_API_TOKEN", api_server.token)
    return api_server


def test_api_page_and_cursor_pagination_with_auth_from_env(tmp_path, api, sample_data):
    meta, out = ingest(tmp_path, api_cfg(api))
    frame_equal(read_dataset(out), sample_data.iloc[:450])
    assert meta["read"]["pages"] == 5 and meta["read"]["retries"] == 0
    assert all(r["auth"] == "Bearer s3cret" for r in api.requests)
    assert "s3cret" not in json.dumps(meta)
    cursor = api_cfg(
        api,
        pagination="cursor",
        records_path="items",
        next_cursor_path="next",
        params={"mode": "cursor", "limit": 100},
    )
    meta, out = ingest(tmp_path, cursor, name="cursor")
    frame_equal(read_dataset(out), sample_data.iloc[:450])
    assert meta["read"]["pages"] == 5


def test_api_auth_failure_is_not_retried(tmp_path, api, monkeypatch):
    monkeypatch.setenv("MLPIPE_TEST_API_TOKEN", "wrong")
    with pytest.raises(AuthError, match=rf"{api.url}: page 1: authentication failed: HTTP 401"):
        ingest(tmp_path, api_cfg(api))
    assert len(api.requests) == 1
    monkeypatch.delenv("MLPIPE_TEST_API_TOKEN")
    with pytest.raises(AuthError, match="MLPIPE_TEST_API_TOKEN is not set"):
        ingest(tmp_path, api_cfg(api))
    assert no_output(tmp_path)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("malformed", r"page 3: malformed response: not JSON"),
        ("wrong-shape", r"page 3: malformed response: no 'data' field"),
        ("500", r"page 3: HTTP 500 after 4 attempts"),
        ("kill", r"page 3: connection lost while reading after 4 attempts"),
    ],
)
def test_api_failure_on_page_3_of_5_writes_nothing(tmp_path, api, state_dir, fault, message):
    api.faults[3] = [fault]
    api.sticky.add(3)
    cfg = api_cfg(api, max_retries=3)
    cfg["incremental"] = {"watermark_column": "id"}
    with pytest.raises(SourceError, match=rf"{api.url}: {message}") as err:
        ingest(tmp_path, cfg)
    assert err.value.stage == "ingest"
    pages = [int(r["query"]["page"]) for r in api.requests]
    assert max(pages) == 3  # stopped at page 3: pages 4 and 5 never read
    retried = fault in ("500", "kill")
    assert pages.count(3) == (4 if retried else 1)
    assert no_output(tmp_path)
    assert StateStore(state_dir).watermarks() == {} and StateStore(state_dir).entries() == []


@pytest.mark.parametrize("fault", ["500", "429", "kill"])
def test_api_transient_failure_on_page_3_is_retried(tmp_path, api, sample_data, fault):
    api.faults[3] = [fault, fault]  # twice, then the page is served
    meta, out = ingest(tmp_path, api_cfg(api))
    frame_equal(read_dataset(out), sample_data.iloc[:450])
    assert meta["read"]["retries"] == 2 and meta["read"]["pages"] == 5


def test_api_unreachable_host(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPIPE_TEST_API_TOKEN", "x")
    url = f"http://127.0.0.1:{closed_port()}/v1/people"
    cfg = {
        "source_type": "api",
        "source_url": url,
        "api": {"auth_env": "MLPIPE_TEST_API_TOKEN", "max_retries": 2, "backoff_s": 0},
    }
    with pytest.raises(SourceError, match=rf"{url}: page 1: connection failed after 3 attempts"):
        ingest(tmp_path, cfg)
    assert no_output(tmp_path)


def test_api_incremental_pushes_the_watermark_to_the_server(tmp_path, api, full_data, state_dir):
    api.records = records(
        full_data[full_data.year <= 2016].sample(300, random_state=3).sort_values("year")
    )
    cfg = api_cfg(api, watermark_param="since")
    cfg["incremental"] = {"watermark_column": "year"}
    meta, _ = ingest(tmp_path, cfg)
    assert meta["watermark"]["to"]["value"] == 2016
    commit(meta)
    newer = full_data[full_data.year == 2017].sample(120, random_state=4)
    api.records += records(newer)
    api.requests.clear()
    meta, out = ingest(tmp_path, cfg, name="second")
    assert all(r["query"].get("since") == "2016" for r in api.requests)
    assert meta["rows"] == 120 and set(read_dataset(out).year) == {2017}


# ---------------------------------------------------------------- sql: SQLite


@pytest.fixture
def sqlite_people(tmp_path, sample_data) -> str:
    """The URL of a SQLite database whose table `people` holds the sample data."""
    db = tmp_path / "census.db"
    with sqlite3.connect(db) as conn:
        sample_data.to_sql("people", conn, index=False)
    return f"sqlite:///{db}"


def test_sqlite_table_and_query(tmp_path, sample_data, sqlite_people):
    cfg = {
        "source_type": "sql",
        "source_url": sqlite_people,
        "sql": {"table": "people"},
        "batch_size": 500,
    }
    meta, out = ingest(tmp_path, cfg)
    frame_equal(read_dataset(out), sample_data)
    assert meta["read"]["chunks"] == 8 and meta["query"] == "table people"
    query = {**cfg, "sql": {"query": "SELECT * FROM people WHERE SEX = 1"}}
    meta, out = ingest(tmp_path, query, name="q")
    assert meta["rows"] == int((sample_data.SEX == 1).sum())
    bad = {**cfg, "sql": {"query": "SELECT * FROM nowhere"}}
    with pytest.raises(
        SourceError, match=rf"{sqlite_people}: query failed while running the query: .*nowhere"
    ):
        ingest(tmp_path, bad, name="bad")


def test_sql_time_window_is_pushed_into_the_query(tmp_path, sample_data, sqlite_people):
    """The database sends only the window's rows (rows_read), for a table and a query alike."""
    cfg = {
        "source_type": "sql",
        "source_url": sqlite_people,
        "sql": {"table": "people"},
        "window": {"start": 2016, "end": 2017},
    }
    want = sample_data[sample_data.year.between(2016, 2017)]
    meta, out = ingest(tmp_path, cfg)
    assert meta["rows_read"] == meta["rows"] == len(want) < len(sample_data)
    frame_equal(read_dataset(out), want.reset_index(drop=True))
    query = {**cfg, "sql": {"query": "SELECT * FROM people WHERE SEX = 1"}}
    meta, _ = ingest(tmp_path, query, name="q")
    assert meta["rows_read"] == meta["rows"] == int((want.SEX == 1).sum())
    with pytest.raises(SourceError, match="query failed while running the query: .*no_such"):
        ingest(tmp_path, cfg, time_column="no_such", name="bad")


def test_sql_window_and_watermark_are_bound_parameters_of_one_query(
    tmp_path, sample_data, state_dir
):
    """Window and watermark together: one WHERE with placeholders (no value in the SQL text),
    the database sends only the rows both keep, and the Dataset is what filtering the whole
    table gives."""
    import sqlalchemy as sa

    db = tmp_path / "census.db"
    cut = int(sample_data[sample_data.year == 2015].id.median())  # 2016 ids are all above
    old, new = sample_data[sample_data.id <= cut], sample_data[sample_data.id > cut]
    with sqlite3.connect(db) as conn:
        old.to_sql("people", conn, index=False)
    cfg = {
        "source_type": "sql",
        "source_url": f"sqlite:///{db}",
        "sql": {"table": "people"},
        "window": {"start": 2015, "end": 2015},
        "incremental": {"watermark_column": "id"},
    }
    first, _ = ingest(tmp_path, cfg, name="r1")
    assert commit(first)["committed"]
    mark = first["watermark"]["to"]["value"]
    with sqlite3.connect(db) as conn:
        new.to_sql("people", conn, index=False, if_exists="append")
    executed: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        executed.append((statement, parameters))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", capture)
    try:
        meta, out = ingest(tmp_path, cfg, name="r2")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", capture)
    want = sample_data[(sample_data.year == 2015) & (sample_data.id > mark)]
    assert meta["rows_read"] == meta["rows"] == len(want) < len(new)
    frame_equal(read_dataset(out), want.reset_index(drop=True))
    [(statement, parameters)] = [e for e in executed if "people" in e[0]]
    assert statement.count("?") == 3 and "2015" not in statement and str(mark) not in statement
    assert list(parameters) == [2015, 2015, mark]


# ---------------------------------------------------------------- sql: PostgreSQL


@pytest.fixture
def pg_people(postgres, sample_data, monkeypatch):
    import sqlalchemy as sa

    engine = postgres.engine()
    sample_data.to_sql("people", engine, index=False, if_exists="replace", chunksize=2000)
    monkeypatch.setenv("MLPIPE_TEST_PG_PASSWORD", postgres.password)
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS people"))
    engine.dispose()


def pg_cfg(postgres, **sql) -> dict:
    section = {"table": "people", "password_env": "MLPIPE_TEST_PG_PASSWORD", "backoff_s": 0, **sql}
    return {"source_type": "sql", "source_url": postgres.url(), "sql": section, "batch_size": 1000}


def test_postgres_table_password_from_env_or_secret_file(
    tmp_path, postgres, pg_people, sample_data
):
    meta, out = ingest(tmp_path, pg_cfg(postgres))
    frame_equal(read_dataset(out), sample_data)
    assert meta["source"] == postgres.url() and postgres.password not in json.dumps(meta)
    secret = tmp_path / "secret" / "password"
    secret.parent.mkdir()
    secret.write_text(postgres.password + "\n")  # as a mounted Kubernetes Secret
    cfg = pg_cfg(
        postgres,
        password_env=None,
        password_file=str(secret),
        table=None,
        query="SELECT * FROM people WHERE year = 2016",
    )
    meta, out = ingest(tmp_path, cfg, name="secret")
    assert meta["rows"] == int((sample_data.year == 2016).sum())


def test_postgres_inline_password_is_rejected_by_the_config(tmp_path, postgres):
    url = f"postgresql+psycopg://mlpipe:{postgres.password}@127.0.0.1:{postgres.port}/postgres"
    path = tmp_path / "cfg.yaml"
    path.write_text(
        json.dumps(
            {
                "data_ingestion": {
                    "source_type": "sql",
                    "source_url": url,
                    "sql": {"table": "people"},
                }
            }
        )
    )
    with pytest.raises(
        ConfigError, match="data_ingestion.source_url: the URL holds a password"
    ) as err:
        load_pipeline_config(path)
    assert postgres.password not in str(err.value)


def test_postgres_wrong_password_and_unreachable_server(tmp_path, postgres, pg_people, monkeypatch):
    monkeypatch.setenv("MLPIPE_TEST_PG_PASSWORD", "not-the-password")
    with pytest.raises(
        AuthError, match=re.escape(postgres.url()) + r": authentication failed while connecting"
    ):
        ingest(tmp_path, pg_cfg(postgres))
    port = closed_port()
    dead = pg_cfg(postgres, connect_timeout_s=2)
    dead["source_url"] = f"postgresql+psycopg://mlpipe@127.0.0.1:{port}/postgres"
    with pytest.raises(
        TransientSourceError,
        match=rf"127.0.0.1:{port}/postgres: connection failed .*gave up after 3 attempts",
    ):
        ingest(tmp_path, dead)
    assert no_output(tmp_path)


def _kill_backends(engine) -> None:
    import sqlalchemy as sa

    with engine.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                "AND backend_type = 'client backend'"
            )
        )


def test_postgres_connection_killed_mid_read(tmp_path, postgres, pg_people, monkeypatch, state_dir):
    """The server ends our session after the first chunk: the read restarts from an empty file
    (no duplicated rows); killed on every attempt, the load fails and writes nothing."""
    from components.ingest import writer as writer_module

    original = writer_module.DatasetWriter.write
    kills = {"left": 1}

    def write_then_kill(self, table):
        original(self, table)
        if self.chunks == 1 and kills["left"] > 0:
            kills["left"] -= 1
            _kill_backends(pg_people)

    monkeypatch.setattr(writer_module.DatasetWriter, "write", write_then_kill)
    cfg = pg_cfg(postgres)
    cfg["incremental"] = {"watermark_column": "id"}
    meta, out = ingest(tmp_path, cfg)
    assert meta["read"]["attempts"] == 2 and meta["rows"] == 4000
    assert read_dataset(out).id.is_unique
    out.unlink()
    kills["left"] = 99
    with pytest.raises(
        TransientSourceError,
        match=re.escape(postgres.url())
        + r": connection failed while reading rows.*gave up after 3 attempts",
    ):
        ingest(tmp_path, cfg)
    assert no_output(tmp_path)
    assert StateStore(state_dir).watermarks() == {}


def test_postgres_incremental_over_growing_table(
    tmp_path, postgres, pg_people, full_data, state_dir
):
    """Acceptance 3: two incremental runs over growing data ingest only the new rows; a repeated
    run ingests nothing new; the watermark moves only on commit."""
    cfg = pg_cfg(postgres)
    cfg["incremental"] = {"watermark_column": "year"}
    meta, _ = ingest(tmp_path, cfg, time_column=None, name="r1")
    assert meta["rows"] == 4000 and meta["watermark"]["to"]["value"] == 2016
    # not committed yet: a re-run reads the same batch again, as the same version (idempotent)
    again, _ = ingest(tmp_path, cfg, time_column=None, name="r1b")
    assert again["version"] == meta["version"]
    assert commit(meta)["committed"] and not commit(again)["committed"]
    new = full_data[full_data.year == 2017].sample(700, random_state=1)
    new.to_sql("people", pg_people, index=False, if_exists="append")
    second, out = ingest(tmp_path, cfg, time_column=None, name="r2")
    assert second["rows"] == 700 and set(read_dataset(out).year) == {2017}
    commit(second)
    with pytest.raises(
        NoNewData, match=r"nothing new in .*: no rows above the watermark year > 2017"
    ):
        ingest(tmp_path, cfg, time_column=None, name="r3")
    cfg["incremental"]["on_no_new_rows"] = "fail"
    with pytest.raises(DataError, match="nothing new"):
        ingest(tmp_path, cfg, time_column=None, name="r3")
    marks = StateStore(state_dir).watermarks()
    assert [m["value"] for m in marks.values()] == [2017]
