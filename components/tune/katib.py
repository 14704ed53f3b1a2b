"""Cluster tuning backend: a Katib v1beta1 Experiment, rendered as plain data, checked offline,
submitted through the Kubernetes adapter, waited on, and read back into the local backend's result.

- `render_experiment`: the Experiment (a dict: kubeflow-katib 0.14's model classes lack
  `FeasibleSpace.distribution`). Its trials are batch/v1 Jobs running `python -m
  components.tune.trial` in the project's image; the trial prints `cv_roc_auc=<running mean>` after
  each fold (medianstop judges trials on these) and the objective is the *latest* value, i.e. the
  mean over all folds.
- `validate_experiment`: the swagger schema plus the admission rules of Katib's webhook, the
  setting checks of the suggestion and early-stopping services, and a few rules of this project.
- `run_katib`: create, poll until Succeeded / Failed / timeout, return the optimal trial.

Where the rules come from (kubeflow/katib, master in 2026):
  W = pkg/webhook/v1beta1/experiment/validator/validator.go (ValidateExperiment)
  D = pkg/apis/controller/experiments/v1beta1/experiment_defaults.go (the mutating webhook runs
      first, so validation sees defaulted objects)
  S = pkg/suggestion/v1beta1/{hyperopt,optuna}/service.py (ValidateAlgorithmSettings)
  E = pkg/earlystopping/v1beta1/medianstop/service.py (ValidateEarlyStoppingSettings)
  K = the algorithm, early-stopping and collector lists of manifests/.../katib-config.yaml
  P = this project (what would otherwise fail later, at trial or suggestion time)
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import shlex
import time
from collections.abc import Callable, Mapping
from typing import Any

from components.common.config import KatibConfig
from components.common.errors import StageError
from components.common.images import PIPELINE_IMAGE
from components.common.k8s import (
    KATIB_EXPERIMENT,
    KATIB_TRIAL,
    AlreadyExists,
    Forbidden,
    KubernetesAdapter,
    KubernetesError,
    NotFound,
    WaitTimeout,
    schema_errors,
    wait_for,
)
from components.common.search_space import SearchSpace, decode, to_katib

STAGE = "tune"
OBJECTIVE = "cv_roc_auc"
ADDITIONAL_METRICS = ("cv_roc_auc_std", "best_rounds")
CONTAINER = "trial"
TRIAL_NAME_PARAM = "trialName"
SPEC_HASH = "mlpipe.dev/spec-hash"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"

# K: katib-config.yaml (runtime.suggestions / earlyStoppings / metricsCollectors)
ALGORITHMS = (
    "random",
    "tpe",
    "grid",
    "hyperband",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "multivariate-tpe",
    "enas",
    "darts",
    "pbt",
)
EARLY_STOPPING_ALGORITHMS = ("medianstop",)
COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "Push")
PARAMETER_TYPES = ("double", "int", "categorical", "discrete")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
RESUME_POLICIES = ("", "Never", "LongRunning", "FromVolume")
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?")  # W: unanchored at the end, as in Katib
_PARAM_REF = re.compile(r"\$\{trialParameters\..+?\}")
_META_REF = re.compile(r"\$\{trialSpec\.(.+?)\}")
_META_INDEX = re.compile(r"(.+)\[(.+)]")
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")

DEFAULT_EARLY_STOPPING = {"min_trials_required": 5, "start_step": 1}
DEFAULT_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}


# ---------------------------------------------------------------- render


def experiment_name(algorithm: str, spec: Mapping[str, Any], prefix: str = "tune") -> str:
    """`tune-<algorithm>-<hash of the spec>`: at most 40 characters (W), and the same inputs give
    the same name, so a retried task finds its experiment instead of starting a second one."""
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
    for name in space:
        args += ["--param", f"{name}=${{trialParameters.{name}}}"]
    return ["sh", "-c", shlex.join(args)]


def _settings(values: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in values.items()]


def render_experiment(
    *,
    name: str | None = None,
    namespace: str,
    algorithm: str,
    space: SearchSpace,
    train_uri: str,
    transformer_uri: str,
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
    service_account: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Katib v1beta1 Experiment tuning `algorithm` over `space` by `cv_folds`-fold CV.

    `max_failed_trials` defaults to `max_trials`: like the local study, failed trials are tolerated
    and the experiment fails only when every trial has failed. `early_stopping` is medianstop's
    settings (None: off); `start_step` counts folds, so it must not exceed `cv_folds`.
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
            algorithm, space, train_uri, transformer_uri, fixed, cv_folds, cv_strategy, seed
        ),
        "env": [
            {"name": "KATIB_TRIAL_NAME", "value": f"${{trialParameters.{TRIAL_NAME_PARAM}}}"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            *({"name": k, "value": str(v)} for k, v in (env or {}).items()),
        ],
        "resources": copy.deepcopy(dict(resources or DEFAULT_RESOURCES)),
    }
    if env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in env_from_secrets]
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
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
                    "description": "the trial's name (MLflow tag)",
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


# ---------------------------------------------------------------- validate


def apply_defaults(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with the defaults Katib's mutating webhook sets before validation (D)."""
    obj = copy.deepcopy(dict(experiment))
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return obj
    spec.setdefault("parallelTrialCount", 3)
    spec.setdefault("resumePolicy", "Never")
    objective = spec.get("objective")
    if isinstance(objective, dict):
        strategies = objective.setdefault("metricStrategies", [])
        named = {s.get("name") for s in strategies if isinstance(s, dict)}
        default = {"minimize": "min", "maximize": "max"}.get(objective.get("type"), "latest")
        for metric in [
            objective.get("objectiveMetricName"),
            *objective.get("additionalMetricNames", []),
        ]:
            if metric not in named:
                strategies.append({"name": metric, "value": default})
                named.add(metric)
    template = spec.get("trialTemplate")
    trial_spec = template.get("trialSpec") if isinstance(template, dict) else None
    if isinstance(trial_spec, dict) and trial_spec.get("kind") == "Job":
        template.setdefault("successCondition", JOB_SUCCESS)
        template.setdefault("failureCondition", JOB_FAILURE)
    collector = spec.setdefault("metricsCollectorSpec", {})
    if isinstance(collector, dict):
        kind = collector.setdefault("collector", {"kind": "StdOut"}).get("kind")
        source = collector.get("source") or {}
        if kind in ("File", "TensorFlowEvent"):
            fs = source.setdefault("fileSystemPath", {})
            if kind == "File":
                fs.setdefault("kind", "File")
                fs.setdefault("path", "/var/log/katib/metrics.log")
                fs.setdefault("format", "TEXT")
            else:
                fs.setdefault("kind", "Directory")
                fs.setdefault("path", "/var/log/katib/tfevent/")
            collector["source"] = source
        elif kind == "PrometheusMetric":
            http = source.setdefault("httpGet", {})
            http.setdefault("path", "/metrics")
            http.setdefault("port", 8080)
            collector["source"] = source
    for param in spec.get("parameters") or []:
        if isinstance(param, dict) and isinstance(param.get("feasibleSpace"), dict):
            param["feasibleSpace"].setdefault("distribution", "uniform")
    return obj


