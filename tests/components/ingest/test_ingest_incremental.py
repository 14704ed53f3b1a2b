"""Incremental loads, the watermark commit, the dataset catalogue, pinning, freshness and
completeness checks, and the config's refusal of inline credentials (local files only)."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from components.common.artifacts import read_dataset
from components.common.config import IngestionConfig, load_pipeline_config
from components.common.errors import DataError, StageError
from components.common.runtime_env import STATE_ENV, RuntimeEnvError
from components.ingest.commit import commit
from components.ingest.ingest import NoNewData, run, source_digest
from components.ingest.state import StateError, StateStore


@pytest.fixture
def state(tmp_path, monkeypatch) -> StateStore:
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "state"))
    return StateStore(tmp_path / "state")


def incremental(src, column: str = "year", **extra) -> dict:
    return {
        "source_url": str(src),
        "batch_size": 700,
        "incremental": {"watermark_column": column, **extra},
    }


def load(
    tmp_path, cfg: dict, name: str, time_column: str | None = "year"
) -> tuple[dict, pd.DataFrame]:
    out = tmp_path / f"{name}.parquet"
    meta = run(cfg["source_url"], str(out), cfg, time_column)
    return meta, read_dataset(out)


def test_two_incremental_runs_over_growing_files_ingest_only_new_rows(tmp_path, full_data, state):
    """Acceptance 3 (files): run 1 loads 2015-2016, run 2 only the 2017 rows added since, a
    repeated run finds nothing new; the watermark moves on commit only."""
    src = tmp_path / "src.parquet"
    old = pd.concat([full_data[full_data.year == y].head(1000) for y in (2015, 2016)])
    old.to_parquet(src)
    cfg = incremental(src)
    meta, df = load(tmp_path, cfg, "r1")
    assert len(df) == 2000 and meta["watermark"]["to"] == {"value": 2016, "type": "int"}
    assert meta["watermark"]["committed"] is None and state.watermarks() == {}
    assert commit(meta) == {
        "committed": True,
        "state_key": meta["watermark"]["state_key"],
        "previous": None,
        "value": 2016,
        "type": "int",
    }
    assert commit(meta)["reason"] == "already committed"  # idempotent
    new = full_data[full_data.year == 2017].head(500)
    pd.concat([old, new]).to_parquet(src)
    meta2, df2 = load(tmp_path, cfg, "r2")
    assert len(df2) == 500 and set(df2.year) == {2017} and meta2["rows_read"] == 2500
    commit(meta2)
    with pytest.raises(
        NoNewData, match=r"nothing new in .*src.parquet: no rows above the watermark year > 2017"
    ):
        load(tmp_path, cfg, "r3")
    assert not (tmp_path / "r3.parquet").exists()
    (record,) = state.watermarks().values()
    assert record["value"] == 2017 and record["previous"] == 2016 and record["rows"] == 500


def test_uncommitted_batch_is_read_again_as_the_same_version(tmp_path, sample_data, state):
    src = tmp_path / "src.csv"
    sample_data.to_csv(src, index=False)
    cfg = incremental(src, column="id")
    first, _ = load(tmp_path, cfg, "a")
    again, _ = load(tmp_path, cfg, "b")  # the run failed after ingest: nothing was committed
    assert again["version"] == first["version"] and again["rows"] == first["rows"]
    (entry,) = state.entries()
    assert entry["ingest_count"] == 2 and entry["status"] == "ingested"
    commit(again)
    assert state.entries()[0]["status"] == "committed"


def test_commit_refuses_a_watermark_moved_by_another_run(tmp_path, sample_data, state):
    src = tmp_path / "src.parquet"
    sample_data[sample_data.year == 2015].to_parquet(src)
    cfg = incremental(src)
    a, _ = load(tmp_path, cfg, "a")
    b, _ = load(tmp_path, cfg, "b")  # read before a was committed
    sample_data.to_parquet(src)
    commit(a)
    c, _ = load(tmp_path, cfg, "c")
    commit(c)  # the watermark is now 2016
    with pytest.raises(StageError, match="moved from None to 2016 since this batch was read"):
        commit(b)


def test_initial_watermark_and_null_watermarks(tmp_path, sample_data, state):
    src = tmp_path / "src.parquet"
    data = sample_data.astype({"AGEP": "float64"})
    data.loc[:9, "AGEP"] = None
    data.to_parquet(src)
    meta, df = load(tmp_path, incremental(src, column="AGEP", initial=60), "x", time_column=None)
    assert (df.AGEP > 60).all() and len(df) == int((data.AGEP > 60).sum())
    assert meta["watermark"]["rows_null_watermark"] == 10


def test_incremental_needs_a_state_store(tmp_path, sample_data, monkeypatch):
    monkeypatch.delenv(STATE_ENV, raising=False)
    src = tmp_path / "s.parquet"
    sample_data.to_parquet(src)
    with pytest.raises(
        RuntimeEnvError, match=f"an incremental load needs a state store: set {STATE_ENV}"
    ):
        load(tmp_path, incremental(src), "x")


def test_on_no_new_rows_fail_is_a_data_error(tmp_path, sample_data, state):
    src = tmp_path / "s.parquet"
    sample_data.to_parquet(src)
    cfg = incremental(src, on_no_new_rows="fail", initial=2020)
    with pytest.raises(DataError, match="nothing new"):
        load(tmp_path, cfg, "x")


def test_catalogue_and_pinning_a_dataset_version(tmp_path, sample_data, state):
    src = tmp_path / "s.parquet"
    sample_data.to_parquet(src)
    base = {"source_url": str(src), "window": {"start": 2015, "end": 2016}}
    meta, df = load(tmp_path, base, "v1")
    sample_data.head(100).to_parquet(src)  # the source changes afterwards
    load(tmp_path, base, "v2")
    versions = [e["version"] for e in state.entries()]
    assert versions[0] == meta["version"] and len(versions) == 2
    pinned = {**base, "dataset_version": meta["version"][:8]}
    assert source_digest(str(src), pinned) == f"version:{meta['version'][:8]}"
    again, df_again = load(tmp_path, pinned, "p")
    pd.testing.assert_frame_equal(df_again, df)
    assert again["pinned_version"] == meta["version"] and again["version"] == meta["version"]
    with pytest.raises(StateError, match="'ffffffff' is not in the catalogue"):
        load(tmp_path, {**base, "dataset_version": "ffffffff"}, "q")
    os.remove(state.entries()[0]["data"])  # the stored copy is lost: the pin fails, named
    with pytest.raises(DataError, match=rf"dataset version {meta['version']}: its data is missing"):
        load(tmp_path, pinned, "gone")


def test_freshness_and_completeness_are_metrics_and_anomalies(tmp_path, sample_data, state):
    src = tmp_path / "s.parquet"
    now = pd.Timestamp.now(tz="UTC").floor("s")
    data = sample_data.head(300).assign(updated_at=now - pd.Timedelta(hours=50))
    data.to_parquet(src)
    checks = {
        "freshness_column": "updated_at",
        "max_age": "1d",
        "min_rows": 500,
        "max_rows": 10_000,
    }
    meta, _ = load(tmp_path, {"source_url": str(src), "checks": checks}, "w", time_column=None)
    assert meta["metrics"]["ingest_rows"] == 300
    assert 50 * 3600 <= meta["metrics"]["ingest_newest_age_s"] < 50 * 3600 + 120
    kinds = {a["check"]: a for a in meta["anomalies"]}
    assert (
        kinds["freshness"]["severity"] == "warning"
        and "stale data" in kinds["freshness"]["message"]
    )
    assert "incomplete data: 300 rows, expected 500-10000" in kinds["completeness"]["message"]
    assert meta["checks"]["freshness"]["passed"] is False
    blocking = {"source_url": str(src), "checks": {**checks, "blocking": True}}
    with pytest.raises(DataError, match="stale data.*; incomplete data"):
        load(tmp_path, blocking, "b", time_column=None)
    assert not (tmp_path / "b.parquet").exists()
    fine = {"source_url": str(src), "checks": {**checks, "max_age": "3d", "min_rows": 1}}
    meta, _ = load(tmp_path, fine, "ok", time_column=None)
    assert meta["anomalies"] == [] and meta["checks"]["completeness"]["passed"]


def test_jsonl_file_and_the_version_ignores_format_and_chunking(tmp_path, sample_data, state):
    (tmp_path / "d.jsonl").write_text(sample_data.to_json(orient="records", lines=True))
    sample_data.to_parquet(tmp_path / "d.parquet")
    a, _ = load(tmp_path, {"source_url": str(tmp_path / "d.jsonl"), "batch_size": 333}, "a")
    b, _ = load(tmp_path, {"source_url": str(tmp_path / "d.parquet"), "batch_size": 5000}, "b")
    assert a["version"] == b["version"] and a["sha256"] != "" and a["rows"] == len(sample_data)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {
                "source_type": "sql",
                "source_url": "postgresql://u:hunter2@db/x",
                "sql": {"table": "t"},
            },
            "the URL holds a password",
        ),
        (
            {"source_type": "api", "source_url": "https://api.example/v1?api_key=1"},
            "'api_key' looks like a credential",
        ),
        (
            {
                "source_type": "api",
                "source_url": "https://a/v1",
                "api": {"headers": {"Authorization": "Bearer x"}},
            },
            "look like credentials",
        ),
        (
            {"source_type": "url", "source_url": "s3://b/k", "storage_options": {"secret": "x"}},
            "look like credentials",
        ),
        ({"source_type": "sql", "source_url": "sqlite:///x.db"}, "needs a `sql` section"),
        (
            {
                "source_type": "sql",
                "source_url": "sqlite:///x.db",
                "sql": {"table": "t", "query": "select 1"},
            },
            "exactly one of",
        ),
        ({"checks": {"max_age": "3 days", "freshness_column": "t"}}, "not a duration"),
        (
            {"incremental": {"watermark_column": "id"}, "dataset_version": "abc"},
            "cannot be incremental",
        ),
    ],
)
def test_config_rejects_inline_credentials_and_inconsistent_sections(tmp_path, section, message):
    import yaml

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"data_ingestion": section}))
    with pytest.raises(ValueError, match=message) as err:
        load_pipeline_config(path)
    assert "hunter2" not in str(err.value)


def test_live_sources_are_not_cacheable():
    assert not IngestionConfig().live
    assert IngestionConfig(incremental={"watermark_column": "year"}).live
    assert IngestionConfig(source_type="api", source_url="http://127.0.0.1:1/x").live
    assert not IngestionConfig(dataset_version="abc").live
    digest = source_digest(
        "ignored", {"source_type": "sql", "source_url": "sqlite:///x.db", "sql": {"table": "t"}}
    )
    assert digest.startswith("live:")


def test_state_store_writes_are_atomic_json(tmp_path):
    store = StateStore(tmp_path / "st")
    store.set_watermark("k", {"value": 1, "type": "int", "committed_at": time.time()})
    assert store.watermark("k")["value"] == 1 and store.watermark("missing") is None
    assert [p.name for p in (tmp_path / "st" / "watermarks").iterdir()] == ["k.json"]


@pytest.mark.parametrize(
    "name",
    [
        "source_s3_csv",
        "source_postgres_incremental",
        "source_api_cursor",
        "source_files_incremental",
    ],
)
def test_example_source_configs_load(name):
    from components.common.config import REPO_ROOT

    cfg = load_pipeline_config(REPO_ROOT / "config" / "examples" / f"{name}.yaml").data_ingestion
    assert cfg.source_type in ("file", "url", "sql", "api")
    assert cfg.live == (cfg.incremental is not None or cfg.source_type in ("sql", "api"))


def test_mlpipe_data_list_show_and_watermarks(tmp_path, sample_data, state, capsys):
    from pipelines.cli import main

    src = tmp_path / "s.parquet"
    sample_data.to_parquet(src)
    meta, _ = load(tmp_path, incremental(src), "a")
    commit(meta)
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert meta["version"] in out and "committed" in out and "year all .. 2016" in out
    assert main(["data", "show", meta["version"][:6]]) == 0
    assert f'"content_sha256": "{meta["content_sha256"]}"' in capsys.readouterr().out
    assert main(["data", "watermarks"]) == 0
    assert "year=2016" in capsys.readouterr().out
    key = meta["watermark"]["state_key"]
    assert main(["data", "reset-watermark", key]) == 0
    assert state.watermarks() == {}
    assert main(["data", "show", "zzzz"]) == 1


def _through_kfp(value):
    """What KFP hands a task back: every number a double (protobuf Struct), 2016 -> 2016.0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, dict, list)):
        return value
    if isinstance(value, dict):
        return {k: _through_kfp(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_through_kfp(v) for v in value]
    return float(value)


def test_a_watermark_and_a_window_that_went_through_kfp_print_as_ints(tmp_path, full_data, state):
    src = tmp_path / "src.parquet"
    full_data[full_data.year == 2015].head(300).to_parquet(src)
    cfg = incremental(src, column="id")
    meta, df = load(tmp_path, cfg, "r1")
    last = int(df.id.max())
    assert commit(_through_kfp(meta))["value"] == last
    (record,) = state.watermarks().values()
    assert record["value"] == last and isinstance(record["value"], int)
    with pytest.raises(NoNewData, match=rf"above the watermark id > {last}$"):
        load(tmp_path, cfg, "r2")
    windowed = _through_kfp({"source_url": str(src), "window": {"start": 2016, "end": 2016}})
    with pytest.raises(DataError, match=r"no rows with year in 2016-2016$"):
        run(str(src), str(tmp_path / "w.parquet"), windowed, "year")


def test_catalogue_keeps_every_source_a_version_was_read_from(tmp_path, sample_data, state, capsys):
    """Issue 18 item 6: a version first read from the bundled file, then the same rows from an
    incremental load of another file: the entry and `mlpipe data list` name both, first first."""
    from pipelines.cli import main

    bundled, landed = tmp_path / "bundled.parquet", tmp_path / "landed.csv"
    sample_data.to_parquet(bundled)
    sample_data.to_csv(landed, index=False)
    first, _ = load(tmp_path, {"source_url": str(bundled)}, "a")
    again, _ = load(tmp_path, incremental(landed), "b")
    assert again["version"] == first["version"]
    (entry,) = state.entries()
    assert entry["sources"] == [str(bundled), str(landed)] and entry["source"] == str(bundled)
    load(tmp_path, {"source_url": str(bundled)}, "c")  # a source read again is listed once
    assert state.entries()[0]["sources"] == [str(bundled), str(landed)]
    assert main(["data", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if first["version"] in line)
    assert row.endswith(f"{bundled}, {landed}")
