"""The cluster rehearsal (`make cluster-rehearsal`): the cluster path run for real, on one machine,
with the images a cluster would pull.

No Kubernetes API server can run here, but containers can. So:
1. the three images are built from the unchanged Dockerfiles by a real OCI builder (podman from
   Debian's packages, or Docker where it runs; `make container-host images`);
2. the cluster's services start as the kind overlay defines them (`services.py`): PostgreSQL, the
   MLflow server (the pipeline image, the Deployment's command, args and env), an S3 API on
   MinIO's port, the KFP API calls we use (a stand-in checked against the KFP swagger), a webhook;
3. the bundled dataset is uploaded to S3 with `mlpipe data upload` (what `make kind-up` does);
4. the training pipeline is compiled with `mlpipe compile` (the cluster profile) and run with
   kfp.local's DockerRunner: every task in its own image as uid 10001, with the environment its
   pod would get, derived from the compiled YAML's `platforms.kubernetes` and the rendered
   manifests (`pod_env.py`, `kfp_docker.py`), nothing of this repository inside;
5. then the monitoring pipeline on a shifted batch in S3: its act task alerts and asks the KFP
   API for a retraining run of the training pipeline version uploaded beside it;
6. what Katib and KServe would run, where no API server can: a trial of the rendered Experiment
   in pipeline-image containers (`katib_check.py`), the serving image started as the
   ServingRuntime declares it with the registered model fetched from S3 by KServe's storage code
   and probed on its own address (`serving_check.py`), and the deploy stage's KServe rollout
   driven against the upstream-faithful stand-in (`kserve_check.py`).
Each check prints a row and lands in outputs/rehearsal/report.json.

Two changes to the config beyond the cluster profile: tuning is off (it is measured by its own
benchmark; here it would only make the rehearsal slower). Deploy runs its local rollout inside
its container (`deployment.environment: local`; the cluster profile's `kserve` needs an API
server): the KServe path is driven against the upstream-faithful stand-in (`kserve_check.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from components.common.config import REPO_ROOT, load_settings
from components.common.images import PIPELINE_IMAGE, REGISTRY, TFDV_IMAGE, VERSION
from pipelines.kfp_package import Package, load_package
from tests.rehearsal.kfp_docker import TaskRun, pod_like_containers
from tests.rehearsal.pod_env import PIPELINE_NAMESPACE
from tests.rehearsal.services import HOSTS, MLFLOW_URL, Services, cluster_services
from tests.support.manifests import Rendered

REPORT = REPO_ROOT / "outputs" / "rehearsal" / "report.json"
SERVING_IMAGE = f"{REGISTRY}/serving:{VERSION}"
IMAGES = (PIPELINE_IMAGE, TFDV_IMAGE, SERVING_IMAGE)
DATASET = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
BATCH_URL = "s3://mlpipe-data/batches/acs-2017-shifted.parquet"
REHEARSAL_SETS = (
    "model_training.hyperparameter_tuning=false",
    # no Kubernetes API here: deploy rolls out locally inside its container; the KServe path is
    # the `kserve_rollout` check's, against the upstream-faithful stand-in
    "deployment.environment=local",
)
REQUIRED_CHECKS = (
    "images_built",
    "training_pipeline",
    "model_registered_s3",
    "monitoring_pipeline",
    "retrain_requested",
    "no_repo_paths",
    "katib_trial",
    "serving_container",
    "kserve_rollout",
)


# ---------------------------------------------------------------- the report


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    detail: Any


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[dict[str, Any]]:
        """Time the block; its `detail` dict is the check's detail; an exception fails it."""
        detail: dict[str, Any] = {}
        started = time.monotonic()
        ok = True
        try:
            yield detail
        except Exception as exc:
            ok = False
            detail["error"] = f"{type(exc).__name__}: {exc}"
            detail["trace"] = traceback.format_exc(limit=-3).splitlines()[-6:]
        seconds = round(time.monotonic() - started, 1)
        self.checks.append(Check(name, ok, seconds, detail))
        mark = "ok  " if ok else "FAIL"
        summary = detail.get("error") or detail.get("summary", "")
        print(f"[rehearsal] {mark} {name:<22} {seconds:>7.1f} s  {summary}", flush=True)

    @property
    def ok(self) -> bool:
        names = {c.name for c in self.checks}
        return all(c.ok for c in self.checks) and set(REQUIRED_CHECKS) <= names

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"checks": [asdict(c) for c in self.checks], "ok": self.ok}
        path.write_text(json.dumps(body, indent=2, default=str))