def validate_experiment(experiment: Mapping[str, Any]) -> list[str]:
    """Why Katib would refuse `experiment` (empty: it would not). Each reason names its field."""
    errors = [f"schema: {e}" for e in schema_errors(dict(experiment))]
    if errors:  # the rules below read the fields, so they need the right shapes
        return errors
    obj = apply_defaults(experiment)
    spec = obj.get("spec") or {}
    errors += _counts(obj, spec)
    errors += _objective(spec.get("objective"))
    errors += _algorithm(spec)
    errors += _early_stopping(spec.get("earlyStopping"))
    if spec.get("resumePolicy", "") not in RESUME_POLICIES:
        errors.append(f"spec.resumePolicy: {spec['resumePolicy']!r} is not a ResumePolicyType (W)")
    errors += _trial_template(spec)
    params, nas = spec.get("parameters") or [], spec.get("nasConfig")
    if not params and nas is None:
        errors.append("spec: spec.parameters or spec.nasConfig must be specified (W)")
    if params and nas is not None:
        errors.append("spec: only one of spec.parameters and spec.nasConfig can be specified (W)")
    errors += _parameters(params)
    errors += _collector(spec.get("metricsCollectorSpec") or {})
    return errors


def _counts(obj: dict, spec: dict) -> list[str]:
    errors = []
    name = (obj.get("metadata") or {}).get("name", "")
    if not _NAME.match(name) or len(name) > 40:
        errors.append(
            f"metadata.name: {name!r} must start with a lowercase letter, consist of lowercase "
            "alphanumerics or '-', and be at most 40 characters (W)"
        )
    failed, total, parallel = (
        spec.get("maxFailedTrialCount"),
        spec.get("maxTrialCount"),
        spec.get("parallelTrialCount"),
    )
    if failed is not None and failed < 0:
        errors.append(f"spec.maxFailedTrialCount: {failed} should not be less than 0 (W)")
    if total is not None and total <= 0:
        errors.append(f"spec.maxTrialCount: {total} must be greater than 0 (W)")
    if parallel is not None and parallel <= 0:
        errors.append(f"spec.parallelTrialCount: {parallel} must be greater than 0 (W)")
    if failed is not None and total is not None and failed > total:
        errors.append(
            f"spec.maxFailedTrialCount: {failed} should be less than or equal to "
            f"spec.maxTrialCount {total} (W)"
        )
    if parallel is not None and total is not None and parallel > total:
        errors.append(
            f"spec.parallelTrialCount: {parallel} should be less than or equal to "
            f"spec.maxTrialCount {total} (W)"
        )
    return errors


