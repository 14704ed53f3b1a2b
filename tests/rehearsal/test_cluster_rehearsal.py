"""The cluster rehearsal in the test suite: `python -m tests.rehearsal` (what `make
cluster-rehearsal` runs) must pass every check, and two negative rehearsals in the same images and
services must fail the way a cluster run would, each with its own error:

- a task whose pod lacks MLFLOW_TRACKING_URI (a ConfigMap without the key) fails naming it, and no
  local MLflow store appears;
- an unreadable source fails the run at ingest with the source's error (not "SUCCESS with no
  outputs", kfp 2.17.3's DockerRunner's reading of a container that is already gone), and the exit
  handler sends the failure alert through the webhook and into the alert log.

Needs root and a container engine (podman from Debian's packages, which .ci/run installs, or
Docker): skipped with the reason outside CI, a failure under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from components.common.config import REPO_ROOT
from tests.rehearsal.rehearsal import (
    BATCH_URL,
    DATASET,
    REQUIRED_CHECKS,
    session,
    shifted_batch,
    state_url,
    upload,
)

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal, pytest.mark.timeout(3600)]


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the rehearsal sets up its container engine as root"
    if not (shutil.which("podman") or shutil.which("docker")):
        return "no container engine (apt-get install podman buildah debootstrap; .ci/run does)"
    return None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    reason = _why_not()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    path = tmp_path_factory.mktemp("rehearsal") / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.rehearsal", "--report", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    body = json.loads(path.read_text()) if path.is_file() else {}
    return proc, body


def test_the_rehearsal_passes_every_check(report):
    proc, body = report
    checks = {c["name"]: c for c in body.get("checks", [])}
    failed = {n: c["detail"] for n, c in checks.items() if not c["ok"]}
    assert proc.returncode == 0 and body.get("ok"), (
        failed,
        proc.stdout[-4000:],
        proc.stderr[-4000:],
    )
    assert set(REQUIRED_CHECKS) <= set(checks)
    model = checks["model_registered_s3"]["detail"]
    assert model["s3_objects"] > 0 and model["data_source"].startswith("s3://")


@pytest.fixture(scope="module")
def reh(report):
    with session() as rehearsal:
        upload(
            DATASET,
            "s3://mlpipe-data/datasets/acs_employment_ma_2015_2018.parquet",
            rehearsal.services,
        )
        yield rehearsal


def test_a_task_without_the_tracking_uri_fails_naming_it(reh):
    upload(shifted_batch(reh.work / "batch.parquet"), BATCH_URL, reh.services)
    package = reh.compile("monitoring")
    run = reh.run(package, {"source": BATCH_URL}, drop=("MLFLOW_TRACKING_URI",))
    task = run.task("champion_reference")
    assert task.exit_code != 0
    assert "MLFLOW_TRACKING_URI" not in task.env_keys
    assert any("MLFLOW_TRACKING_URI is not set" in line for line in task.log_tail), task.log_tail
    assert not list(run.pipeline_root.rglob("*.db"))  # no SQLite store appeared
    assert "batch_statistics" not in {t.function for t in run.tasks}


def test_an_unreadable_source_fails_at_ingest_and_the_exit_handler_alerts(reh):
    before = len(reh.services.webhook.bodies)
    missing = "s3://mlpipe-data/datasets/missing.parquet"
    run = reh.run(reh.compile("training"), {"source": missing})
    ingest = run.task("ingest")
    assert ingest.exit_code != 0
    assert any("missing.parquet" in line for line in ingest.log_tail), ingest.log_tail
    assert {t.function for t in run.tasks} == {"ingest", "notify_failure"}
    assert run.task("notify_failure").exit_code == 0
    (body,) = reh.services.webhook.bodies[before:]
    assert "failed at ingest" in body["text"] and "missing.parquet" in body["text"]
    incident = f"failure:mlpipe-training:{run.run_id}"
    alerts = reh.s3_json(f"{state_url(reh.services)}/logs/alerts/")
    (alert,) = [a for a in alerts if a["incident"] == incident]
    assert alert["context"]["failed_task"] == "ingest"
    assert alert["webhook"]["status"] == "delivered"
