"""`mlpipe serve` in the foreground: prints the URLs and a curl example that works."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from components.common.config import REPO_ROOT
from pipelines.cli import build_parser, main
from pipelines.serve_cli import banner
from tests.components.serve.conftest import lgbm_model_dir  # noqa: F401  (a small trained model)
from tests.support.mlflow_env import use_local_store, use_tracking_uri
from tests.support.servers import serve_banner


def test_parser_defaults():
    args = build_parser().parse_args(["serve"])
    assert args.model is None and args.port == 8080 and args.host == "127.0.0.1"


def test_bad_fault_is_a_usage_error(capsys):
    assert main(["serve", "--fault", "explode"]) == 2
    assert "bad fault 'explode'" in capsys.readouterr().err


@pytest.mark.integration  # creates an MLflow store (~10-20 s)
def test_missing_champion_says_what_to_do(tmp_path, monkeypatch, capsys):
    use_tracking_uri(monkeypatch, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "models:/acs-employment@champion" in err and "mlpipe run" in err


def test_banner_example_is_a_valid_row(schema):
    spec = {"features": [{"name": n, **schema.features[n].model_dump()} for n in ["AGEP", "ANC"]]}
    text = banner("m", "http://127.0.0.1:1", spec, "3", "models:/m@champion")
    assert '{"instances": [{"AGEP": 0, "ANC": 1}]}' in text
    assert "POST http://127.0.0.1:1/v2/models/m/infer" in text


@pytest.mark.integration
def test_serve_a_model_dir_in_the_foreground(lgbm_model_dir):  # noqa: F811
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--model", str(lgbm_model_dir)]
    proc = subprocess.Popen(
        [*cmd, "--port", "0", "--name", "acs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        text = serve_banner(proc, 60)
        url = re.search(r"POST (http://127\.0\.0\.1:\d+/v1/models/acs:predict)", text)[1]
        body = re.search(r"-d '(.*)'", text)[1]
        r = requests.post(url, json=json.loads(body), timeout=10)
        assert r.status_code == 200 and 0 <= r.json()["predictions"][0] <= 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)


@pytest.mark.integration  # an MLflow store, a served model and a rollback
def test_mlpipe_rollback_changes_what_a_local_server_serves(tmp_path, monkeypatch):
    """`mlpipe serve` follows `champion`: after `mlpipe rollback` it serves the previous version
    (locally, what is served is what the registry says; on KServe the InferenceService)."""
    import pandas as pd

    from tests.fixtures.models import FEATURES, LABEL, logistic, register

    uri = use_local_store(monkeypatch, tmp_path, "t")
    data = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    train = data[data.year == 2015][[*FEATURES, LABEL]]
    models = [logistic(train.sample(2000, random_state=seed)) for seed in (0, 1)]
    v1 = register(*models[0], "m", "d0")
    v2 = register(*models[1], "m", "d1")  # champion v2, previous v1
    row = train[FEATURES].head(1)
    offline = {
        v: float(m.predict_proba(row)[0, 1]) for v, (m, _) in zip((v1, v2), models, strict=True)
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "serve", "--model", "models:/m@champion",
         "--name", "m", "--port", "0", "--follow-s", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        url = re.search(
            r"POST (http://127\.0\.0\.1:\d+/v1/models/m:predict)", serve_banner(proc, 90)
        )[1]
        body = {"instances": row.to_dict("records")}

        def served() -> float:
            return requests.post(url, json=body, timeout=10).json()["predictions"][0]

        assert served() == pytest.approx(offline[v2])
        assert main(["rollback", "--model", "m", "--tracking-uri", uri]) == 0
        deadline = time.monotonic() + 60
        while served() != pytest.approx(offline[v1]):
            assert time.monotonic() < deadline, "the server never followed champion back to v1"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
