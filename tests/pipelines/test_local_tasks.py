"""What the local runners share around kfp.local (pipelines/local_tasks.py): its set-up, the
environment the tasks inherit, and the per-task rows read from real task records (written by
components/common/recorder.py) and kfp.local cache entries."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.common import recorder
from components.common.recorder import RECORDS_ENV, record_task
from components.common.runtime_env import STATE_ENV
from components.common.tfdv_env import LOCAL_TFDV_PYTHON, TFDV_PYTHON_ENV
from pipelines.local_tasks import (
    STAGE_ORDER,
    cached_record,
    init_kfp_local,
    last_failure,
    task_environment,
    task_rows,
)

_INHERITED = (RECORDS_ENV, STATE_ENV, TFDV_PYTHON_ENV, "MLFLOW_TRACKING_URI", "PYTHONUNBUFFERED")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _INHERITED:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A records folder; a failed record marks this process failed (recorder._process): put
    back afterwards, and no run id, so no failure record goes to a state store."""
    monkeypatch.setitem(recorder._process, "failed", recorder._process["failed"])
    monkeypatch.delenv("MLPIPE_RUN_ID", raising=False)
    return tmp_path / "logs" / "tasks"


def _record(records: Path, task: str, at: float, error: str | None = None, rows: int = 0) -> None:
    """A real task record, as a stage writes it, started at `at` (epoch seconds)."""
    try:
        with record_task(task, str(records)) as rec:
            rec.started_at, rec.rows = at, rows
            if error:
                raise ValueError(error)
    except ValueError:
        pass


def _cache_entry(cache_root: Path, key: str, task: dict | None, **outputs: object) -> None:
    """A kfp.local cache entry (<cache root>/<key>.json): output name -> artifact dict."""
    cache_root.mkdir(parents=True, exist_ok=True)
    artifact = {"uri": "/x", "metadata": {"task": task} if task else {}}
    (cache_root / f"{key}.json").write_text(json.dumps({"result": artifact, **outputs}))


@pytest.fixture
def kfp_local_config() -> Iterator[object]:
    """kfp.local's settings (a process-wide singleton), put back afterwards."""
    from kfp.local import config

    before = config.LocalExecutionConfig.instance
    yield config.LocalExecutionConfig
    config.LocalExecutionConfig.instance = before


@pytest.mark.parametrize("use_cache", [True, False])
def test_kfp_local_runs_tasks_in_this_interpreter_under_the_outputs(
    tmp_path, kfp_local_config, use_cache
):
    from kfp import local

    cache_root = init_kfp_local(tmp_path / "out", use_cache)
    assert cache_root == tmp_path / "out" / "kfp" / ".kfp_cache"
    cfg = kfp_local_config.instance
    assert cfg.pipeline_root == str(tmp_path / "out" / "kfp")
    assert cfg.cache_root == str(cache_root)
    assert cfg.enable_caching is use_cache
    assert cfg.raise_on_error is True  # a failed task fails the run: its record says why
    assert isinstance(cfg.runner, local.SubprocessRunner) and cfg.runner.use_venv is False


def test_the_tasks_inherit_the_runs_folders_and_the_environment_comes_back(tmp_path, clean_env):
    out = tmp_path / "out"
    with task_environment(out, None) as env:
        assert {k: os.environ[k] for k in _INHERITED} == env
        assert env[RECORDS_ENV] == str(out / "logs" / "tasks")
        assert env[STATE_ENV] == str(out / "state")
        assert env[TFDV_PYTHON_ENV] == str(LOCAL_TFDV_PYTHON)
        assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{out / 'mlflow' / 'mlflow.db'}"
        assert env["PYTHONUNBUFFERED"] == "1"
    assert not set(_INHERITED) & set(os.environ)


def test_the_users_settings_win_and_come_back_after_a_failed_run(tmp_path, clean_env, monkeypatch):
    monkeypatch.setenv(STATE_ENV, "s3://bucket/state")
    monkeypatch.setenv(TFDV_PYTHON_ENV, "/opt/tfdv/python")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv(RECORDS_ENV, "/elsewhere")
    with pytest.raises(RuntimeError), task_environment(tmp_path, None) as env:
        assert env[STATE_ENV] == "s3://bucket/state"
        assert env[TFDV_PYTHON_ENV] == "/opt/tfdv/python"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert os.environ[RECORDS_ENV] == str(tmp_path / "logs" / "tasks")  # always the run's
        raise RuntimeError("task failed")
    assert os.environ[RECORDS_ENV] == "/elsewhere"
    assert os.environ[STATE_ENV] == "s3://bucket/state"
    assert "PYTHONUNBUFFERED" not in os.environ


def test_a_tfdv_interpreter_given_to_the_run_wins_over_the_environment(
    tmp_path, clean_env, monkeypatch
):
    monkeypatch.setenv(TFDV_PYTHON_ENV, "/opt/tfdv/python")
    with task_environment(tmp_path, "/given/python") as env:
        assert os.environ[TFDV_PYTHON_ENV] == env[TFDV_PYTHON_ENV] == "/given/python"
    assert os.environ[TFDV_PYTHON_ENV] == "/opt/tfdv/python"


