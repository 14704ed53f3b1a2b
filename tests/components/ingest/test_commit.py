"""Commit an ingested batch (`commit`): mark its catalogue version committed and advance its
watermark by compare-and-set. A real state store (a folder under tmp_path); batches described by
the metadata ingest writes, so no source is read here."""

from __future__ import annotations

import pytest

from components.common.errors import StageError
from components.common.runtime_env import CLUSTER_ENV, STATE_ENV, RuntimeEnvError
from components.ingest.commit import commit
from components.ingest.state import StateStore, WatermarkMoved

KEY = "acs-year"


@pytest.fixture
def store(tmp_path, monkeypatch) -> StateStore:
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "state"))
    return StateStore(tmp_path / "state")


def batch(read_at, to, sha: str = "a" * 64, **extra) -> dict:
    """The metadata of a batch read when the store's watermark was `read_at` (None: first)."""
    return {
        "version": f"sha256:{sha[:12]}",
        "content_sha256": sha,
        "rows": 700,
        "source": "file:///data/acs.parquet",
        "watermark": {
            "state_key": KEY,
            "column": "year",
            "committed": None if read_at is None else {"value": read_at, "type": "int"},
            "from": read_at,
            "to": {"value": to, "type": "int"},
        },
        **extra,
    }


def catalogued(store: StateStore, tmp_path, sha: str = "a" * 64) -> None:
    data = tmp_path / f"{sha[:4]}.parquet"
    data.write_bytes(b"rows")
    store.add_version(str(data), {"content_sha256": sha, "version": f"sha256:{sha[:12]}"})


def test_the_first_commit_sets_the_watermark_and_records_the_batch(store, tmp_path):
    catalogued(store, tmp_path)
    out = commit(batch(None, 2016))
    assert out == {
        "committed": True,
        "state_key": KEY,
        "previous": None,
        "value": 2016,
        "type": "int",
    }
    record = store.watermark(KEY)
    assert record["value"] == 2016 and record["previous"] is None
    assert record["column"] == "year" and record["rows"] == 700
    assert record["content_sha256"] == "a" * 64 and record["version"] == "sha256:aaaaaaaaaaaa"
    assert record["source"] == "file:///data/acs.parquet" and record["committed_at"] > 0
    assert store.entry("a" * 64)["status"] == "committed"


def test_a_second_batch_moves_the_watermark_on_from_where_it_was_read(store):
    commit(batch(None, 2016))
    out = commit(batch(2016, 2017, sha="b" * 64))
    assert out["committed"] and (out["previous"], out["value"]) == (2016, 2017)
    assert store.watermark(KEY)["value"] == 2017 and store.watermark(KEY)["previous"] == 2016


def test_committing_the_same_batch_again_is_a_no_op(store):
    commit(batch(None, 2016))
    before = store.watermark(KEY)
    out = commit(batch(None, 2016))
    assert out == {
        "committed": False,
        "reason": "already committed",
        "state_key": KEY,
        "value": 2016,
        "type": "int",
    }
    assert store.watermark(KEY) == before


def test_a_watermark_another_run_moved_is_not_moved_again(store):
    commit(batch(None, 2016))
    commit(batch(2016, 2017, sha="b" * 64))  # another run, read after ours
    with pytest.raises(StageError, match=r"watermark acs-year moved from None to 2017") as err:
        commit(batch(None, 2016, sha="c" * 64))  # ours: read before the first commit
    assert err.value.subject == KEY and "re-run" in str(err.value)
    assert store.watermark(KEY)["value"] == 2017


def test_a_watermark_reset_since_the_batch_was_read_is_refused_by_name(store):
    """The store lost the watermark this batch was read from (`mlpipe data reset`): a StageError
    saying so, not a crash."""
    commit(batch(None, 2016))
    assert store.reset_watermark(KEY)
    with pytest.raises(StageError, match=r"moved from 2016 to None"):
        commit(batch(2016, 2017, sha="b" * 64))
    assert store.watermark(KEY) is None


def test_a_transition_another_run_claimed_first_is_refused(store):
    """Both runs read 2016; the other one claimed 2016 -> 2018 first. Even when the stored value
    still reads 2016, the claim refuses ours (compare-and-set, not read-check-write)."""
    commit(batch(None, 2016))
    commit(batch(2016, 2018, sha="b" * 64))
    store.set_watermark(KEY, {"value": 2016})  # as our run saw it before the other wrote
    with pytest.raises(WatermarkMoved, match="moved from 2016 to 2018 by another run"):
        commit(batch(2016, 2017, sha="c" * 64))
    assert store.watermark(KEY) == {"value": 2016}


def test_kfp_doubles_are_committed_as_ints(store):
    """KFP hands the metadata back with every number a double."""
    meta = batch(None, 2016.0)
    meta["rows"] = 700.0
    out = commit(meta)
    assert out["value"] == 2016 and isinstance(out["value"], int)
    record = store.watermark(KEY)
    assert isinstance(record["value"], int) and isinstance(record["rows"], int)
    again = batch(2016.0, 2017.0, sha="b" * 64)
    assert commit(again)["previous"] == 2016


def test_a_full_load_only_marks_its_version_committed(store, tmp_path):
    catalogued(store, tmp_path)
    meta = batch(None, 2016)
    del meta["watermark"]
    out = commit(meta)
    assert out == {
        "committed": False,
        "reason": "not an incremental load",
        "version": "sha256:aaaaaaaaaaaa",
    }
    assert store.entry("a" * 64)["status"] == "committed" and store.watermarks() == {}


def test_a_version_missing_from_the_catalogue_is_not_created(store):
    commit({"content_sha256": "d" * 64, "version": "sha256:dddd"})
    assert store.entry("d" * 64) is None and store.entries() == []


def test_without_a_state_store_a_full_load_commits_nothing(monkeypatch):
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv(STATE_ENV, raising=False)
    assert commit({"content_sha256": "a" * 64}) == {
        "committed": False,
        "reason": "no state store",
    }


def test_an_incremental_batch_needs_a_state_store(monkeypatch):
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv(STATE_ENV, raising=False)
    with pytest.raises(RuntimeEnvError, match="committing an incremental load needs a state"):
        commit(batch(None, 2016))


def test_on_a_cluster_a_folder_is_no_state_store(store, monkeypatch):
    monkeypatch.setenv(CLUSTER_ENV, "true")
    with pytest.raises(RuntimeEnvError, match="must be shared storage"):
        commit(batch(None, 2016))
    assert store.watermark(KEY) is None
