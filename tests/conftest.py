"""Shared fixtures: small real samples of the bundled data, the default config and schema."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from components.common.config import REPO_ROOT, load_data_schema, load_settings

DATA_FILE = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
# MLflow's usage telemetry would try to reach the internet from every client and server the
# tests start (and once failed a server start with a KeyError on its session id)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

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
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import mlflow

    from tests.support.servers import wait_http

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = Path(sys.executable).parent / "mlflow"
    log = open(tmp_path / "mlflow-server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(binary), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{uri}/health", 120, lambda: proc.poll() is None, "mlflow server")
        except RuntimeError as exc:
            pytest.fail(f"{exc}: {(tmp_path / 'mlflow-server.log').read_text()[-3000:]}")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("t")
        yield mlflow.MlflowClient()
    finally:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        mlflow.set_tracking_uri("")
