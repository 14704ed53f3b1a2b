"""`mlpipe run` end to end on data whose time column holds ISO dates, with date windows."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from components.common.config import DEFAULT_DATA_SCHEMA, REPO_ROOT
from components.common.mlflow_utils import default_tracking_uri
from tests.conftest import needs_tfdv

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]


def test_iso_date_time_column_with_date_windows_runs_to_a_registered_model(tmp_path, full_data):
    rng = np.random.default_rng(0)
    parts = []
    # train period: 2013-01-01..09-30 (273 days), test period: 10-01..12-31 (92 days)
    for year, first, days, n in ((2015, "2013-01-01", 273, 2000), (2016, "2013-10-01", 92, 800)):
        rows = full_data[full_data.year == year].sample(n, random_state=year)
        offsets = pd.to_timedelta(rng.integers(0, days, n), unit="D")
        dates = (pd.Timestamp(first) + offsets).strftime("%Y-%m-%d")
        parts.append(rows.drop(columns=["year"]).assign(signup_date=dates))
    data = pd.concat(parts, ignore_index=True)
    source = tmp_path / "signups.parquet"
    data.to_parquet(source)
    schema = yaml.safe_load(DEFAULT_DATA_SCHEMA.read_text())
    schema |= {"time_column": "signup_date", "time": {"kind": "timestamp", "timezone": "UTC"}}
    schema_path = tmp_path / "schema.yaml"
    schema_path.write_text(yaml.safe_dump(schema))
    sets = {
        "data_ingestion.source_url": str(source),
        # the end date 2013-12-31 keeps that whole day; unquoted YAML dates work too
        "data_ingestion.window": "{start: 2013-01-01, end: 2013-12-31}",
        "feature_engineering.split.train_window": "[2013-01-01, 2013-09-30]",
        "feature_engineering.split.test_window": "['2013-10-01', '2013-12-31']",
        "monitoring.decision": "{on_drift: alert, on_decay: alert}",
        "model_training.algorithms": "[lightgbm]",
        "model_training.max_trials": "1",
        "model_training.params.lightgbm.n_estimators": "100",
        # registered as challenger, not deployed: serving is not under test here
        "deployment.approval_required": "true",
    }
    out = tmp_path / "outputs"
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--output-dir", str(out)]
    cmd += ["--schema", str(schema_path)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ingest = next(x for x in proc.stdout.splitlines() if x.startswith("ingest "))
    assert " succeeded " in ingest and " 2,800 " in ingest  # the date window keeps every row
    mlflow.set_tracking_uri(default_tracking_uri(out / "mlflow"))
    version = mlflow.MlflowClient().get_model_version_by_alias("acs-employment", "challenger")
    assert float(version.tags["metric.roc_auc"]) > 0.8
    # evaluated on the test window's rows only: the 800 rows dated 2013-10-01..12-31
    evaluate = next(x for x in proc.stdout.splitlines() if x.startswith("evaluate "))
    assert " 800 " in evaluate