def _objective(objective: Any) -> list[str]:
    if not objective:
        return ["spec.objective: must be specified (W)"]
    errors = []
    if objective.get("type") not in ("minimize", "maximize"):
        errors.append(
            f"spec.objective.type: {objective.get('type')!r} must be minimize or maximize (W)"
        )
    metric = objective.get("objectiveMetricName", "")
    if not metric:
        errors.append("spec.objective.objectiveMetricName: must be specified (W)")
    additional = objective.get("additionalMetricNames") or []
    if metric and metric in additional:
        errors.append(
            "spec.objective.additionalMetricNames: should not contain "
            f"spec.objective.objectiveMetricName {metric!r} (W)"
        )
    known = {metric, *additional}
    for strategy in objective.get("metricStrategies") or []:
        if strategy.get("value") not in ("min", "max", "latest"):
            errors.append(
                f"spec.objective.metricStrategies[{strategy.get('name')}]: "
                f"{strategy.get('value')!r} is not min, max or latest (P)"
            )
        if strategy.get("name") not in known:
            errors.append(
                f"spec.objective.metricStrategies: {strategy.get('name')!r} is not the objective "
                "or an additional metric (P)"
            )
    return errors


def _int_setting(value: str, check: Callable[[float], bool], rule: str) -> str | None:
    try:
        ok = check(int(value))
    except (TypeError, ValueError) as exc:
        return f"failed to validate ({value}): {exc}"
    return None if ok else rule


def _float_setting(value: str, check: Callable[[float], bool], rule: str) -> str | None:
    try:
        ok = check(float(value))
    except (TypeError, ValueError) as exc:
        return f"failed to validate ({value}): {exc}"
    return None if ok else rule


# S: the settings each suggestion service accepts (unknown settings are refused)
_ALGORITHM_SETTINGS: dict[str, dict[str, Callable[[str], str | None]]] = {
    "tpe": {  # hyperopt
        "gamma": lambda v: _float_setting(v, lambda x: 0 < x < 1, "gamma should be in (0, 1)"),
        "prior_weight": lambda v: _float_setting(v, lambda x: x > 0, "prior_weight must be > 0"),
        "n_EI_candidates": lambda v: _int_setting(
            v, lambda x: x > 0, "n_EI_candidates must be > 0"
        ),
        "random_state": lambda v: _int_setting(v, lambda x: x >= 0, "random_state must be >= 0"),
    },
    "random": {
        "random_state": lambda v: _int_setting(v, lambda x: x >= 0, "random_state must be >= 0"),
    },
    "multivariate-tpe": {  # optuna
        name: (lambda v, n=name: _int_setting(v, lambda x: x >= 0, f"{n} must be >= 0"))
        for name in ("n_startup_trials", "n_ei_candidates", "random_state")
    },
}


def _algorithm(spec: dict) -> list[str]:
    algorithm = spec.get("algorithm")
    if not algorithm:
        return ["spec.algorithm: must be specified (W)"]
    name = algorithm.get("algorithmName", "")
    if not name:
        return ["spec.algorithm.algorithmName: must be specified (W)"]
    if name not in ALGORITHMS:
        return [
            f"spec.algorithm.algorithmName: unknown algorithm {name!r}: no Suggestion config "
            f"for it (W, K: one of {', '.join(ALGORITHMS)})"
        ]
    errors = []
    rules = _ALGORITHM_SETTINGS.get(name)
    for setting in algorithm.get("algorithmSettings") or []:
        if rules is None:
            break
        check = rules.get(setting.get("name"))
        problem = (
            check(setting.get("value"))
            if check
            else f"unknown setting {setting.get('name')!r} for algorithm {name}"
        )
        if problem:
            errors.append(f"spec.algorithm.algorithmSettings: {problem} (S)")
    if name == "cmaes":
        continuous = [p for p in spec.get("parameters") or [] if p.get("parameterType") == "double"]
        if len(continuous) < 2:
            errors.append(
                "spec.algorithm: CMA-ES only supports two or more dimensional continuous "
                "search space (S)"
            )
    return errors