# ---------------------------------------------------------------- images


def engine_env() -> dict[str, str]:
    """Prepare the container engine (`make container-host`) and return what it printed for the
    builds and clients: DOCKER_HOST (podman's socket) and BASE_IMAGE (the locally made base, where
    the pinned official one cannot be pulled)."""
    out = subprocess.run(
        ["make", "--no-print-directory", "container-host"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"make container-host failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    return parse_engine_output(out.stdout)


def parse_engine_output(stdout: str) -> dict[str, str]:
    """The `DOCKER_HOST=` and `BASE_IMAGE=` lines of `make container-host`'s output."""
    keys = ("DOCKER_HOST", "BASE_IMAGE")
    return dict(line.split("=", 1) for line in stdout.splitlines() if line.split("=", 1)[0] in keys)


def build_command(base_image: str | None) -> list[str]:
    """`make images`, with the locally made base passed as the Dockerfiles' BASE build argument
    (never tagged as the official name: their FROM pins that by digest)."""
    command = ["make", "--no-print-directory", "images"]
    if base_image:
        command.append(f"BASE_IMAGE={base_image}")
    return command


def build_images(detail: dict[str, Any], base_image: str | None = None) -> None:
    started = time.monotonic()
    detail["base"] = base_image or "the Dockerfiles' pinned default"
    out = subprocess.run(build_command(base_image), cwd=REPO_ROOT, capture_output=True, text=True)
    detail["build_seconds"] = round(time.monotonic() - started, 1)
    if out.returncode != 0:
        raise RuntimeError(f"make images failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")


def check_images(docker: Any, detail: dict[str, Any]) -> None:
    """Each image exists, runs as uid 10001, and carries none of the repository's files beside
    the installed package (its config, data, outputs or tests)."""
    probe = (
        "import os, pathlib, components; "
        "root = pathlib.Path(components.__file__).resolve().parents[1]; "
        "print(os.getuid(), [p for p in ('config/pipeline_config.yaml', "
        "'data/acs_employment_ma_2015_2018.parquet', 'outputs', 'tests/rehearsal') "
        "if (root / p).exists()])"
    )
    for image in IMAGES:
        if not docker.images.list(name=image):
            raise RuntimeError(f"{image} was not built")
        text = docker.containers.run(image, ["-c", probe], entrypoint=["python"], remove=True)
        uid, found = text.decode().strip().split(" ", 1)
        if uid != "10001" or found != "[]":
            raise RuntimeError(f"{image}: uid {uid}, repository folders inside: {found}")
        detail[image] = {"uid": int(uid), "size_mb": _image_mb(docker, image)}
    detail["summary"] = ", ".join(
        f"{i.split('/')[-1]} {d['size_mb']} MB" for i, d in ((i, detail[i]) for i in IMAGES)
    )


def _image_mb(docker: Any, image: str) -> int:
    return round(docker.images.get(image).attrs.get("Size", 0) / 2**20)


# ---------------------------------------------------------------- runs


@dataclass
class PipelineRun:
    name: str
    run_id: str
    tasks: list[TaskRun]
    seconds: float
    pipeline_root: Path

    @property
    def failed(self) -> list[TaskRun]:
        return [t for t in self.tasks if t.exit_code != 0]

    def task(self, function: str) -> TaskRun:
        return next(t for t in self.tasks if t.function == function)


class Rehearsal:
    """One rehearsal session: the services, a work folder outside the repository, runs."""

    def __init__(self, docker: Any, services: Services, work: Path, log: Callable = print):
        self.docker = docker
        self.services = services
        self.work = work
        self.log = log

    def compile(self, pipeline: str, sets: tuple[str, ...] = REHEARSAL_SETS) -> Package:
        """What `mlpipe compile --pipeline <p>` writes (the cluster profile), read back."""
        from pipelines.cli import main as mlpipe

        path = self.work / f"{pipeline}_pipeline.yaml"
        args = ["compile", "--pipeline", pipeline, "--output", str(path)]
        for item in sets:
            args += ["--set", item]
        if mlpipe(args) != 0:
            raise RuntimeError(f"mlpipe compile --pipeline {pipeline} failed")
        return load_package(path.read_bytes())

    def run(
        self, package: Package, params: dict[str, Any] | None = None, drop: tuple[str, ...] = ()
    ) -> PipelineRun:
        """Run the compiled package with kfp.local's DockerRunner, tasks as pods would run."""
        from kfp import components, local

        root = Path(tempfile.mkdtemp(prefix="kfp-", dir=self.work))
        root.chmod(0o777)  # the tasks' uid 10001 writes its outputs here
        path = self.work / f"{package.name}.yaml"
        path.write_bytes(package.yaml_bytes)
        pipeline = components.load_component_from_file(str(path))
        run_id = str(uuid.uuid4())
        pod = {
            "metadata": {
                "name": f"{package.name}-{run_id[:8]}",
                "namespace": PIPELINE_NAMESPACE,
                "uid": run_id,
                "labels": {"pipeline/runid": run_id},
            }
        }
        local.init(
            runner=local.DockerRunner(),
            pipeline_root=str(root),
            raise_on_error=False,
            enable_caching=False,
        )
        started = time.monotonic()
        umask = os.umask(0)  # folders kfp.local makes for outputs: writable by uid 10001
        try:
            with pod_like_containers(
                package.spec,
                package.platform,
                self.services.manifests,
                pod,
                HOSTS,
                self.log,
                drop,
            ) as tasks:
                pipeline(**(params or {}))
        finally:
            os.umask(umask)
        name = next(
            (p.name for p in sorted(root.iterdir()) if p.is_dir() and p.name != ".kfp_cache"),
            package.name,
        )
        return PipelineRun(name, run_id, tasks, round(time.monotonic() - started, 1), root)

    # ---------------------------------------------------------------- S3 and MLflow reads

    def s3_json(self, url: str) -> list[dict[str, Any]]:
        """Every JSON document under an s3:// prefix."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        out = []
        for obj in self._s3_list(bucket, prefix):
            if obj.endswith(".json"):
                body = self.services.s3.get_object(Bucket=bucket, Key=obj)["Body"].read()
                out.append(json.loads(body))
        return out

    def _s3_list(self, bucket: str, prefix: str) -> list[str]:
        pages = self.services.s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def s3_keys(self, url: str) -> list[str]:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return self._s3_list(bucket, prefix)


def upload(path: Path, url: str, services: Services) -> None:
    """`mlpipe data upload`, as kind-up runs it (S3 endpoint and keys from the environment)."""
    env = {**os.environ, **services.s3_env()}
    out = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "data", "upload", str(path), url],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"mlpipe data upload failed: {out.stdout}{out.stderr}")


def state_url(services: Services) -> str:
    env = services.manifests.config_map("mlpipe-pipeline-env", PIPELINE_NAMESPACE) or {}
    return env["MLPIPE_STATE_DIR"].rstrip("/")


def repository_paths(spec: dict[str, Any]) -> list[str]:
    """Defaults and constants of a compiled spec that point into this repository."""
    top = {p.name for p in REPO_ROOT.iterdir()}
    found = []

    def walk(node: Any, inside: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, inside or key in ("defaultValue", "constant"))
        elif isinstance(node, list):
            for value in node:
                walk(value, inside)
        elif isinstance(node, str) and inside:
            first = node.split("/", 1)[0]
            if (
                str(REPO_ROOT) in node
                or node.startswith(("sqlite:", "file:"))
                or ("/" in node and first in top)
            ):
                found.append(node)

    for component in [spec["root"], *spec["components"].values()]:
        walk(component.get("inputDefinitions", {}))
        walk(component.get("dag", {}))
    return found


# ---------------------------------------------------------------- checks


TRAINING_TASKS = {
    "ingest",
    "validate",
    "features",
    "tune",
    "train",
    "select_model",
    "evaluate",
    "track",
    "gate",
    "register",
    "deploy",
    "commit_ingest",
    "notify_failure",
}
MONITORING_TASKS = {
    "load_batch",
    "champion_reference",
    "batch_statistics",
    "assess",
    "act",
    "notify_failure",
}


def _ran(run: PipelineRun, expected: set[str], detail: dict[str, Any]) -> None:
    detail["run"] = run.name
    detail["seconds"] = run.seconds
    detail["tasks"] = {t.function: {"exit": t.exit_code, "seconds": t.seconds} for t in run.tasks}
    if run.failed:
        first = run.failed[0]
        raise RuntimeError(
            f"task {first.function} exited {first.exit_code}: " + " | ".join(first.log_tail[-5:])
        )
    missing = expected - {t.function for t in run.tasks}
    if missing:
        raise RuntimeError(f"tasks that never ran: {sorted(missing)}")
    detail["summary"] = f"{len(run.tasks)} tasks in {run.seconds:.0f} s, all exit 0"


def check_registered(
    reh: Rehearsal, run: PipelineRun, model_name: str, dataset_url: str, detail: dict[str, Any]
) -> None:
    """The run registered a version whose model files are objects in S3 and whose lineage tags
    name the data version that ingest read from S3 (its catalogue entry in the state store)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=MLFLOW_URL)
    versions = client.search_model_versions(
        f"name = '{model_name}' and tags.`mlpipe.pipeline_run` = '{run.name}'"
    )
    if not versions:
        raise RuntimeError(f"no version of {model_name} tagged with pipeline run {run.name}")
    version = versions[0]
    tags = dict(version.tags)
    uri = client.get_model_version_download_uri(model_name, version.version)
    # proxied artifacts: mlflow-artifacts:/<path> lives under the server's S3 destination
    storage = reh.services.manifests.config_map("mlpipe-storage", "mlpipe") or {}
    destination = storage["MLFLOW_ARTIFACTS_DESTINATION"].rstrip("/")
    if not uri.startswith("mlflow-artifacts:"):
        raise RuntimeError(f"the model is not in the proxied artifact store: {uri}")
    prefix = f"{destination}/{uri.split(':', 1)[1].lstrip('/')}"
    keys = reh.s3_keys(prefix)
    if not any(k.endswith("MLmodel") for k in keys):
        raise RuntimeError(f"no MLmodel under {prefix} (objects: {keys[:5]})")
    catalogue = [
        e for e in reh.s3_json(f"{state_url(reh.services)}/versions/") if e["source"] == dataset_url
    ]
    if not catalogue:
        raise RuntimeError(f"ingest left no catalogue entry for {dataset_url} in the state store")
    data_version = tags.get("mlpipe.data_version")
    if data_version not in {e["version"] for e in catalogue}:
        raise RuntimeError(f"lineage data_version {data_version!r} is not a version read from S3")
    if tags.get("mlpipe.data_source") != dataset_url:
        raise RuntimeError(f"lineage data_source {tags.get('mlpipe.data_source')!r}")
    aliases = list(client.get_model_version(model_name, version.version).aliases)
    detail.update(
        version=version.version,
        aliases=aliases,
        model_uri=uri,
        s3_objects=len(keys),
        s3_prefix=prefix,
        model_sha256=tags.get("mlpipe.model_manifest_sha256"),
        data_version=data_version,
        data_source=dataset_url,
        roc_auc=tags.get("metric.roc_auc"),
    )
    detail["summary"] = (
        f"v{version.version} {aliases} {len(keys)} objects under {prefix}; data {data_version}"
    )


def check_no_repo_paths(
    packages: list[Package], runs: list[PipelineRun], detail: dict[str, Any]
) -> None:
    """No compiled default points into the repository; the tasks' only mount (the pipeline root)
    is outside it; no local MLflow store appeared."""
    for package in packages:
        found = repository_paths(package.spec)
        if found:
            raise RuntimeError(f"{package.name}: defaults point into the repository: {found}")
    for run in runs:
        if run.pipeline_root.resolve().is_relative_to(REPO_ROOT):
            raise RuntimeError(f"the pipeline root {run.pipeline_root} is inside the repository")
        stores = [str(p) for p in run.pipeline_root.rglob("*.db")]
        if stores:
            raise RuntimeError(f"local stores appeared: {stores}")
    detail["summary"] = f"{len(packages)} specs, {len(runs)} runs: nothing of the repository"


def check_monitoring(
    reh: Rehearsal, run: PipelineRun, detail: dict[str, Any], expected_alerts: int
) -> None:
    _ran(run, MONITORING_TASKS, detail)
    alerts = reh.s3_json(f"{state_url(reh.services)}/logs/alerts/")
    drift = [a for a in alerts if a.get("kind") == "drift"]
    if len(drift) != 1:
        raise RuntimeError(f"expected one drift alert in the state store, found {len(drift)}")
    bodies = reh.services.webhook.bodies
    if len(bodies) != expected_alerts:
        raise RuntimeError(f"the webhook received {len(bodies)} alerts, not {expected_alerts}")
    detail["alert"] = drift[0]["title"]
    detail["summary"] += f"; alert: {drift[0]['title'][:80]}"


def check_retrain_requested(
    reh: Rehearsal, retraining: dict[str, Any], detail: dict[str, Any]
) -> None:
    """The act task created one KFP run of the uploaded training version, with the batch's
    window, as the pipeline's service account; the stand-in accepted it against the swagger."""
    created = [
        r
        for r in reh.services.kfp_requests()
        if r.get("method") == "POST" and r.get("path", "").endswith("/apis/v2beta1/runs")
    ]
    if len(created) != 1:
        raise RuntimeError(f"expected one run created through the KFP API, got {len(created)}")
    request = created[0]
    if request.get("errors") or request.get("status", 200) >= 400:
        raise RuntimeError(f"the KFP API refused the run: {request}")
    body = request["body"]
    ref = body["pipeline_version_reference"]
    if ref.get("pipeline_version_id") != retraining["version_id"]:
        raise RuntimeError(f"the run is not of the uploaded training version: {ref}")
    params = body.get("runtime_config", {}).get("parameters", {})
    window = params.get("ingestion", {}).get("window")
    if not window or int(window["end"]) != 2017:
        raise RuntimeError(f"the run's window does not end at the batch's year: {window}")
    if params.get("config", {}).get("data_ingestion", {}).get("window") != window:
        raise RuntimeError("the run's recorded config does not hold the window it trains on")
    if body.get("service_account") != retraining["service_account"]:
        raise RuntimeError(f"service account {body.get('service_account')!r}")
    triggers = reh.s3_json(f"{state_url(reh.services)}/monitor/retrain_triggers/")
    if [t.get("status") for t in triggers] != ["started"]:
        raise RuntimeError(f"trigger store: {triggers}")
    detail.update(window=window, version_id=ref["pipeline_version_id"], run=body["display_name"])
    detail["summary"] = f"run {body['display_name']} window {window} as {body['service_account']}"


# ---------------------------------------------------------------- main


@contextlib.contextmanager
def session(log: Callable = print) -> Iterator[Rehearsal]:
    """Container engine, services and a work folder outside the repository (images built)."""
    import docker

    engine = engine_env()
    os.environ.update({k: v for k, v in engine.items() if k == "DOCKER_HOST"})
    client = docker.from_env()
    work = Path(tempfile.mkdtemp(prefix="mlpipe-rehearsal-"))
    work.chmod(0o755)
    try:
        manifests = Rendered.overlay("kind")
        with cluster_services(client, manifests, PIPELINE_IMAGE, work) as services:
            yield Rehearsal(client, services, work, log)
    finally:
        client.close()
        shutil.rmtree(work, ignore_errors=True)


def shifted_batch(path: Path) -> Path:
    import pandas as pd

    from components.monitor.shift import shift_batch

    data = pd.read_parquet(DATASET)
    batch = data[data["year"] == 2017]
    shift_batch(batch, id_start=int(data["id"].max()) + 1).to_parquet(path)
    return path


def rehearse(report: Report, build: bool = True) -> None:
    import docker

    with report.check("images_built") as detail:
        engine = engine_env()
        os.environ.update({k: v for k, v in engine.items() if k == "DOCKER_HOST"})
        if build:
            build_images(detail, engine.get("BASE_IMAGE"))
        client = docker.from_env()
        check_images(client, detail)
        client.close()
    if not report.checks[-1].ok:
        return
    settings = load_settings(profile="cluster")
    dataset_url = settings.pipeline.data_ingestion.source_url
    with session() as reh:
        upload(DATASET, dataset_url, reh.services)
        training = reh.compile("training")
        with report.check("training_pipeline") as detail:
            train_run = reh.run(training)
            _ran(train_run, TRAINING_TASKS, detail)
        model_name = settings.pipeline.project.registered_model
        with report.check("model_registered_s3") as registered:
            check_registered(reh, train_run, model_name, dataset_url, registered)
        monitoring = reh.compile("monitoring")
        from components.common.kfp_client import KfpClient
        from pipelines.submit_cli import retraining_parameter
        from tests.rehearsal.services import KFP_URL

        retraining = retraining_parameter(KfpClient.from_env(host=KFP_URL), training, settings)
        upload(shifted_batch(reh.work / "batch.parquet"), BATCH_URL, reh.services)
        with report.check("monitoring_pipeline") as detail:
            monitor_run = reh.run(monitoring, {"source": BATCH_URL, "retraining": retraining})
            check_monitoring(reh, monitor_run, detail, expected_alerts=1)
        with report.check("retrain_requested") as detail:
            check_retrain_requested(reh, retraining, detail)
        with report.check("no_repo_paths") as detail:
            check_no_repo_paths([training, monitoring], [train_run, monitor_run], detail)
        with report.check("katib_trial") as detail:
            from tests.rehearsal.katib_check import check_katib_trial

            check_katib_trial(reh, detail)
        with report.check("serving_container") as detail:
            from tests.rehearsal.serving_check import check_serving_container

            check_serving_container(
                reh, registered["s3_prefix"], detail, model_sha256=registered.get("model_sha256")
            )
        with report.check("kserve_rollout") as detail:
            from tests.rehearsal.kserve_check import check_kserve_rollout

            check_kserve_rollout(reh, model_name, registered["version"], detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.rehearsal", description=__doc__)
    parser.add_argument("--report", default=str(REPORT), help="where report.json goes")
    parser.add_argument("--no-build", action="store_true", help="use the images already built")
    args = parser.parse_args(argv)
    report = Report()
    started = time.monotonic()
    try:
        rehearse(report, build=not args.no_build)
    except Exception as exc:  # set-up failed (services, upload, compile): say so in the report
        report.checks.append(Check("setup", False, 0.0, {"error": f"{type(exc).__name__}: {exc}"}))
        traceback.print_exc()
    report.write(Path(args.report))
    total = round(time.monotonic() - started, 1)
    verdict = "ok" if report.ok else "FAILED"
    print(f"[rehearsal] {verdict} in {total} s; report: {args.report}", flush=True)
    return 0 if report.ok else 1
