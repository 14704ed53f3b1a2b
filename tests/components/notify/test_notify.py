"""The exit handler's failure alert (components/notify) and the failure records it reads: a task
that raises files its record under the state store's runs/<run id>/failures/; the exit task turns
the run's first failure into one alert, to a real webhook receiver and the alert log."""

import pytest

from components.common.alerts import AlertSink
from components.common.errors import DataError
from components.common.recorder import record_task, run_failures
from components.notify.notify import run
from tests.support.webhook import Receiver

MONITORING = {"webhook_retries": 0, "webhook_url_env": "MLPIPE_TEST_WEBHOOK"}


@pytest.fixture
def cluster_env(tmp_path, monkeypatch):
    """What a pod of run r-1 has: a state store and the run id (a folder stands in for S3)."""
    monkeypatch.setenv("MLPIPE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLPIPE_RUN_ID", "r-1")
    monkeypatch.delenv("MLPIPE_RECORDS_DIR", raising=False)
    return tmp_path / "state"


def _fail(task: str, message: str) -> None:
    with pytest.raises(DataError), record_task(task):
        raise DataError(task, message)


def test_a_failed_task_files_its_record_under_its_run(cluster_env):
    _fail("ingest", "file not found: s3://b/missing.parquet")
    (record,) = run_failures("r-1", str(cluster_env))
    assert (record.task, record.status) == ("ingest", "failed")
    assert "missing.parquet" in record.error
    assert run_failures("r-2", str(cluster_env)) == []  # another run's records stay apart


def test_without_a_run_id_nothing_is_filed(cluster_env, monkeypatch):
    monkeypatch.delenv("MLPIPE_RUN_ID")
    _fail("ingest", "boom")
    assert not (cluster_env / "runs").exists()


def test_a_failed_run_alerts_once_naming_the_task_and_its_error(cluster_env, tmp_path):
    _fail("validate", "feature 'SEX': 1 value outside the domain [1, 2] (3)")
    with Receiver() as receiver:
        sink = AlertSink(tmp_path / "logs", receiver.url, retries=0)
        out = run("FAILED", "mlpipe-training", "nightly-7", MONITORING, "Task failed.", sink)
        again = run("FAILED", "mlpipe-training", "nightly-7", MONITORING, "Task failed.", sink)
    assert out["failed_tasks"] == ["validate"] and out["alert"]["status"] == "sent"
    assert again["alert"]["status"] == "duplicate"  # a retried exit task does not alert twice
    (body,) = receiver.bodies
    assert "mlpipe-training run nightly-7 failed at validate" in body["text"]
    assert "outside the domain" in body["text"]
    (entry,) = sink.entries()
    assert entry["incident"] == "failure:mlpipe-training:r-1"
    assert entry["context"]["failed_task"] == "validate"


def test_a_failure_without_a_record_is_still_alerted(cluster_env, tmp_path):
    sink = AlertSink(tmp_path / "logs")
    out = run("FAILED", "mlpipe-training", "nightly-8", MONITORING, "OOMKilled", sink)
    (entry,) = sink.entries()
    assert out["failed_tasks"] == [] and "failed at unknown task: OOMKilled" in entry["title"]


def test_a_succeeded_run_sends_nothing(cluster_env, tmp_path):
    sink = AlertSink(tmp_path / "logs")
    assert run("SUCCEEDED", "mlpipe-training", "n", MONITORING, None, sink)["alert"] is None
    assert sink.entries() == []