def test_a_cached_tasks_record_comes_back_with_ints(tmp_path):
    """kfp.local's cache holds the metadata as protobuf numbers (doubles): 137911 -> 137911.0."""
    task = {
        "task": "ingest",
        "rows": 137911.0,
        "wall_s": 2.5,
        "details": {"window": {"start": 2015.0}},
    }
    (tmp_path / "abc123.json").write_text(json.dumps({"data": {"metadata": {"task": task}}}))
    rec = cached_record(tmp_path, "abc")
    assert rec is not None and f"{rec.rows:,}" == "137,911"
    assert rec.details["window"] == {"start": 2015}
    assert rec.wall_s == 2.5


def test_a_cache_entry_without_a_readable_record_gives_none(tmp_path):
    assert cached_record(tmp_path / "no-cache-yet", "aa") is None
    _cache_entry(tmp_path, "aa11", None, seed=42, name="x")  # parameters only: no metadata
    assert cached_record(tmp_path, "aa") is None
    (tmp_path / "bb22.json").write_text('{"result": ')  # cut short
    assert cached_record(tmp_path, "bb") is None
    assert cached_record(tmp_path, "cc") is None  # no entry with that key


def test_the_record_is_found_in_any_output_of_the_entry(tmp_path):
    _cache_entry(tmp_path, "aa11", None, model={"uri": "/m", "metadata": {"task": {"task": "t"}}})
    rec = cached_record(tmp_path, "aa1")
    assert rec is not None and rec.task == "t"
    assert cached_record(tmp_path, "aa12") is None  # a prefix, not any substring


def test_rows_are_the_tasks_that_ran_and_those_served_from_the_cache_in_pipeline_order(
    tmp_path, records
):
    cache_root = tmp_path / "kfp" / ".kfp_cache"
    _record(records, "ingest", at=90.0, rows=5)  # an earlier run's: not this one's
    _record(records, "zeta", at=101.0)
    _record(records, "train", at=102.0)
    _record(records, "tune-xgboost", at=103.0)
    _record(records, "gate", at=104.0, error="below the bar")
    # the record ingest wrote when it ran, as the cache entry holds it (numbers as doubles)
    _record(tmp_path / "earlier", "ingest", at=50.0, rows=137911)
    (written,) = (tmp_path / "earlier").glob("ingest-*.json")
    task = {**json.loads(written.read_text()), "rows": 137911.0, "wall_s": 12.5}
    _cache_entry(cache_root, "aa11", task)
    hits = [("ingest", "aa11"), ("features", "bb22")]  # features' entry is gone
    rows = task_rows(100.0, records, cache_root, hits)
    assert [(r["task"], r["cached"], r["status"]) for r in rows] == [
        ("ingest", True, "succeeded"),
        ("features", True, "running"),  # no record: its name and nothing made up
        ("tune-xgboost", False, "succeeded"),
        ("train", False, "succeeded"),
        ("gate", False, "failed"),
        ("zeta", False, "succeeded"),  # not a known stage: last
    ]
    assert rows[0]["rows"] == 137911 and rows[0]["wall_s"] == 12.5
    assert rows[1]["wall_s"] == 0.0 and rows[1]["rows"] is None
    # an unexpected error names where it happened
    assert rows[4]["error"].startswith("below the bar (") and rows[4]["error_type"] == "ValueError"


def test_no_records_and_no_cache_hits_give_no_rows(tmp_path):
    assert task_rows(0.0, tmp_path / "none", tmp_path / "cache", []) == []


def test_tasks_outside_the_stage_order_are_sorted_by_name_after_it(tmp_path, records):
    for i, task in enumerate(["b-task", "act", "a-task", "ingest"]):
        _record(records, task, at=200.0 + i)
    rows = task_rows(0.0, records, tmp_path / "cache", [])
    assert [r["task"] for r in rows] == ["ingest", "act", "a-task", "b-task"]
    assert STAGE_ORDER.index("commit") < STAGE_ORDER.index("load_batch")  # training, monitoring


def test_the_last_failure_of_this_run_is_the_one_reported(records):
    _record(records, "validate", at=90.0, error="an earlier run's failure")
    assert last_failure(100.0, records) is None
    _record(records, "ingest", at=101.0)
    _record(records, "features", at=102.0, error="first")
    _record(records, "train", at=103.0, error="second")
    _record(records, "evaluate", at=104.0)  # succeeded after it: not a failure
    failed = last_failure(100.0, records)
    assert failed is not None and (failed.task, failed.error[:6]) == ("train", "second")
    assert last_failure(103.5, records) is None


def test_an_unreadable_record_is_skipped(records):
    _record(records, "train", at=101.0, error="boom")
    (records / "features-partial.json").write_text('{"task": "feat')
    failed = last_failure(0.0, records)
    assert failed is not None and failed.task == "train"
    assert last_failure(0.0, records.parent / "no-records") is None
