"""The whole training pipeline (kfp.local) from a REST API and from a SQL database, by config alone.

The local runner hashes a live source by its identity (no file to hash), sets MLPIPE_STATE_DIR for
the tasks, and the commit task records the batch once the run has consumed it.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pandas as pd
import pytest

from components.common.config import load_settings
from components.ingest.state import StateStore
from pipelines.local_run import run_local
from tests.conftest import needs_tfdv

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]

# small tuning: the sources are under test here, not the models
FAST = {
    "model_training.algorithms": ["lightgbm"],
    "model_training.max_trials": 2,
    "model_training.params.lightgbm.n_estimators": 200,
}


@pytest.fixture
def local(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLPIPE_STATE_DIR", raising=False)

    def run(overrides: dict):
        settings = load_settings(overrides={**FAST, **overrides})
        with open(os.devnull, "w") as screen:
            return run_local(settings, tmp_path / "out", screen=screen)

    return run


def _sample(full_data: pd.DataFrame, years, n: int = 2500) -> pd.DataFrame:
    return pd.concat([full_data[full_data.year == y].sample(n, random_state=y) for y in years])


def _committed(tmp_path) -> list[dict]:
    return StateStore(tmp_path / "out" / "state").entries()


def test_pipeline_runs_from_an_api_source_by_config_alone(
    tmp_path, local, full_data, api_server, monkeypatch
):
    """A paginated REST API with a token from the environment feeds the whole pipeline."""
    data = _sample(full_data, (2015, 2016)).sort_values("id")
    api_server.records = json.loads(data.to_json(orient="records"))
    monkeypatch.setenv("MLPIPE_TEST_API_TOKEN", api_server.token)
    result = local(
        {
            "data_ingestion.source_type": "api",
            "data_ingestion.source_url": api_server.url,
            "data_ingestion.api": {"page_size": 500, "auth_env": "MLPIPE_TEST_API_TOKEN"},
        }
    )
    assert result.ok, result.error
    ingest_row = next(t for t in result.tasks if t["task"] == "ingest")
    assert ingest_row["rows"] == 5000 and not ingest_row["cached"]
    assert len(api_server.requests) == 11  # 10 full pages and an empty one
    assert result.metrics["roc_auc"] > 0.8
    (entry,) = _committed(tmp_path)
    assert entry["source"] == api_server.url and entry["rows"] == 5000
    assert entry["status"] == "committed"


def test_pipeline_runs_from_a_sql_table_by_config_alone(tmp_path, local, full_data):
    """A SQLite table feeds the whole pipeline; MLflow records the dataset with its version."""
    db = tmp_path / "census.db"
    with sqlite3.connect(db) as conn:
        _sample(full_data, (2015, 2016)).to_sql("acs", conn, index=False)
    result = local(
        {
            "data_ingestion.source_type": "sql",
            "data_ingestion.source_url": f"sqlite:///{db}",
            "data_ingestion.sql": {"table": "acs"},
        }
    )
    assert result.ok, result.error
    assert next(t for t in result.tasks if t["task"] == "ingest")["rows"] == 5000
    assert result.registration and result.registration["created"]
    (entry,) = _committed(tmp_path)
    assert entry["status"] == "committed" and entry["source_type"] == "sql"
