"""The rehearsal's serving check: the serving image run as KServe runs the `mlpipe` ServingRuntime.

`check_serving_container(reh, model_uri, detail)`, for the S3 URI of an MLflow model directory
(what a registered version's `storageUri` names):
1. storage initializer: KServe's own download logic (`kserve_storage.Storage.download`, the
   package KServe's storage-initializer image runs, at the version of our kserve) fetches the
   model into a folder that becomes /mnt/models. It runs in a container of the serving image
   (host network, the cluster's Service names mapped to this machine as for every rehearsal
   container), with the environment KServe's credential builder derives from the predictor's
   ServiceAccount (`mlpipe-serving` -> the read-only key's Secret `mlpipe-s3-readonly` with its
   `serving.kserve.io/s3-*` annotations; moto does not enforce the key's rights):
   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_ENDPOINT, S3_USE_HTTPS, AWS_ENDPOINT_URL,
   AWS_REGION. kserve-storage is not in the serving image (KServe brings its own
   initializer image) and its pinned dependencies conflict with our lock, so its wheel is
   installed without dependencies into a folder (uv, the package index) and mounted read-only;
   everything it imports at that point (boto3, requests, certifi, yaml) is in the image.
2. the model server: the ServingRuntime's container from the rendered kind overlay — command,
   args (`{{.Name}}` filled in as KServe does), env, uid from its securityContext, read-only root
   file system with the emptyDir on /tmp, all capabilities dropped, no new privileges, its CPU
   and memory limits — with /mnt/models mounted read-only, on a podman bridge network (not the
   host's: the args' --host must make it reachable on the pod's own address).
3. readiness as the kubelet probes it: the runtime's `readinessProbe.httpGet` path and port on
   the container's own network-namespace address (from the engine's NetworkSettings), every
   `periodSeconds`.
4. V1 and V2 predictions of real rows equal the same model's offline `predict_proba` (the model
   dir downloaded from S3 in this process and loaded with MLflow).

`detail` receives: model_uri, download_s, files, ready_s, address, probe, v1_max_abs_diff,
v2_max_abs_diff, rows, model_version, summary. Raises on any failure (the caller's Report.check
records it).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from components.common.config import REPO_ROOT
from tests.rehearsal.services import HOSTS
from tests.support.manifests import Rendered, expand, quantity_bytes, quantity_cpus

NAMESPACE = "mlpipe"
RUNTIME = "mlpipe"
SERVICE_ACCOUNT = "mlpipe-serving"  # deployment.rollout.kserve.service_account
MODEL_NAME = "acs-employment"  # the InferenceService name KServe puts in {{.Name}}
ANNOTATION = "serving.kserve.io/"
DATASET = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
ROWS = 64
TOLERANCE = 1e-9
# what KServe's storage-initializer entrypoint does: Storage.download(source URI, destination)
STORAGE_SCRIPT = (
    "import sys; from kserve_storage import Storage; "
    "print(Storage.download(sys.argv[1], sys.argv[2]))"
)


def storage_env(manifests: Rendered, service_account: str = SERVICE_ACCOUNT) -> dict[str, str]:
    """What KServe's credential builder gives the storage initializer for an S3 secret of the
    predictor's ServiceAccount (the secret's keys plus its `serving.kserve.io/s3-*` annotations)."""
    account = manifests.find("ServiceAccount", service_account, NAMESPACE)
    if account is None:
        raise RuntimeError(f"no ServiceAccount {NAMESPACE}/{service_account} in the overlay")
    for ref in account.get("secrets", []):
        secret = manifests.find("Secret", ref["name"], NAMESPACE)
        notes = (secret or {}).get("metadata", {}).get("annotations", {})
        endpoint = notes.get(f"{ANNOTATION}s3-endpoint")
        if secret is None or not endpoint:
            continue
        data = manifests.secret(ref["name"], NAMESPACE) or {}
        https = notes.get(f"{ANNOTATION}s3-usehttps", "1")
        env = {
            "AWS_ACCESS_KEY_ID": data["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": data["AWS_SECRET_ACCESS_KEY"],
            "S3_ENDPOINT": endpoint,
            "S3_USE_HTTPS": https,
            "AWS_ENDPOINT_URL": f"{'https' if https != '0' else 'http'}://{endpoint}",
        }
        if region := notes.get(f"{ANNOTATION}s3-region"):
            env["AWS_REGION"] = region
        if (verify := notes.get(f"{ANNOTATION}s3-verifyssl")) is not None:
            env["S3_VERIFY_SSL"] = verify
        return env
    raise RuntimeError(f"ServiceAccount {service_account} has no S3 secret KServe would use")


def kserve_storage_package(work: Path) -> Path:
    """kserve-storage (the version of our kserve) installed without dependencies into a folder."""
    version = importlib.metadata.version("kserve")
    target = work / f"kserve-storage-{version}"
    if not (target / "kserve_storage" / "__init__.py").is_file():
        uv = shutil.which("uv")
        cmd = [uv] if uv else [sys.executable, "-m", "uv"]
        subprocess.run(
            [
                *cmd,
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--python-version",
                "3.11",
                "--target",
                str(target),
                f"kserve-storage=={version}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        target.chmod(0o755)
    return target


def runtime_container(manifests: Rendered) -> dict[str, Any]:
    runtime = manifests.find("ServingRuntime", RUNTIME, NAMESPACE)
    if runtime is None:
        raise RuntimeError(f"no ServingRuntime {NAMESPACE}/{RUNTIME} in the overlay")
    (container,) = runtime["spec"]["containers"]
    return container


def _download(reh: Any, model_uri: str, models: Path, image: str) -> float:
    package = kserve_storage_package(reh.work)
    env = {**storage_env(reh.services.manifests), "PYTHONPATH": "/opt/kserve-storage"}
    started = time.monotonic()
    run = reh.docker.containers.run(
        image=image,
        entrypoint=["python", "-c", STORAGE_SCRIPT],
        command=[model_uri, "/mnt/models"],
        environment=env,
        user="10001:10001",
        volumes={
            str(package): {"bind": "/opt/kserve-storage", "mode": "ro"},
            str(models): {"bind": "/mnt/models", "mode": "rw"},
        },
        network_mode="host",
        extra_hosts=HOSTS,
        detach=True,
        name=f"mlpipe-rehearsal-storage-initializer-{time.time_ns()}",
    )
    try:
        code = run.wait(timeout=300)["StatusCode"]
        if code != 0:
            tail = run.logs().decode(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"storage initializer exited {code}: " + " | ".join(tail))
    finally:
        run.remove(force=True)
    return time.monotonic() - started


def _container_ip(run: Any) -> str:
    run.reload()
    settings = run.attrs.get("NetworkSettings", {})
    for network in (settings.get("Networks") or {}).values():
        if network.get("IPAddress"):
            return network["IPAddress"]
    if settings.get("IPAddress"):
        return settings["IPAddress"]
    raise RuntimeError(f"the serving container has no address: {json.dumps(settings)[:400]}")


def _wait_ready(run: Any, url: str, period: float, timeout: float) -> tuple[float, int]:
    """Probe `url` every `period` seconds like the kubelet: ready at the first 2xx/3xx."""
    started, probes = time.monotonic(), 0
    while True:
        probes += 1
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 400:
                    return time.monotonic() - started, probes
        except (urllib.error.URLError, OSError):
            pass
        run.reload()
        if run.status not in ("created", "running"):
            tail = run.logs().decode(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"the serving container exited ({run.status}): " + " | ".join(tail))
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{url} not ready after {timeout:.0f} s ({probes} probes)")
        time.sleep(period)


def offline_model(reh: Any, model_uri: str) -> tuple[Any, dict[str, Any]]:
    """The same model dir, downloaded from S3 in this process and loaded with MLflow."""
    import mlflow.sklearn

    parsed = urlparse(model_uri)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    local = Path(reh.work) / f"offline-model-{time.time_ns()}"
    s3 = reh.services.s3
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            dest = local / obj["Key"][len(prefix) + 1 :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(dest))
    pipeline = mlflow.sklearn.load_model(str(local))
    spec = json.loads((local / "extra_files" / "feature_spec.json").read_text())
    return pipeline, spec


def request_rows(spec: dict[str, Any], n: int = ROWS) -> tuple[list[str], list[dict[str, Any]]]:
    """`n` rows of the bundled data inside the spec's domains, JSON-ready."""
    import pandas as pd

    from components.serve.validation import RequestError, SpecValidator

    names = [f["name"] for f in spec["features"]]
    frame = pd.read_parquet(DATASET, columns=names)
    integer = {f["name"] for f in spec["features"] if f["dtype"] == "int"}
    validator = SpecValidator(spec)
    rows = []
    for record in frame.head(20 * n).to_dict("records"):
        row = {k: int(v) if k in integer else float(v) for k, v in record.items()}
        try:
            validator.v1({"instances": [row]})
        except RequestError:
            continue
        rows.append(row)
        if len(rows) == n:
            break
    return names, rows


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def check_serving_container(
    reh: Any,
    model_uri: str,
    detail: dict[str, Any],
    *,
    ready_timeout: float = 180,
    model_sha256: str | None = None,
) -> None:
    """See the module docstring. `reh`: a Rehearsal (`docker`, `services` with the rendered
    `manifests` and a boto3 `s3` client on the rehearsal's S3 API, `work`); `model_uri`: the
    s3:// URI of an MLflow model directory (MLmodel, model.pkl, extra_files/feature_spec.json);
    `model_sha256`: its manifest digest as the InferenceService gives it (the version's
    `mlpipe.model_manifest_sha256`); None: the digest of what the initializer fetched."""
    from tests.rehearsal.rehearsal import SERVING_IMAGE

    manifests: Rendered = reh.services.manifests
    container = runtime_container(manifests)
    image = container["image"]
    if image != SERVING_IMAGE:
        raise RuntimeError(f"the ServingRuntime runs {image}, the rehearsal built {SERVING_IMAGE}")
    detail["model_uri"] = model_uri

    models = Path(reh.work) / f"mnt-models-{time.time_ns()}"
    models.mkdir(parents=True)
    models.chmod(0o777)  # the initializer writes as uid 10001
    detail["download_s"] = round(_download(reh, model_uri, models, image), 2)
    detail["files"] = sorted(str(p.relative_to(models)) for p in models.rglob("*") if p.is_file())
    if "MLmodel" not in detail["files"]:
        raise RuntimeError(f"no MLmodel under /mnt/models after the download: {detail['files']}")

    from components.common import model_integrity

    # what the deploy stage renders into the InferenceService's predictor env
    digest = model_sha256 or model_integrity.digest_of(model_integrity.manifest(models))
    env = {**manifests.container_env(container, NAMESPACE), model_integrity.SHA256_ENV: digest}
    args = [expand(a, env).replace("{{.Name}}", MODEL_NAME) for a in container["args"]]
    ctx = container.get("securityContext", {})
    limits = container.get("resources", {}).get("limits", {})
    probe = container["readinessProbe"]["httpGet"]
    port = int(probe["port"])
    tmpfs = {m["mountPath"]: "" for m in container.get("volumeMounts", [])}  # the emptyDirs
    run = reh.docker.containers.run(
        image=image,
        entrypoint=container["command"],
        command=args,
        environment=env,
        user=f"{ctx.get('runAsUser', 10001)}:{ctx.get('runAsGroup', ctx.get('runAsUser', 10001))}",
        read_only=bool(ctx.get("readOnlyRootFilesystem")),
        cap_drop=ctx.get("capabilities", {}).get("drop", []),
        security_opt=[] if ctx.get("allowPrivilegeEscalation", True) else ["no-new-privileges"],
        mem_limit=quantity_bytes(limits["memory"]) if "memory" in limits else None,
        nano_cpus=int(quantity_cpus(limits["cpu"]) * 1e9) if "cpu" in limits else None,
        tmpfs=tmpfs,
        volumes={str(models): {"bind": "/mnt/models", "mode": "ro"}},
        network_mode="bridge",
        detach=True,
        name=f"mlpipe-rehearsal-serving-{time.time_ns()}",
    )
    try:
        address = _container_ip(run)
        base = f"http://{address}:{port}"
        detail["address"] = base
        detail["args"] = args
        ready_url = base + probe["path"]
        period = float(container["readinessProbe"].get("periodSeconds", 10))
        ready_s, probes = _wait_ready(run, ready_url, min(period, 1.0), ready_timeout)
        detail["ready_s"], detail["probe"] = round(ready_s, 2), f"GET {ready_url} ({probes} tries)"

        pipeline, spec = offline_model(reh, model_uri)
        names, rows = request_rows(spec)
        import pandas as pd

        want = pipeline.predict_proba(pd.DataFrame(rows, columns=names))[:, 1]
        v1 = _post(f"{base}/v1/models/{MODEL_NAME}:predict", {"instances": rows})
        dtypes = {f["name"]: "INT64" if f["dtype"] == "int" else "FP64" for f in spec["features"]}
        inputs = [
            {"name": n, "shape": [len(rows)], "datatype": dtypes[n], "data": [r[n] for r in rows]}
            for n in names
        ]
        v2 = _post(f"{base}/v2/models/{MODEL_NAME}/infer", {"inputs": inputs})
        v1_diff = float(np.max(np.abs(np.asarray(v1["predictions"]) - want)))
        v2_diff = float(np.max(np.abs(np.asarray(v2["outputs"][0]["data"]) - want)))
        detail.update(
            rows=len(rows),
            v1_max_abs_diff=v1_diff,
            v2_max_abs_diff=v2_diff,
            model_version=v2.get("model_version"),
        )
        if max(v1_diff, v2_diff) > TOLERANCE:
            raise RuntimeError(
                f"served predictions differ from the offline ones by up to "
                f"{max(v1_diff, v2_diff):.3g} (V1 {v1_diff:.3g}, V2 {v2_diff:.3g})"
            )
        detail["summary"] = (
            f"ready on {address}:{port} in {ready_s:.1f} s; V1/V2 = offline on {len(rows)} rows"
        )
    finally:
        detail["log_tail"] = run.logs().decode(errors="replace").splitlines()[-5:]
        run.remove(force=True)