def _early_stopping(early: Any) -> list[str]:
    if early is None:
        return []
    name = early.get("algorithmName", "")
    if not name:
        return ["spec.earlyStopping.algorithmName: must be specified (W)"]
    if name not in EARLY_STOPPING_ALGORITHMS:
        return [
            f"spec.earlyStopping.algorithmName: unknown early stopping algorithm {name!r} "
            f"(W, K: one of {', '.join(EARLY_STOPPING_ALGORITHMS)})"
        ]
    errors = []
    for setting in early.get("algorithmSettings") or []:
        sname, value = setting.get("name"), setting.get("value")
        if sname == "min_trials_required":
            problem = _int_setting(value, lambda x: x > 0, "min_trials_required must be > 0")
        elif sname == "start_step":
            problem = _int_setting(value, lambda x: x >= 1, "start_step must be >= 1")
        else:
            problem = f"unknown setting {sname!r} for algorithm medianstop"
        if problem:
            errors.append(f"spec.earlyStopping.algorithmSettings: {problem} (E)")
    return errors


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _parameters(params: list[dict]) -> list[str]:
    errors = []
    names: set[str] = set()
    for i, param in enumerate(params):
        where = f"spec.parameters[{i}]"
        kind = param.get("parameterType", "")
        space = param.get("feasibleSpace") or {}
        if not param.get("name"):
            errors.append(f"{where}.name: must be specified (P)")
        elif param["name"] in names:
            errors.append(f"{where}.name: duplicated parameter name {param['name']!r} (S)")
        names.add(param.get("name", ""))
        if kind not in PARAMETER_TYPES:
            errors.append(
                f"{where}.parameterType: {kind!r} is not supported (W: one of "
                f"{', '.join(PARAMETER_TYPES)})"
            )
        dist = space.get("distribution", "")
        if dist and dist not in DISTRIBUTIONS:
            errors.append(
                f"{where}.feasibleSpace.distribution: {dist!r} is not supported (W: one of "
                f"{', '.join(DISTRIBUTIONS)})"
            )
        if not space:
            errors.append(f"{where}.feasibleSpace: must be specified (W)")
            continue
        if kind in ("double", "int"):
            if space.get("list"):
                errors.append(f"{where}.feasibleSpace.list: not supported for {kind} (W)")
            if not space.get("min") or not space.get("max"):
                errors.append(
                    f"{where}.feasibleSpace: min and max must be specified for {kind} (W)"
                )
                continue
            low, high = _number(space["min"]), _number(space["max"])
            if low is None or high is None:
                errors.append(f"{where}.feasibleSpace: min/max must be numbers (P)")
                continue
            if kind == "int" and not (low.is_integer() and high.is_integer()):
                errors.append(f"{where}.feasibleSpace: min/max of an int must be integers (P)")
            if low >= high:
                errors.append(
                    f"{where}.feasibleSpace: min {space['min']} must be less than max "
                    f"{space['max']} (P)"
                )
            if dist in ("logUniform", "logNormal") and low <= 0:
                errors.append(f"{where}.feasibleSpace: {dist} needs min > 0 (P)")
            step = space.get("step")
            if step and (_number(step) is None or _number(step) <= 0):
                errors.append(f"{where}.feasibleSpace.step: {step!r} must be a positive number (P)")
        elif kind in ("categorical", "discrete"):
            if any(space.get(k) for k in ("min", "max", "step")):
                errors.append(
                    f"{where}.feasibleSpace: min, max and step are not supported for {kind} (W)"
                )
            values = space.get("list") or []
            if not values:
                errors.append(f"{where}.feasibleSpace.list: {kind} needs a non-empty list (P)")
            elif kind == "discrete" and any(_number(v) is None for v in values):
                errors.append(f"{where}.feasibleSpace.list: discrete values must be numbers (P)")
    return errors


def _is_meta_key(reference: str) -> bool:
    match = _META_REF.search(reference)
    if not match:
        return False
    key = match.group(1)
    if key in META_KEYS:
        return True
    sub = _META_INDEX.search(key)
    return bool(sub) and sub.group(1) in META_KEYS


