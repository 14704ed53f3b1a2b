"""Real parts for the deploy tests: model servers as their own processes (upstream_server.py)
behind the `Backend` seam, and continuous client load from another process (load_client.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SERVER = Path(__file__).with_name("upstream_server.py")
LOAD = Path(__file__).with_name("load_client.py")
MODEL = "acs"


class ProcessBackend:
    """`Backend` over upstream_server.py processes (the real server's interface, not a mock)."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: list[tuple[str, str | None]] = []
        self.stopped: list[str] = []

    def start(self, model_dir: str, name: str, fault: str | None = None) -> str:
        cmd = [sys.executable, str(SERVER), "--name", name]
        if fault:
            cmd += ["--fault", fault]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            proc.kill()
            raise RuntimeError(f"upstream server did not start: {line!r}")
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/v2/health/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} never became ready")
            time.sleep(0.02)
        self.procs[url] = proc
        self.started.append((model_dir, fault))
        return url

    def stop(self, url: str) -> None:
        proc = self.procs.pop(url, None)
        if proc is not None:
            proc.terminate()
            proc.wait(5)
            self.stopped.append(url)

    def close(self) -> None:
        for url in list(self.procs):
            self.stop(url)


class LoadClient:
    """Continuous load on `url` from a separate process (load_client.py) while the block runs.
    After it: `ok` and `failures` (non-200 answers and transport errors, by reason). `rows`: a
    JSON file of V1 instances to send (else the stand-in server's synthetic pool)."""

    def __init__(
        self, url: str, threads: int = 2, *, model: str = MODEL, rows: Path | None = None
    ) -> None:
        self.cmd = [sys.executable, str(LOAD), url, model, str(threads)]
        if rows is not None:
            self.cmd.append(str(rows))
        self.ok = 0
        self.failures: dict[str, int] = {}

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def __enter__(self) -> LoadClient:
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "STARTED"
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self.proc.communicate("", timeout=30)
        result = json.loads(out.strip().splitlines()[-1])
        self.ok, self.failures = result["ok"], result["failures"]


@pytest.fixture
def backend():
    b = ProcessBackend()
    yield b
    b.close()


# ------------------------------------------------------------ KServe deploys (MLflow, stand-in)

KSERVE_DESTINATION = "s3://mlflow/artifacts"  # the MLflow server's --artifacts-destination


@pytest.fixture(scope="module")
def models():
    """Two small real models (different samples of 2015) with their feature specs."""
    import pandas as pd

    from components.common.config import REPO_ROOT
    from tests.fixtures.models import FEATURES, LABEL, logistic

    df = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    train = df[df.year == 2015][[*FEATURES, LABEL]]
    return [logistic(train.sample(2000, random_state=seed)) for seed in (0, 1)]


@pytest.fixture(scope="module")
def acs_rows():
    """Rows of the bundled data: 2,000 of 2015 (to train on) and 500 of 2016 (to send)."""
    import pandas as pd

    from components.common.config import REPO_ROOT

    df = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    return df[df.year == 2015].sample(2000, random_state=0), df[df.year == 2016].head(500)


@pytest.fixture()
def server(mlflow_server, monkeypatch):
    """A real MLflow server proxying artifacts, as the cluster runs it: a version's files are
    under KSERVE_DESTINATION (what KServe's storage initializer would fetch)."""
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", KSERVE_DESTINATION)
    return mlflow_server


@pytest.fixture()
def cluster():
    """The Kubernetes stand-in playing KServe 0.20 in Knative mode for every InferenceService."""
    from tests.support.kserve_knative import knative_cluster

    return knative_cluster()
