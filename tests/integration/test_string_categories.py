"""Any tabular dataset by configuration alone (issue acceptance): a dataset with text-coded
categories, an ISO-date time column and two columns that are no feature is drafted by `mlpipe
schema infer`, trained by `mlpipe run` (kfp.local, TFDV, a real MLflow store) with that draft
unchanged and date windows, registered, then served: V1 rows and V2 BYTES tensors carry the texts;
the monitor reads both the request log and a raw batch."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import mlflow
import pytest
import requests

from components.common.config import REPO_ROOT, load_data_schema
from components.common.mlflow_utils import default_tracking_uri
from components.serve.launch import start_server
from tests.conftest import needs_tfdv
from tests.fixtures.strings_data import DEGREES, EMPLOYERS, string_frame

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]
MODEL = "strings-e2e"
RUN = [  # small and quick: one algorithm, configured params, no canary windows
    "--set",
    f"project.registered_model={MODEL}",
    "--set",
    f"project.experiment={MODEL}",
    "--set",
    "model_training.algorithms=[lightgbm]",
    "--set",
    "model_training.hyperparameter_tuning=false",
    "--set",
    "model_training.params.lightgbm.n_estimators=50",
    "--set",
    "data_ingestion.window={start: 2013-01-01, end: 2013-12-31}",  # the end date keeps its day
    "--set",
    "feature_engineering.split.train_window=[2013-01-01, 2013-09-30]",
    "--set",
    "feature_engineering.split.test_window=['2013-10-01', '2013-12-31']",
    "--set",
    "monitoring.decision={on_drift: alert, on_decay: alert}",  # retraining steps whole years
    "--set",
    "evaluation.slices.features=[employer]",
    "--set",
    "evaluation.slices.buckets={age: [30, 50]}",
    "--set",
    "evaluation.thresholds={roc_auc: 0.6}",
    "--set",
    "evaluation.explain.enabled=false",
    "--set",
    "deployment.rollout.strategy=direct",
    "--set",
    "deployment.infra_validation.p99_budget_ms=5000",
]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "-m", "pipelines.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=600)


def test_string_categories_from_draft_to_served_predictions(tmp_path):
    started = time.perf_counter()
    data, schema, out = tmp_path / "people.parquet", tmp_path / "schema.yaml", tmp_path / "out"
    string_frame(3000, dates=True).to_parquet(data, index=False)

    infer = ["schema", "infer", str(data), "--label", "label", "--time-column", "signup_date"]
    proc = _cli(*infer, "--id-column", "person_id", "--no-tfdv", "-o", str(schema))
    assert proc.returncode == 0, proc.stderr[-2000:]
    drafted = load_data_schema(schema)  # used as drafted: nothing edited
    assert drafted.features["employer"].dtype == "string"
    assert drafted.features["employer"].values == EMPLOYERS
    assert drafted.features["degree"].values == DEGREES
    assert sorted(drafted.columns.ignore) == ["comment", "reviewed"]
    assert drafted.time.kind == "timestamp"

    proc = _cli(
        "run",
        "--schema",
        str(schema),
        "--output-dir",
        str(out),
        "--set",
        f"data_ingestion.source_url={data}",
        *RUN,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.splitlines()
    ingest = next(x for x in table if x.startswith("ingest "))
    assert " 3,000 " in ingest  # the date window keeps every row
    evaluate = next(x for x in table if x.startswith("evaluate "))
    assert " 1,000 " in evaluate  # scored on the test window's rows only (10-01..12-31)
    mlflow.set_tracking_uri(default_tracking_uri(out / "mlflow"))
    champion = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1"
    pipeline_wall = time.perf_counter() - started

    model_dir = next((out / "models").iterdir())
    log = tmp_path / "requests.jsonl"
    people = string_frame(3000, dates=True)
    served = people[people["signup_date"] >= "2013-10-01"].head(400)
    rows = [
        {"age": 34, "degree": "Master", "employer": "Private"},
        {"age": 61, "degree": "None", "employer": "Self-emp"},
    ]
    with start_server(model_dir, MODEL, request_log=log) as server:
        r = requests.post(server.v1_url, json={"instances": rows}, timeout=10)
        assert r.status_code == 200, r.text
        v1 = r.json()["predictions"]
        body = {
            "inputs": [
                {"name": "age", "shape": [2], "datatype": "INT64", "data": [34, 61]},
                {"name": "degree", "shape": [2], "datatype": "BYTES", "data": ["Master", "None"]},
                {
                    "name": "employer",
                    "shape": [2],
                    "datatype": "BYTES",
                    "data": ["Private", "Self-emp"],
                },
            ]
        }
        r = requests.post(server.v2_url, json=body, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == pytest.approx(v1, abs=1e-12)
        bad = {"instances": [{**rows[0], "employer": "Pirate"}]}
        r = requests.post(server.v1_url, json=bad, timeout=10)
        assert r.status_code == 400 and "'Pirate'" in r.json()["error"]
        instances = served[["age", "degree", "employer"]].to_dict("records")
        instances = [{**row, "age": int(row["age"])} for row in instances]
        r = requests.post(server.v1_url, json={"instances": instances}, timeout=30)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10  # the log is flushed once a second
        while time.monotonic() < deadline and (
            not log.exists() or len(log.read_text().splitlines()) < 4
        ):
            time.sleep(0.2)
    assert v1[0] > v1[1]  # the signal the data was built with: Private + Master vs Self-emp
    print(f"draft + run + register: {pipeline_wall:.1f} s")

    # monitoring: the request log (the validator's codes) and a raw batch (texts) are both
    # compared with the training statistics (texts): same rows, no drift, no anomaly
    from components.common.config import CostMatrix, MonitoringConfig
    from components.monitor.batch import read_request_log
    from components.monitor.monitor import run as monitor

    logged, _ = read_request_log(log)
    assert len(logged) == 400 + 4 and set(logged["employer"].unique()) <= {0, 1, 2}
    logged.to_parquet(tmp_path / "logged.parquet", index=False)
    served.to_parquet(tmp_path / "raw.parquet", index=False)
    for name in ("logged", "raw"):
        result = monitor(
            str(tmp_path / f"{name}.parquet"),
            drafted,
            MonitoringConfig().model_dump(mode="json"),
            CostMatrix().model_dump(mode="json"),
            MODEL,
            str(tmp_path / f"monitor-{name}"),
            tracking_uri=default_tracking_uri(out / "mlflow"),
        )
        assert result["anomalies"] == [], (name, result["anomalies"])
        for feature in ("employer", "degree"):
            drift = result["drift"][feature]
            assert drift["metric"] == "linf" and drift["value"] < 0.1, (name, feature, drift)