def _trial_template(spec: dict) -> list[str]:
    template = spec.get("trialTemplate")
    where = "spec.trialTemplate"
    if not template:
        return [f"{where}: must be specified (W)"]
    errors = []
    if not template.get("primaryContainerName"):
        errors.append(f"{where}.primaryContainerName: must be specified (W)")
    if not template.get("successCondition") or not template.get("failureCondition"):
        errors.append(f"{where}: successCondition and failureCondition must be specified (W)")
    if template.get("trialParameters") is None:
        return [*errors, f"{where}.trialParameters: must be specified (W)"]
    trial_spec, config_map = template.get("trialSpec"), template.get("configMap")
    if trial_spec is None and config_map is None:
        return [*errors, f"{where}: trialSpec or configMap must be specified (W)"]
    if trial_spec is not None and config_map is not None:
        return [*errors, f"{where}: only one of trialSpec or configMap can be specified (W)"]
    if config_map is not None:
        if not all(
            config_map.get(k) for k in ("configMapName", "configMapNamespace", "templatePath")
        ):
            errors.append(
                f"{where}.configMap: configMapName, configMapNamespace and templatePath must "
                "be specified (W)"
            )
        return errors  # the template lives in the cluster: nothing more to check offline

    text = json.dumps(trial_spec)
    searched = {p.get("name") for p in spec.get("parameters") or []}
    seen_names: set[str] = set()
    seen_refs: set[str] = set()
    for i, tp in enumerate(template["trialParameters"]):
        pwhere = f"{where}.trialParameters[{i}]"
        pname, ref = tp.get("name", ""), tp.get("reference", "")
        if not pname or not ref or "{" in pname or "}" in pname:
            errors.append(
                f"{pwhere}: name and reference must be specified and name must not contain "
                "'{' or '}' (W)"
            )
            continue
        if pname in seen_names:
            errors.append(f"{pwhere}.name: parameter name {pname!r} is duplicated (W)")
            continue
        if ref in seen_refs:
            errors.append(f"{pwhere}.reference: parameter reference {ref!r} is duplicated (W)")
            continue
        seen_names.add(pname)
        seen_refs.add(ref)
        if searched and not _is_meta_key(ref) and ref not in searched:
            errors.append(
                f"{pwhere}.reference: {ref!r} does not exist in spec.parameters "
                f"{sorted(searched)} (W)"
            )
        placeholder = f"${{trialParameters.{pname}}}"
        if placeholder not in text:
            errors.append(f"{pwhere}.name: {pname!r} is not used in {where}.trialSpec (W)")
            return errors
        text = text.replace(placeholder, "test-value")
    leftover = _PARAM_REF.findall(text)
    if leftover:
        errors.append(
            f"{where}: parameters {leftover} in the trialSpec are not in trialParameters (W)"
        )
    unused = sorted(searched - seen_refs)
    if unused:
        errors.append(
            f"{where}.trialParameters: searched parameter(s) {unused} are never passed to the "
            "trial (P)"
        )
    run_spec = json.loads(text)
    if not isinstance(run_spec, dict):
        return [*errors, f"{where}.trialSpec: must be an object (W)"]
    meta = run_spec.get("metadata") or {}
    if meta.get("name") or meta.get("namespace"):
        errors.append(
            f"{where}: metadata.name and metadata.namespace in the trialSpec must be omitted (W)"
        )
    if not run_spec.get("apiVersion") or not run_spec.get("kind"):
        errors.append(f"{where}: apiVersion and kind in the trialSpec must be specified (W)")
    if run_spec.get("apiVersion") == "batch/v1" and run_spec.get("kind") == "Job":
        errors += [f"{where}.trialSpec: {e}" for e in job_errors(run_spec)]
        errors += _primary_container(template, run_spec)
    return errors


def _primary_container(template: dict, job: dict) -> list[str]:
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    errors = []
    names = [c.get("name") for c in pod.get("containers") or []]
    primary = template.get("primaryContainerName")
    if primary and primary not in names:
        errors.append(
            f"spec.trialTemplate.primaryContainerName: {primary!r} is not a container of the "
            f"trial Job {names} (the metrics collector could not attach; pod webhook)"
        )
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        errors.append(
            "spec.trialTemplate.trialSpec: spec.template.spec.restartPolicy must be Never or "
            f"OnFailure for a Job, got {pod.get('restartPolicy')!r} (Kubernetes)"
        )
    return errors


def job_errors(job: dict) -> list[str]:
    """Fields of a batch/v1 Job that would not survive Katib's conversion to a typed Job (W:
    validateTrialJob): unknown fields and wrong value types, resources excepted."""
    return _typed_errors(job, "V1Job", "")


def _typed_errors(value: Any, type_name: str, path: str) -> list[str]:
    import kubernetes.client as models

    if path.endswith((".resources.limits", ".resources.requests")):
        return []  # W: device-plugin resources are not checked
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path or '(top)'}: expected a list"]
        inner = type_name[5:-1]
        return [e for i, v in enumerate(value) for e in _typed_errors(v, inner, f"{path}[{i}]")]
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            return [f"{path or '(top)'}: expected a mapping"]
        inner = type_name[5:-1].split(",", 1)[1].strip()
        return [e for k, v in value.items() for e in _typed_errors(v, inner, f"{path}.{k}")]
    primitive = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "datetime": lambda v: isinstance(v, str),
        "date": lambda v: isinstance(v, str),
        "object": lambda v: True,
    }
    if type_name in primitive:
        if value is None or primitive[type_name](value):
            return []
        return [f"{path}: {value!r} is not of type {type_name}"]
    cls = getattr(models, type_name, None)
    if cls is None:
        return []
    if not isinstance(value, dict):
        return [f"{path or '(top)'}: expected a mapping ({type_name[2:]})"]
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    errors = []
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{path + '.' if path else ''}{key}: unknown field of {type_name[2:]}")
            continue
        errors += _typed_errors(item, cls.openapi_types[attr], f"{path}.{key}".lstrip("."))
    return errors


