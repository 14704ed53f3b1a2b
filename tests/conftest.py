"""Shared fixtures: small real samples of the bundled data, the default config and schema."""

from __future__ import annotations

import builtins
import contextlib
import os
from pathlib import Path

import pandas as pd
import pytest

from components.common.config import REPO_ROOT, load_data_schema, load_settings


@pytest.fixture(autouse=True)
def _print_is_builtin():
    """Every test starts and ends with the real `print`: kfp.local, run in this process by some
    tests, swaps in an indenting one for the process (kfp/local/logging_utils.py), and a later
    test's exact stdout would carry its four spaces."""
    original = builtins.print
    yield
    builtins.print = original


DATA_FILE = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
# MLflow's usage telemetry would try to reach the internet from every client and server the
# tests start (and once failed a server start with a KeyError on its session id)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow 3's server-side job runners (8 more processes per `mlflow server`, ~600 MiB, seconds of
# start-up): nothing here uses them, and the manifests switch them off too
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

TFDV_PYTHON = Path(os.environ.get("MLPIPE_TFDV_PYTHON", REPO_ROOT / ".venvs/tfdv/bin/python"))


def needs_tfdv() -> pytest.MarkDecorator:
    """Skip (visibly) without the tfdv environment — except in CI, where it must exist."""
    missing = not TFDV_PYTHON.exists() and os.environ.get("CI") != "true"
    return pytest.mark.skipif(
        missing, reason=f"tfdv environment missing ({TFDV_PYTHON}): make setup"
    )


@pytest.fixture(scope="session")
def full_data() -> pd.DataFrame:
    return pd.read_parquet(DATA_FILE)


@pytest.fixture(scope="session")
def sample_data(full_data: pd.DataFrame) -> pd.DataFrame:
    """2,000 rows of each of 2015 and 2016: the default train and test windows."""
    parts = [
        full_data[full_data.year == year].sample(2000, random_state=year) for year in (2015, 2016)
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def schema():
    return load_data_schema()


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    """A real MLflow store (SQLite in a temporary folder) as this test's tracking URI."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("t")
    return mlflow.MlflowClient()


@pytest.fixture()
def mlflow_server(tmp_path, monkeypatch):
    """A real MLflow tracking server (`mlflow server`, SQLite behind it) on 127.0.0.1 as this
    test's tracking URI: the REST checks a server makes that a local store skips."""
    import mlflow

    from tests.support.servers import mlflow_server_process

    with contextlib.ExitStack() as stack:
        try:
            uri = stack.enter_context(mlflow_server_process(tmp_path))
        except RuntimeError as exc:
            pytest.fail(str(exc))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        try:
            mlflow.set_experiment("t")
            yield mlflow.MlflowClient()
        finally:
            mlflow.set_tracking_uri("")
