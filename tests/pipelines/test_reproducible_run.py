"""Reproducibility: `mlpipe run --no-cache` twice with tuning on, the second time with the other
core busy, gives the same model digest and the same metrics (on a sample of the data).

What made such runs differ: the feature order (the schema reaches the features task as a KFP
struct, a protobuf map whose key order changes per process) and the wall-time tuning budget.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from components.common.artifacts import sha256_dir
from components.common.config import REPO_ROOT
from tests.conftest import needs_tfdv

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]
# tuning on, small: two searched families, three trials each, stopped by the trial count
SETTINGS = {
    "model_training.algorithms": "[lightgbm, xgboost]",
    "model_training.hyperparameter_tuning": "true",
    "model_training.max_trials": "3",
    "model_training.params.lightgbm.n_estimators": "200",
    "model_training.params.xgboost.n_estimators": "200",
    "deployment.rollout.strategy": "direct",
    "deployment.infra_validation.p99_budget_ms": "5000",  # the machine is busy on purpose
}


def mlpipe_run(out: Path, source: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--no-cache", "--output-dir", str(out)]
    cmd += ["--set", f"data_ingestion.source_url={source}"]
    for key, value in SETTINGS.items():
        cmd += ["--set", f"{key}={value}"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=1200)


def outcome(proc: subprocess.CompletedProcess) -> tuple[str, str]:
    """(model digest, the test-metrics line) of a finished run."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    model = next(x for x in lines if x.startswith("model: ")).removeprefix("model: ")
    assert "stopped by the time budget" not in proc.stdout
    return sha256_dir(model), next(x for x in lines if x.startswith("test metrics: "))


@pytest.mark.timeout(2400)  # two cold runs, one beside a busy core: 22 min on a crowded 2-core box
def test_no_cache_rerun_on_a_busy_machine_gives_the_same_model(tmp_path, full_data):
    sample = pd.concat(
        [full_data[full_data.year == y].sample(3000, random_state=y) for y in (2015, 2016)],
        ignore_index=True,
    )
    source = tmp_path / "sample.parquet"
    sample.to_parquet(source)
    first = outcome(mlpipe_run(tmp_path / "first", source))
    # a process spinning on a core for the whole second run: timing changes, results must not
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        second = outcome(mlpipe_run(tmp_path / "second", source))
    finally:
        burner.kill()
        burner.wait()
    assert second == first
