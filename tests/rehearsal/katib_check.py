"""Rehearsal check: a Katib trial as its pod runs it.

The tune task's staging (components/tune/katib_staging.py, with the pipeline pod's environment:
the state store of ConfigMap `mlpipe-pipeline-env` in `kubeflow`, the rehearsal's S3) puts the
features of a sample of the bundled data where trials read them; the Experiment is rendered by
the function the task uses (`katib_launcher.task_experiment`, cluster profile). Then, for each of
two parameter assignments, its trial template is filled in as Katib's controller fills it
(kubeflow/katib v0.19.0 pkg/controller.v1beta1/experiment/manifest/generator.go,
`applyParameters`: `${trialParameters.<name>}` replaced in the template's text), its command
wrapped as Katib's StdOut collector wraps it (pkg/webhook/v1beta1/pod/utils.go,
`wrapWorkerContainer`: `sh -c '<command> 1>/var/log/katib/metrics.log 2>&1 && echo completed >
/var/log/katib/$$$$.pid'`; the early-stopping branch is left out), and run as a container of the
pipeline image with the template's own env resolved from the kind overlay's ConfigMap and Secret
in the Experiment's namespace (as the kubelet would), its uid, no capabilities and no privilege
escalation, its CPU and memory limits, on the host network with the cluster's Service names in
/etc/hosts. The metrics file is parsed the way the collector parses text
(pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go,
`parseLogsInTextFormat`, with `DefaultFilter` of pkg/metricscollector/v1beta1/common/const.go);
the objective (`latest`) must equal the local backend's cross-validation of the same parameters on
its own folds, computed here.

    python -m tests.rehearsal.katib_check [--image IMAGE]

runs it alone: it takes /tmp/mlpipe-rehearsal.lock itself (the services' ports are fixed; do not
wrap it in flock(1) on the same file), starts the rehearsal's services with MLflow in `--image`,
and needs the container engine (`make container-host`) and that image built.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from components.common.images import PIPELINE_IMAGE
from components.common.runtime_env import temporary_environ
from components.common.search_space import SearchSpace, decode
from tests.rehearsal.pod_env import KUBELET_ENV, PIPELINE_NAMESPACE
from tests.rehearsal.services import HOSTS
from tests.support.manifests import quantity_bytes, quantity_cpus

# kubeflow/katib v0.19.0 pkg/metricscollector/v1beta1/common/const.go, DefaultFilter (Go's RE2:
# \w and \d are ASCII)
KATIB_FILTER = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)", re.ASCII)
METRICS_DIR = "/var/log/katib"  # the StdOut collector's file: pkg/webhook/v1beta1/pod/utils.go
ALGORITHM = "lightgbm"
SAMPLE_ROWS = 4000


def katib_fill(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The trial's object as Katib's controller makes it: every `${trialParameters.<name>}` in
    the template's text replaced by the value."""
    text = json.dumps(template)
    for name, value in values.items():
        text = text.replace(f"${{trialParameters.{name}}}", value)
    if "${trialParameters." in text:
        raise ValueError(f"unfilled trial parameters in {text[:200]}...")
    return json.loads(text)


def stdout_wrap(command: list[str]) -> list[str]:
    """The primary container's command as the StdOut collector's webhook rewrites it."""
    args = list(command)
    shell = ["sh", "-c"]
    if args[:2] in (["sh", "-c"], ["bash", "-c"]):
        shell, args = args[:2], args[2:]
    args += [f"1>{METRICS_DIR}/metrics.log 2>&1", "&&", f"echo completed > {METRICS_DIR}/$$$$.pid"]
    return [*shell, " ".join(args)]


def katib_text_metrics(log: str, names: list[str]) -> dict[str, list[float]]:
    """parseLogsInTextFormat: lines naming a metric, the filter's name=value matches, in order."""
    out: dict[str, list[float]] = {n: [] for n in names}
    for line in log.splitlines():
        if not any(n in line for n in names):
            continue
        for match in KATIB_FILTER.finditer(line):
            name = match.group(1).strip()
            if name in out:
                out[name].append(float(match.group(2).strip()))
    return out


def assignments(space: SearchSpace) -> list[dict[str, str]]:
    """Two assignments as Katib's suggestion services hand them over: strings, ints as floats
    (hyperopt's `87.0`) in the second."""
    out = []
    for q, int_text in ((0.35, lambda v: str(v)), (0.7, lambda v: f"{float(v)}")):
        values = {}
        for i, (name, spec) in enumerate(space.items()):
            if spec.type == "categorical":
                values[name] = str(spec.choices[(i + int(q * 10)) % len(spec.choices)])
                continue
            low, high = float(spec.low), float(spec.high)
            if spec.log:
                value = math.exp(math.log(low) + q * (math.log(high) - math.log(low)))
            else:
                value = low + q * (high - low)
            values[name] = int_text(round(value)) if spec.type == "int" else f"{value:.6g}"
        out.append(values)
    return out


