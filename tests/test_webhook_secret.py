"""Issue 14, acceptance 6: a known webhook secret never appears in logs, the alert log, MLflow
params or compiled YAML. The URL is set through the environment variable the config names (the
only place it may come from); a notify path alerts while the webhook is down, a monitoring path
alerts when it is up (resending the first); both pipelines are compiled; config and stage
metadata are logged as MLflow params the way the track stage does; then every output is searched
for the URL's secret path segment."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from components.common.alerts import AlertSink
from components.common.config import MonitoringConfig, load_settings
from components.common.mlflow_utils import flatten
from components.monitor import actions
from components.notify.notify import run as notify
from components.track import track
from pipelines.cli import main
from tests.support.webhook import Receiver

SECRET = "xoxb9Secret7Segment"
SECRET_PATH = f"/services/T0ACCEPT/B0ACCEPT/{SECRET}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _drift_result() -> dict:
    return {
        "registered_model": "acs-employment",
        "champion_version": "2",
        "rows": 3000,
        "batch_digest": "d" * 64,
        "newest": 2017,
        "decision": {
            "decision": "alert",
            "reasons": ["AGEP: jensen_shannon 0.31 > 0.1"],
            "kinds": ["drift"],
            "drifted": ["AGEP"],
        },
        "context": {"batch": "b2017.parquet"},
    }


def _texts_under(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.filterwarnings("ignore")
def test_a_known_webhook_secret_appears_nowhere(
    tmp_path, tmp_path_factory, monkeypatch, caplog, capsys, mlflow_store
):
    import mlflow

    caplog.set_level(logging.DEBUG)  # the HTTP client's debug lines name the request path
    port = _free_port()
    url = f"http://127.0.0.1:{port}{SECRET_PATH}"
    logs = tmp_path / "logs"
    monkeypatch.setenv("MLPIPE_ALERT_WEBHOOK", url)
    monkeypatch.setenv("MLPIPE_LOGS_DIR", str(logs))
    monkeypatch.setenv("MLPIPE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLPIPE_RUN_ID", "r-secret")
    monitoring = MonitoringConfig(webhook_retries=1, webhook_backoff_s=0.0)
    settings = load_settings()
    assert settings.pipeline.monitoring.webhook_url_env == "MLPIPE_ALERT_WEBHOOK"

    # 1. the webhook is down: the exit handler's failure alert fails to send, stays pending
    failed = notify(
        "FAILED",
        "mlpipe-training",
        "nightly-1",
        monitoring.model_dump(mode="json"),
        f"Task failed posting to {url}",  # even an error that names the URL
    )
    assert failed["alert"]["webhook"]["status"] == "pending"
    # 2. up again: the monitoring run's alert is delivered and the pending one resent
    with Receiver(port=port, path=SECRET_PATH) as receiver:
        sink = AlertSink.from_config(monitoring)
        triggers = actions.TriggerStore(str(tmp_path / "triggers"))
        acted = actions.act(_drift_result(), sink, triggers)
    assert acted["alert"]["webhook"]["status"] == "delivered"
    assert [r["webhook"]["status"] for r in acted["alert"]["resent"]] == ["delivered"]
    assert len(receiver.bodies) == 2  # so the URL really was used

    # 3. both pipelines compiled with the URL in the environment
    specs = []
    for pipeline in ("training", "monitoring"):
        out = tmp_path_factory.mktemp("spec") / f"{pipeline}.yaml"
        assert main(["compile", "--pipeline", pipeline, "--output", str(out)]) == 0
        specs.append(out.read_text())
    assert "MLPIPE_ALERT_WEBHOOK" in specs[0]  # the variable's name, mounted from the Secret

    # 4. params the way the track stage logs them: the config, and stages' metadata (here the
    # notify and act outputs, errors included)
    with mlflow.start_run(run_name="secret-check") as parent:
        mlflow.log_params(track._params(flatten("", settings.pipeline.model_dump(mode="json"))))
        track._log_stage("notify", {"out": failed, "act": acted}, [], {})
    runs = mlflow_store.search_runs([parent.info.experiment_id])
    params = json.dumps([r.data.params for r in runs])
    assert "monitoring.webhook_url_env" in params and len(runs) == 2

    captured = capsys.readouterr()
    places = {
        "logs": caplog.text + captured.out + captured.err,
        "alert log": _texts_under(logs),
        "task outputs": json.dumps([failed, acted]),
        "MLflow params": params,
        "compiled YAML": "\n".join(specs),
    }
    assert "127.0.0.1" in places["alert log"]  # the redacted error still names the host
    leaks = [where for where, text in places.items() if SECRET in text]
    assert leaks == []