def _collector(mc: dict) -> list[str]:
    where = "spec.metricsCollectorSpec"
    kind = (mc.get("collector") or {}).get("kind", "")
    source = mc.get("source") or {}
    fs = source.get("fileSystemPath") or {}
    errors = []
    if kind not in COLLECTOR_KINDS:
        return [
            f"{where}.collector.kind: invalid metrics collector kind {kind!r} (W: one of "
            f"{', '.join(COLLECTOR_KINDS)})"
        ]
    if kind == "File":
        if fs.get("kind") != "File" or not str(fs.get("path", "")).startswith("/"):
            errors.append(f"{where}.source.fileSystemPath.path: an absolute file path (W)")
        if fs.get("format") not in ("TEXT", "JSON"):
            errors.append(f"{where}.source.fileSystemPath.format: TEXT or JSON is required (W)")
        if fs.get("format") == "JSON" and source.get("filter") is not None:
            errors.append(f"{where}.source.filter: must be empty for JSON files (W)")
    elif kind == "TensorFlowEvent":
        if fs.get("kind") != "Directory" or not str(fs.get("path", "")).startswith("/"):
            errors.append(f"{where}.source.fileSystemPath.path: an absolute directory path (W)")
        if fs.get("format"):
            errors.append(f"{where}.source.fileSystemPath.format: must be empty (W)")
    elif kind == "PrometheusMetric":
        http = source.get("httpGet") or {}
        if not str(http.get("port", "")).isdigit() or int(http.get("port")) <= 0:
            errors.append(f"{where}.source.httpGet.port: must be a positive integer (W)")
        if not str(http.get("path", "/metrics")).startswith("/"):
            errors.append(f"{where}.source.httpGet.path: must start with '/' (W)")
    elif kind == "Custom":
        if not (mc.get("collector") or {}).get("customCollector"):
            errors.append(f"{where}.collector.customCollector: required for kind Custom (W)")
        if fs and (
            not str(fs.get("path", "")).startswith("/")
            or fs.get("kind") not in ("Directory", "File")
        ):
            errors.append(f"{where}.source.fileSystemPath: invalid (W)")
    two_groups = re.compile(r".*\(.*\).*\(.*\).*")
    for fmt in (source.get("filter") or {}).get("metricsFormat") or []:
        try:
            re.compile(fmt)
        except re.error as exc:
            errors.append(f"{where}.source.filter.metricsFormat: invalid filter {fmt!r}: {exc} (W)")
            continue
        if not two_groups.match(fmt):
            errors.append(
                f"{where}.source.filter.metricsFormat: {fmt!r} needs two top subexpressions (W)"
            )
    return errors


# ---------------------------------------------------------------- run