def _features(work: Path) -> tuple[str, str]:
    """The features stage's output for a sample of the bundled data."""
    import pandas as pd

    from components.common.config import load_settings
    from components.features.features import run as build_features
    from tests.rehearsal.rehearsal import DATASET

    settings = load_settings(profile="cluster")
    root = work / "katib-inputs"
    root.mkdir(parents=True, exist_ok=True)
    src = root / "data.parquet"
    pd.read_parquet(DATASET).sample(n=SAMPLE_ROWS, random_state=7).to_parquet(src)
    build_features(
        str(src),
        settings.schema_.model_dump(mode="json"),
        settings.pipeline.feature_engineering.model_dump(mode="json"),
        str(root / "train.parquet"),
        str(root / "test.parquet"),
        str(root / "transformer"),
    )
    return str(root / "train.parquet"), str(root / "transformer")


def check_katib_trial(reh: Any, detail: dict[str, Any], image: str = PIPELINE_IMAGE) -> None:
    """Run two trials of the rendered Experiment as their pods would; raise when one fails, its
    metrics do not parse, or its objective differs from the local backend's. `reh` needs
    `.docker` (a docker-py client), `.services` (`.manifests`: the kind overlay, `.s3_env()`:
    the S3 API on this machine) and `.work` (a folder)."""
    from components.common.artifacts import load_model, read_dataset
    from components.common.config import load_pipeline_config
    from components.common.runtime_env import STATE_ENV
    from components.tune.cv import cross_validate
    from components.tune.katib_launcher import task_experiment, task_folds
    from components.tune.katib_render import ADDITIONAL_METRICS, OBJECTIVE, TRIAL_NAME_PARAM
    from components.tune.katib_staging import (
        remove_staged,
        stage_inputs,
        staging_base,
        staging_key,
    )
    from components.tune.tune import fixed_params
    from tests.support.katib_admission import validate_experiment

    manifests = reh.services.manifests
    cfg = load_pipeline_config(profile="cluster")
    training, katib = cfg.model_training, cfg.model_training.katib
    namespace = katib.namespace or "mlpipe"
    space = training.search_spaces[ALGORITHM]
    fixed = fixed_params(training, ALGORITHM)
    if not reh.docker.images.list(name=image):
        raise RuntimeError(f"image {image} is not built (make images IMAGES=pipeline)")

    train_path, tf_path = _features(Path(reh.work))
    # the tune task's environment: its pod's state store, the S3 API of this machine
    pod_cm = manifests.config_map(cfg.runtime.env_config_map, PIPELINE_NAMESPACE) or {}
    task_env = {"MLPIPE_CLUSTER": "1", STATE_ENV: pod_cm[STATE_ENV], **reh.services.s3_env()}
    with temporary_environ(task_env):
        base = staging_base(katib.staging_url)
        splits = task_folds(train_path, tf_path, training)
        staged = stage_inputs(
            train_path, tf_path, splits, base, staging_key(ALGORITHM, "rehearsal", str(time.time()))
        )
    detail["staged"] = staged.prefix
    try:
        experiment = task_experiment(namespace, ALGORITHM, space, fixed, training, katib, staged)
        problems = validate_experiment(experiment)
        if problems:
            raise AssertionError(f"the rendered Experiment would be refused: {problems}")
        template = experiment["spec"]["trialTemplate"]["trialSpec"]
        pod = template["spec"]["template"]["spec"]
        detail["pod"] = {
            "automountServiceAccountToken": pod.get("automountServiceAccountToken"),
            "securityContext": pod.get("securityContext"),
        }
        train = read_dataset(train_path)
        transformer, spec = load_model(tf_path)
        detail["trials"] = []
        for n, values in enumerate(assignments(space)):
            trial_name = f"{experiment['metadata']['name']}-r{n}"
            job = katib_fill(template, {**values, TRIAL_NAME_PARAM: trial_name})
            trial = _run_trial(reh, job, namespace, image, Path(reh.work) / f"trial-{n}")
            trial["name"] = trial_name
            found = katib_text_metrics(trial.pop("log"), [OBJECTIVE, *ADDITIONAL_METRICS])
            if not found[OBJECTIVE]:
                raise AssertionError(f"trial {n}: no {OBJECTIVE} the collector parses: {trial}")
            params = decode(space, values)
            local = cross_validate(
                train,
                spec,
                transformer,
                ALGORITHM,
                {**fixed, **params},
                training.cv_folds,
                training.cv_strategy,
                training.seed,
            )
            objective = found[OBJECTIVE][-1]  # metricStrategies: latest
            trial.update(
                assignments=values,
                metrics=found,
                objective=objective,
                local_objective=round(local.mean, 9),
                difference=abs(objective - local.mean),
            )
            detail["trials"].append(trial)
            if len(found[OBJECTIVE]) != training.cv_folds:
                raise AssertionError(f"trial {n}: {len(found[OBJECTIVE])} fold reports")
            if objective != float(f"{local.mean:.6f}"):  # the trial prints 6 decimals
                raise AssertionError(
                    f"trial {n}: objective {objective} but the local backend scores "
                    f"{local.mean:.9f} for the same parameters and folds"
                )
        # trial pods get nothing of MLflow's (least privilege): the track task logs the trials
        (container,) = pod["containers"]
        resolved = manifests.container_env(container, namespace)
        detail["mlflow_env"] = sorted(k for k in resolved if k.startswith("MLFLOW_"))
        if detail["mlflow_env"]:
            raise AssertionError(f"trial pods get MLflow settings: {detail['mlflow_env']}")
        detail["summary"] = ", ".join(
            f"{t['objective']:.6f} = local {t['local_objective']:.6f}" for t in detail["trials"]
        )
    finally:
        with temporary_environ(task_env):
            problem = remove_staged(staged.prefix)
            keys = reh.services.s3.list_objects_v2(
                Bucket=staged.prefix.removeprefix("s3://").split("/", 1)[0],
                Prefix=staged.prefix.removeprefix("s3://").split("/", 1)[1],
            ).get("KeyCount", 0)
        detail["staged_removed"] = problem is None and keys == 0


