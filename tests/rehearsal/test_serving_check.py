"""The serving check on its own: a small MLflow model uploaded to the rehearsal's S3 API (moto on
MinIO's port), then `check_serving_container` — KServe's storage logic fetches it into
/mnt/models, the serving image runs as the ServingRuntime declares it on a podman bridge network,
the kubelet-style probe finds it ready on its own address, V1 and V2 answers equal the offline
model's. Needs root and podman; prepares the engine and builds the serving image when missing;
holds /tmp/mlpipe-rehearsal.lock (the S3 port is shared with the rehearsal)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from components.common.config import REPO_ROOT
from tests.rehearsal.serving_check import DATASET, check_serving_container, storage_env
from tests.support.manifests import Rendered

pytestmark = [pytest.mark.integration, pytest.mark.rehearsal, pytest.mark.timeout(900)]

SOCKET = "/run/podman/podman.sock"
LOCK = "/tmp/mlpipe-rehearsal.lock"
BUCKET = "mlpipe-models"


def test_storage_env_is_what_kserve_derives_from_the_service_account():
    env = storage_env(Rendered.overlay("kind"))
    assert env["S3_ENDPOINT"] == "minio.mlpipe.svc.cluster.local:9000"
    assert env["AWS_ENDPOINT_URL"] == "http://minio.mlpipe.svc.cluster.local:9000"
    assert env["S3_USE_HTTPS"] == "0" and env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]


@pytest.fixture
def engine():
    """podman's Docker API, with the serving image: prepared here as the rehearsal prepares them
    (`make container-host`, then `make images IMAGES=serving` when it is not built), so this test
    passes whichever test ran before it."""

    def skip(reason: str) -> None:
        if os.environ.get("CI") == "true":  # .ci/run installs podman
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)

    if os.geteuid() != 0 or not shutil.which("podman"):
        skip("needs root and podman (apt-get install podman buildah debootstrap; .ci/run does)")
    import docker

    from tests.rehearsal.rehearsal import SERVING_IMAGE, build_command, engine_env

    with open(LOCK, "w") as lock:  # released before the test takes it again
        fcntl.flock(lock, fcntl.LOCK_EX)
        prepared = engine_env()
        client = docker.DockerClient(base_url=prepared.get("DOCKER_HOST", f"unix://{SOCKET}"))
        if not client.images.list(name=SERVING_IMAGE):
            command = [*build_command(prepared.get("BASE_IMAGE")), "IMAGES=serving"]
            built = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
            assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    yield client
    client.close()


def _mlflow_model(path: Path) -> Path:
    import mlflow.sklearn

    from tests.fixtures.models import logistic

    data = pd.read_parquet(DATASET)
    model, spec = logistic(data[data["year"] == 2015].head(3000))
    spec_file = path / "feature_spec.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(spec))
    out = path / "model"
    mlflow.sklearn.save_model(
        model, str(out), serialization_format="cloudpickle", extra_files=[str(spec_file)]
    )
    return out


def test_the_serving_image_serves_a_model_from_s3_as_kserve_runs_it(engine, tmp_path):
    from tests.rehearsal.services import s3_api

    model_dir = _mlflow_model(tmp_path / "src")
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o755)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with s3_api() as s3:
            s3.create_bucket(Bucket=BUCKET)
            prefix = "1/abc/artifacts/model"
            for file in model_dir.rglob("*"):
                if file.is_file():
                    s3.upload_file(str(file), BUCKET, f"{prefix}/{file.relative_to(model_dir)}")
            reh = SimpleNamespace(
                docker=engine,
                services=SimpleNamespace(manifests=Rendered.overlay("kind"), s3=s3),
                work=work,
            )
            detail: dict = {}
            check_serving_container(reh, f"s3://{BUCKET}/{prefix}", detail)
            # the same container listening on its loopback only (the CLI's laptop default) is
            # never ready for a kubelet probing the pod's address: the check fails
            loopback = Rendered.overlay("kind")
            runtime = loopback.find("ServingRuntime", "mlpipe", "mlpipe")["spec"]["containers"][0]
            runtime["args"] = [a.replace("0.0.0.0", "127.0.0.1") for a in runtime["args"]]
            reh.services.manifests = loopback
            with pytest.raises(RuntimeError, match="not ready after"):
                check_serving_container(reh, f"s3://{BUCKET}/{prefix}", {}, ready_timeout=20)
    print(json.dumps({k: v for k, v in detail.items() if k != "log_tail"}, indent=1))
    assert "MLmodel" in detail["files"] and "extra_files/feature_spec.json" in detail["files"]
    host = detail["address"].split("//")[1].split(":")[0]
    assert not host.startswith("127.")  # the container's own address, not loopback
    assert "--host=0.0.0.0" in detail["args"]
    assert detail["v1_max_abs_diff"] <= 1e-9 and detail["v2_max_abs_diff"] <= 1e-9
    assert detail["rows"] == 64 and detail["model_version"].startswith("sha256:")