def _condition(obj: Mapping[str, Any], kind: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def finished(obj: Mapping[str, Any]) -> bool:
    return bool(_condition(obj, "Succeeded") or _condition(obj, "Failed"))


def _counts_of(status: Mapping[str, Any]) -> dict[str, int]:
    get = lambda k: int(status.get(k) or 0)  # noqa: E731
    return {
        "trials": get("trials"),
        "trials_complete": get("trialsSucceeded"),
        "trials_failed": get("trialsFailed") + get("trialMetricsUnavailable"),
        "trials_pruned": get("trialsEarlyStopped"),
        "trials_killed": get("trialsKilled"),
        "trials_running": get("trialsRunning") + get("trialsPending"),
    }


def _progress(counts: dict[str, int]) -> str:
    return (
        f"{counts['trials']} trials: {counts['trials_complete']} succeeded, "
        f"{counts['trials_failed']} failed, {counts['trials_pruned']} early-stopped, "
        f"{counts['trials_running']} running or pending"
    )


def _metric(metrics: list[dict], name: str, strategy: str = "latest") -> float | None:
    for m in metrics or []:
        if m.get("name") == name:
            value = _number(m.get(strategy) or m.get("latest"))
            if value is not None:
                return value
    return None


def _strategy(experiment: Mapping[str, Any], metric: str) -> str:
    objective = (experiment.get("spec") or {}).get("objective") or {}
    for s in objective.get("metricStrategies") or []:
        if s.get("name") == metric:
            return s.get("value", "latest")
    return "max" if objective.get("type") == "maximize" else "min"


def _submit(
    adapter: KubernetesAdapter, experiment: dict, log: Callable[[str], None]
) -> dict[str, Any]:
    ns, name = experiment["metadata"]["namespace"], experiment["metadata"]["name"]
    args = (KATIB_EXPERIMENT.group, KATIB_EXPERIMENT.version, ns, KATIB_EXPERIMENT.plural)
    try:
        return adapter.create(*args, experiment)
    except AlreadyExists:
        existing = adapter.get(*args, name)
        ours = experiment["metadata"].get("annotations", {}).get(SPEC_HASH)
        theirs = (existing.get("metadata", {}).get("annotations") or {}).get(SPEC_HASH)
        if not ours or ours != theirs:
            raise StageError(
                STAGE,
                f"a different Katib Experiment {ns}/{name} already exists; delete it or choose "
                "another name",
                subject=name,
            ) from None
        if not _condition(existing, "Failed"):
            log(f"katib: attaching to the existing experiment {ns}/{name} (same spec)")
            return existing
        log(f"katib: the existing experiment {ns}/{name} failed; starting it again")
        adapter.delete(*args, name)
        return adapter.create(*args, experiment)


def _history(
    adapter: KubernetesAdapter, namespace: str, name: str, space: SearchSpace, strategy: str
) -> list[dict[str, Any]]:
    """One row per Trial (as the local backend's history), oldest first; [] if unreadable."""
    try:
        trials = adapter.list(
            KATIB_TRIAL.group,
            KATIB_TRIAL.version,
            namespace,
            KATIB_TRIAL.plural,
            label_selector=f"{EXPERIMENT_LABEL}={name}",
        )
    except KubernetesError:
        return []
    states = {
        "Succeeded": "COMPLETE",
        "EarlyStopped": "PRUNED",
        "Failed": "FAIL",
        "MetricsUnavailable": "FAIL",
        "Killed": "KILLED",
        "Running": "RUNNING",
    }
    trials.sort(key=lambda t: (t["metadata"].get("creationTimestamp", ""), t["metadata"]["name"]))
    rows = []
    for number, trial in enumerate(trials):
        state, message = "WAITING", None
        for kind, label in states.items():
            cond = _condition(trial, kind)
            if cond:
                state, message = label, cond.get("message")
                break
        assigned = {
            a["name"]: a["value"] for a in trial.get("spec", {}).get("parameterAssignments", [])
        }
        try:
            params = decode(space, {k: v for k, v in assigned.items() if k in space})
        except ValueError:
            params = assigned
        status = trial.get("status") or {}
        metrics = (status.get("observation") or {}).get("metrics") or []
        rows.append(
            {
                "number": number,
                "name": trial["metadata"]["name"],
                "state": state,
                "value": _metric(metrics, OBJECTIVE, strategy),
                "params": params,
                "seconds": _seconds(status.get("startTime"), status.get("completionTime")),
                "error": message if state == "FAIL" else None,
            }
        )
    return rows


def _seconds(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    try:
        parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
        return round((parse(end) - parse(start)).total_seconds(), 1)
    except ValueError:
        return None


def run_katib(
    adapter: KubernetesAdapter,
    experiment: dict[str, Any],
    timeout_s: float,
    poll_s: float,
    space: SearchSpace,
    *,
    fixed: Mapping[str, Any] | None = None,
    algorithm: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict[str, Any]:
    """Submit `experiment`, wait for it, return the typed result of the local backend:
    {backend, best_params (fixed + decoded optimal assignments, `n_estimators` from the trial's
    best_rounds), best_score, trials, trials_failed, trials_pruned, wall_s, ...}.

    StageError when the experiment is invalid, cannot be created, ends Failed (Katib's message),
    does not finish within `timeout_s` (it is deleted), or when no trial produced a score."""
    meta = experiment["metadata"]
    ns, name = meta["namespace"], meta["name"]
    label = f"katib {ns}/{name}"
    problems = validate_experiment(experiment)
    if problems:
        raise StageError(
            STAGE, f"{label} would be refused:\n- " + "\n- ".join(problems), subject=name
        )
    started = clock()
    try:
        _submit(adapter, experiment, log)
    except Forbidden as exc:
        raise StageError(
            STAGE,
            f"{label}: not allowed to create Katib Experiments ({exc}); the pipeline's service "
            "account needs create/get/delete on experiments.kubeflow.org and list on "
            "trials.kubeflow.org",
            subject=name,
        ) from exc
    except KubernetesError as exc:
        raise StageError(
            STAGE, f"{label}: cannot create the experiment: {exc}", subject=name
        ) from exc

    last_line = [""]

    def report(obj: dict) -> None:
        line = _progress(_counts_of(obj.get("status") or {}))
        if line != last_line[0]:
            last_line[0] = line
            log(f"{label}: {line}")

    args = (KATIB_EXPERIMENT.group, KATIB_EXPERIMENT.version, ns, KATIB_EXPERIMENT.plural, name)
    try:
        done = wait_for(
            adapter, *args, finished, timeout_s, poll_s, sleep=sleep, clock=clock, on_poll=report
        )
    except WaitTimeout as exc:
        counts = _counts_of((exc.last or {}).get("status") or {})
        cleanup = "deleted"
        try:
            adapter.delete(*args)
        except NotFound:
            pass
        except KubernetesError as err:
            cleanup = f"could not be deleted ({err})"
        raise StageError(
            STAGE,
            f"{label} did not finish within {timeout_s:g}s ({_progress(counts)}); the "
            f"experiment was {cleanup}",
            subject=name,
        ) from None
    except NotFound as exc:
        raise StageError(STAGE, f"{label} disappeared while running: {exc}", subject=name) from exc
    except KubernetesError as exc:
        raise StageError(
            STAGE, f"{label}: lost track of the experiment: {exc}", subject=name
        ) from exc

    status = done.get("status") or {}
    counts = _counts_of(status)
    failed = _condition(done, "Failed")
    if failed:
        raise StageError(
            STAGE,
            f"{label} failed: {failed.get('message') or failed.get('reason') or 'no message'} "
            f"({_progress(counts)})",
            subject=name,
        )
    optimal = status.get("currentOptimalTrial") or {}
    strategy = _strategy(experiment, OBJECTIVE)
    metrics = (optimal.get("observation") or {}).get("metrics") or []
    score = _metric(metrics, OBJECTIVE, strategy)
    assignments = {a["name"]: a["value"] for a in optimal.get("parameterAssignments") or []}
    if counts["trials_complete"] + counts["trials_pruned"] == 0 or score is None or not assignments:
        raise StageError(
            STAGE,
            f"{label}: every trial failed, no trial reported {OBJECTIVE} ({_progress(counts)})",
            subject=name,
        )
    try:
        searched = decode(space, {k: v for k, v in assignments.items() if k in space})
    except ValueError as exc:
        raise StageError(STAGE, f"{label}: optimal trial: {exc}", subject=name) from exc
    best_params = {**(fixed or {}), **searched}
    rounds = _metric(metrics, "best_rounds")
    if rounds is not None and rounds >= 1:
        best_params["n_estimators"] = int(rounds)
    wall = clock() - started
    return {
        "backend": "katib",
        "algorithm": algorithm,
        "experiment": f"{ns}/{name}",
        "best_params": best_params,
        "best_score": float(score),
        "best_std": _metric(metrics, "cv_roc_auc_std") or 0.0,
        "best_trial": optimal.get("bestTrialName"),
        **{k: v for k, v in counts.items() if k != "trials_running"},
        "wall_s": round(wall, 2),
        "trials_per_min": round(counts["trials"] / wall * 60, 2) if wall > 0 else None,
        "history": _history(adapter, ns, name, space, strategy),
    }


# ---------------------------------------------------------------- the tune stage's entry


# The backend's settings live in the config model (model_training.katib).
KatibOptions = KatibConfig


def run_on_katib(
    train_uri: str,
    transformer_uri: str,
    algorithm: str,
    training: Any,
    options: KatibOptions | Mapping[str, Any] | None = None,
    adapter: KubernetesAdapter | None = None,
) -> dict[str, Any]:
    """The tune stage's Katib path. `training` is the validated `model_training` config
    (TrainingConfig); `train_uri` / `transformer_uri` must be readable from the trial pods (the
    artifacts' remote URIs on a cluster)."""
    from components.common.k8s import CustomObjectsAdapter

    opts = options if isinstance(options, KatibOptions) else KatibOptions(**(options or {}))
    space = training.search_spaces.get(algorithm)
    if not space:
        raise StageError(STAGE, f"no search space for {algorithm}", subject=algorithm)
    fixed = training.params_for(algorithm)
    experiment = render_experiment(
        namespace=opts.namespace,
        algorithm=algorithm,
        space=space,
        train_uri=train_uri,
        transformer_uri=transformer_uri,
        fixed_params=fixed,
        cv_folds=training.cv_folds,
        cv_strategy=training.cv_strategy,
        seed=training.seed,
        max_trials=training.max_trials,
        parallel_trials=opts.parallel_trials,
        max_failed_trials=opts.max_failed_trials,
        katib_algorithm=opts.algorithm,
        algorithm_settings=opts.algorithm_settings,
        goal=opts.goal,
        early_stopping=opts.early_stopping,
        image=opts.image or PIPELINE_IMAGE,
        resources=opts.resources,
        env=opts.env,
        env_from_secrets=tuple(opts.env_from_secrets),
        service_account=opts.service_account,
    )
    return run_katib(
        adapter or CustomObjectsAdapter(),
        experiment,
        opts.timeout_s,
        opts.poll_s,
        space,
        fixed=fixed,
        algorithm=algorithm,
    )