def _run_trial(reh: Any, job: dict[str, Any], namespace: str, image: str, logs: Path) -> dict:
    """The trial pod's primary container, as the kubelet would start it after Katib's webhook."""
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc, psc = container.get("securityContext", {}), pod.get("securityContext", {})
    env = {**KUBELET_ENV, **reh.services.manifests.container_env(container, namespace)}
    logs.mkdir(parents=True, exist_ok=True)
    logs.chmod(0o777)  # the emptyDir Katib mounts
    limits = container["resources"]["limits"]
    user = sc.get("runAsUser", psc.get("runAsUser"))
    group = sc.get("runAsGroup", psc.get("runAsGroup", user))
    started = time.monotonic()
    run = reh.docker.containers.run(
        image=image,
        entrypoint=stdout_wrap(container["command"])[:2],
        command=stdout_wrap(container["command"])[2:],
        environment=env,
        user=f"{user}:{group}",
        cap_drop=["ALL"] if "ALL" in sc.get("capabilities", {}).get("drop", []) else None,
        security_opt=["no-new-privileges"] if sc.get("allowPrivilegeEscalation") is False else None,
        nano_cpus=int(quantity_cpus(limits["cpu"]) * 1e9),
        mem_limit=quantity_bytes(limits["memory"]),
        volumes={str(logs): {"bind": METRICS_DIR, "mode": "rw"}},
        network_mode="host",
        extra_hosts=HOSTS,
        detach=True,
        name=f"mlpipe-rehearsal-katib-trial-{time.time_ns()}",
    )
    try:
        code = int(run.wait(timeout=900)["StatusCode"])
        console = run.logs().decode(errors="replace")
    finally:
        run.remove(force=True)
    metrics = logs / "metrics.log"
    log = metrics.read_text() if metrics.is_file() else ""
    completed = any(p.read_text().strip() == "completed" for p in logs.glob("*.pid"))
    result = {
        "exit_code": code,
        "seconds": round(time.monotonic() - started, 1),
        "completed_marker": completed,
        "env_keys": sorted(env),
        "log": log,
    }
    if code != 0 or not completed:
        raise AssertionError(f"trial container exited {code}: {log[-2000:]}{console[-1000:]}")
    return result


# ---------------------------------------------------------------- standalone


@contextlib.contextmanager
def _services(work: Path, image: str) -> Iterator[Any]:
    """The rehearsal's services (S3, MLflow in `image`, ...) without `make container-host` and
    the image build of `session()`: the engine and the image must be there already."""
    import docker

    from tests.rehearsal.rehearsal import Rehearsal
    from tests.rehearsal.services import cluster_services
    from tests.support.manifests import Rendered

    os.environ.setdefault("DOCKER_HOST", "unix:///run/podman/podman.sock")
    client = docker.from_env()
    try:
        with cluster_services(client, Rendered.overlay("kind"), image, work) as services:
            yield Rehearsal(client, services, work)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import fcntl
    import shutil

    parser = argparse.ArgumentParser(prog="python -m tests.rehearsal.katib_check")
    parser.add_argument("--image", default=PIPELINE_IMAGE)
    args = parser.parse_args(argv)
    with open("/tmp/mlpipe-rehearsal.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the services' ports are fixed
        work = Path(tempfile.mkdtemp(prefix="mlpipe-katib-check-"))
        work.chmod(0o755)
        detail: dict[str, Any] = {}
        ok = True
        try:
            with _services(work, args.image) as reh:
                check_katib_trial(reh, detail, image=args.image)
        except Exception as exc:
            ok = False
            detail["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(detail, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
