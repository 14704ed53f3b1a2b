"""The Katib v1beta1 Experiment of one tuning run, rendered as plain data (a dict: why not the
Katib SDK's typed models is in components/tune/README.md).

Its trials are batch/v1 Jobs running `python -m components.tune.trial` in the project's image; the
trial prints `cv_roc_auc=<running mean>` after each fold (medianstop judges trials on these) and
the objective is the *latest* value, i.e. the mean over all folds.

A trial reads its inputs from the project's own object store (what the tune task staged there:
components/tune/katib_staging.py) with the endpoint and credentials its template mounts from the
pipeline's ConfigMap (`runtime.env_config_map`) and the read-only S3 Secret (`katib.s3_secret`:
a trial writes nothing to the store), which must exist in the Experiment's namespace. Its pod
runs as uid 10001, non-root, no privilege escalation, no capabilities, seccomp RuntimeDefault,
without a service-account token (neither the trial nor Katib's StdOut collector sidecar talks to
the Kubernetes API: the collector reports over gRPC to Katib's DB manager and early-stopping
service — kubeflow/katib v0.19.0 cmd/metricscollector/v1beta1/file-metricscollector/main.go), with
CPU and memory requests and limits.

- `experiment_name` / `spec_hash`: a stable name and fingerprint for a spec.
- `trial_command`: the trial container's shell-safe command.
- `render_experiment`: the Experiment itself.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from components.common.images import PIPELINE_IMAGE
from components.common.k8s import KATIB_EXPERIMENT
from components.common.search_space import SearchSpace, to_katib

OBJECTIVE = "cv_roc_auc"
ADDITIONAL_METRICS = ("cv_roc_auc_std", "best_rounds")
CONTAINER = "trial"
TRIAL_NAME_PARAM = "trialName"
SPEC_HASH = "mlpipe.dev/spec-hash"
# a Job trial's end, as Katib's defaulting webhook would set it (experiment_defaults.go)
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")

DEFAULT_EARLY_STOPPING = {"min_trials_required": 5, "start_step": 1}
DEFAULT_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}
TRIAL_USER = 10001  # the pipeline image's USER
# Pod level, so that it also covers the collector sidecar Katib injects (its image, alpine, would
# run as root; under runAsNonRoot without a uid it could not start). As uid 10001 the sidecar can
# still do its work: read /proc of the shared PID namespace, tail the metrics file in the emptyDir
# Katib mounts (mode 0777), signal the trial's process (same uid) on early stopping.
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": TRIAL_USER,
    "runAsGroup": TRIAL_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": TRIAL_USER,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# what a trial takes from the pipeline's ConfigMap and S3 Secret (subsets of what every pipeline
# task gets: pipelines/platform.py); each optional, so a missing one fails the trial with a
# message instead of leaving its pod in CreateContainerConfigError until the experiment times out.
# Nothing of MLflow's: trials run training code and get no MLflow login (least privilege); the
# track task logs them from the history the tune task reads back from the Trials.
TRIAL_CONFIG_MAP_KEYS = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
TRIAL_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def experiment_name(algorithm: str, spec: Mapping[str, Any], prefix: str = "tune") -> str:
    """`tune-<algorithm>-<hash of the spec>`: at most 40 characters (Katib's webhook), and the same
    inputs give the same name, so a retried task finds its experiment instead of starting a second
    one."""
    digest = spec_hash(spec)[:8]
    stem = f"{prefix}-{algorithm}".lower().replace("_", "-")[: 40 - 9]
    return f"{stem.rstrip('-')}-{digest}"


def spec_hash(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _space_json(space: SearchSpace) -> dict[str, Any]:
    return {k: v.model_dump(mode="json", exclude_defaults=True) for k, v in space.items()}


def trial_command(
    algorithm: str,
    space: SearchSpace,
    train_uri: str,
    transformer_uri: str,
    fixed_params: Mapping[str, Any],
    cv_folds: int,
    cv_strategy: str,
    seed: int,
    folds_uri: str = "",
) -> list[str]:
    """The trial container's command: `sh -c '<one shell-quoted command>'`. Katib's StdOut
    collector joins the command with spaces and appends its own redirection, so every argument
    must survive a shell; a single `sh -c` string quoted here does, with or without the wrapper."""
    args = [
        "python",
        "-m",
        "components.tune.trial",
        "--algorithm",
        algorithm,
        "--train-data",
        train_uri,
        "--transformer",
        transformer_uri,
        "--cv-folds",
        str(cv_folds),
        "--cv-strategy",
        cv_strategy,
        "--seed",
        str(seed),
        "--fixed-params-json",
        json.dumps(dict(fixed_params), sort_keys=True, separators=(",", ":")),
        "--space-json",
        json.dumps(_space_json(space), sort_keys=True, separators=(",", ":")),
    ]
    if folds_uri:
        args += ["--folds", folds_uri]
    for name in space:
        args += ["--param", f"{name}=${{trialParameters.{name}}}"]
    return ["sh", "-c", shlex.join(args)]


def _settings(values: Mapping[str, Any]) -> list[dict[str, str]]:
    """`[{name, value}]` with string values: Katib's settings lists and a container's env."""
    return [{"name": k, "value": str(v)} for k, v in values.items()]


def _key_refs(kind: str, name: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    selector = "configMapKeyRef" if kind == "ConfigMap" else "secretKeyRef"
    return [
        {"name": k, "valueFrom": {selector: {"name": name, "key": k, "optional": True}}}
        for k in keys
    ]


def _checked_resources(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(dict(resources or DEFAULT_RESOURCES))
    for part in ("requests", "limits"):
        missing = [r for r in ("cpu", "memory") if r not in (out.get(part) or {})]
        if missing:
            raise ValueError(f"katib.resources: {part} needs {missing} (trial pods are bounded)")
    return out


def render_experiment(
    *,
    name: str | None = None,
    namespace: str,
    algorithm: str,
    space: SearchSpace,
    train_uri: str,
    transformer_uri: str,
    folds_uri: str = "",
    fixed_params: Mapping[str, Any] | None = None,
    cv_folds: int = 3,
    cv_strategy: str = "stratified",
    seed: int = 42,
    max_trials: int = 20,
    parallel_trials: int = 2,
    max_failed_trials: int | None = None,
    katib_algorithm: str = "tpe",
    algorithm_settings: Mapping[str, Any] | None = None,
    goal: float | None = None,
    early_stopping: Mapping[str, Any] | None = DEFAULT_EARLY_STOPPING,
    image: str = PIPELINE_IMAGE,
    resources: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    env_from_secrets: tuple[str, ...] | list[str] = (),
    env_config_map: str | None = None,
    s3_secret: str | None = None,
    service_account: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Katib v1beta1 Experiment tuning `algorithm` over `space` by `cv_folds`-fold CV.

    `max_failed_trials` defaults to `max_trials`: like the local study, failed trials are tolerated
    and the experiment fails only when every trial has failed. `early_stopping` is medianstop's
    settings (None: off); `start_step` counts folds, so it must not exceed `cv_folds`.
    `env_config_map` / `s3_secret`: the ConfigMap and Secret (in `namespace`) the trial takes the
    object store's endpoint and credentials from (TRIAL_CONFIG_MAP_KEYS, TRIAL_SECRET_KEYS);
    `folds_uri`: the staged folds.
    """
    if not space:
        raise ValueError(f"{algorithm}: the search space is empty")
    fixed = dict(fixed_params or {})
    clash = sorted(set(fixed) & set(space))
    if clash:
        raise ValueError(f"{algorithm}: {clash} both fixed and searched")
    for pname, spec in space.items():
        if not _SHELL_SAFE.match(pname):
            raise ValueError(f"parameter name {pname!r}: use letters, digits, '_', '.', '-'")
        for choice in spec.choices or []:
            if not _SHELL_SAFE.match(str(choice)):
                raise ValueError(
                    f"{pname}: choice {choice!r} cannot travel through Katib's trial template "
                    "(letters, digits, '_', '.', '+', '-' only)"
                )
    if early_stopping is not None and int(early_stopping.get("start_step", 1)) > cv_folds:
        raise ValueError(
            f"medianstop start_step {early_stopping['start_step']} exceeds cv_folds {cv_folds}: "
            "a trial reports one value per fold, so the rule would never apply"
        )
    settings = dict(algorithm_settings or {})
    if katib_algorithm in ("tpe", "random", "multivariate-tpe") and seed >= 0:
        settings.setdefault("random_state", seed)  # a seeded suggestion service (S)

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": trial_command(
            algorithm,
            space,
            train_uri,
            transformer_uri,
            fixed,
            cv_folds,
            cv_strategy,
            seed,
            folds_uri,
        ),
        "env": [
            {"name": "KATIB_TRIAL_NAME", "value": f"${{trialParameters.{TRIAL_NAME_PARAM}}}"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            *(
                _key_refs("ConfigMap", env_config_map, TRIAL_CONFIG_MAP_KEYS)
                if env_config_map
                else []
            ),
            *(_key_refs("Secret", s3_secret, TRIAL_SECRET_KEYS) if s3_secret else []),
            *_settings(env or {}),
        ],
        "resources": _checked_resources(resources),
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    if env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in env_from_secrets]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # nothing in a trial pod talks to the Kubernetes API (see the module's docstring)
        "automountServiceAccountToken": False,
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [container],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,  # a failed trial is a result, not something to retry
            "template": {
                # Katib's metrics collector is a sidecar: keep Istio's out of the trial pod
                "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": pod_spec,
            },
        },
    }
    metric_names = [OBJECTIVE, *ADDITIONAL_METRICS]
    objective: dict[str, Any] = {
        "type": "maximize",
        "objectiveMetricName": OBJECTIVE,
        "additionalMetricNames": list(ADDITIONAL_METRICS),
        # the trial reports a running mean per fold: the last value is the CV mean (the default
        # strategy for maximize, `max`, would pick the best partial mean instead)
        "metricStrategies": [{"name": m, "value": "latest"} for m in metric_names],
    }
    if goal is not None:
        objective["goal"] = float(goal)
    spec: dict[str, Any] = {
        "objective": objective,
        "algorithm": {"algorithmName": katib_algorithm},
        "parameters": to_katib(space),
        "maxTrialCount": int(max_trials),
        "parallelTrialCount": int(min(parallel_trials, max_trials)),
        "maxFailedTrialCount": int(max_trials if max_failed_trials is None else max_failed_trials),
        "resumePolicy": "Never",
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "trialTemplate": {
            "primaryContainerName": CONTAINER,
            "successCondition": JOB_SUCCESS,
            "failureCondition": JOB_FAILURE,
            "trialParameters": [
                *({"name": p, "reference": p, "description": f"{algorithm} {p}"} for p in space),
                {
                    "name": TRIAL_NAME_PARAM,
                    "reference": "${trialSpec.Name}",
                    "description": "the trial's name (its log lines)",
                },
            ],
            "trialSpec": job,
        },
    }
    if settings:
        spec["algorithm"]["algorithmSettings"] = _settings(settings)
    if early_stopping is not None:
        spec["earlyStopping"] = {
            "algorithmName": "medianstop",
            "algorithmSettings": _settings(early_stopping),
        }
    digest = spec_hash(spec)
    return {
        "apiVersion": KATIB_EXPERIMENT.api_version,
        "kind": KATIB_EXPERIMENT.kind,
        "metadata": {
            "name": name or experiment_name(algorithm, spec),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "mlpipe",
                "mlpipe.dev/algorithm": algorithm.replace("_", "-"),
                **(labels or {}),
            },
            "annotations": {SPEC_HASH: digest[:16]},
        },
        "spec": spec,
    }
