"""A stand-in for Katib's admission webhooks, as upstream behaves: what the cluster does to an
Experiment on create, so the tests can check the rendered Experiment and the launcher can meet a
refusal without a cluster. Product code does not pre-check: on a cluster Katib's own webhook
refuses an Experiment, and the launcher reports the API server's answer.

- `apply_defaults`: what Katib's mutating webhook sets before validation.
- `validate_experiment`: the reasons for refusal, each naming its field (the schema first).
- `admit`: the webhook the stand-in cluster (`k8s_standin.InMemoryCluster`) runs on every
  Experiment it creates: the defaulted object, or `Invalid` with Katib's reasons.
- `job_errors`: the fields of a trial Job that would not survive conversion to a typed Job.

Where the rules come from (kubeflow/katib, master in 2026):
  W = pkg/webhook/v1beta1/experiment/validator/validator.go (ValidateExperiment)
  D = pkg/apis/controller/experiments/v1beta1/experiment_defaults.go (the mutating webhook runs
      first, so validation sees defaulted objects)
  S = pkg/suggestion/v1beta1/{hyperopt,optuna}/service.py (ValidateAlgorithmSettings)
  E = pkg/earlystopping/v1beta1/medianstop/service.py (ValidateEarlyStoppingSettings)
  K = the algorithm, early-stopping and collector lists of manifests/.../katib-config.yaml
  P = this project (what would otherwise fail later, at trial or suggestion time; Katib itself
      lets these through)
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from components.common.k8s import Invalid, schema_errors

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
# D: the success and failure conditions of a Job trial
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?")  # W: unanchored at the end, as in Katib
_PARAM_REF = re.compile(r"\$\{trialParameters\..+?\}")
_META_REF = re.compile(r"\$\{trialSpec\.(.+?)\}")
_META_INDEX = re.compile(r"(.+)\[(.+)]")


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
    if errors:  # the rules read the fields, so they need the right shapes
        return errors
    return _rule_errors(apply_defaults(experiment))


def admit(experiment: Mapping[str, Any], what: str = "") -> dict[str, Any]:
    """The webhooks on create (the caller has checked the schema): `experiment` defaulted (D), or
    `Invalid` (about `what`) with every reason of the validating webhook."""
    obj = apply_defaults(experiment)
    errors = _rule_errors(obj)
    if errors:
        raise Invalid(
            'admission webhook "validator.experiment.katib.kubeflow.org" denied the request: '
            + "; ".join(errors),
            what,
            errors,
        )
    return obj


def _rule_errors(obj: dict[str, Any]) -> list[str]:
    """The validating webhook's reasons (W, with S, E, K, P) for a defaulted Experiment."""
    errors: list[str] = []
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


_SettingCheck = Callable[[str], str | None]


def _rule(
    parse: Callable[[str], float], check: Callable[[float], bool], rule: str
) -> _SettingCheck:
    """A setting's check: None when `check(parse(value))` holds, else why the value is refused."""

    def problem(value: str) -> str | None:
        try:
            ok = check(parse(value))
        except (TypeError, ValueError) as exc:
            return f"failed to validate ({value}): {exc}"
        return None if ok else rule

    return problem


_RANDOM_STATE = _rule(int, lambda x: x >= 0, "random_state must be >= 0")

# S: the settings each suggestion service accepts (unknown settings are refused)
_ALGORITHM_SETTINGS: dict[str, dict[str, _SettingCheck]] = {
    "tpe": {  # hyperopt
        "gamma": _rule(float, lambda x: 0 < x < 1, "gamma should be in (0, 1)"),
        "prior_weight": _rule(float, lambda x: x > 0, "prior_weight must be > 0"),
        "n_EI_candidates": _rule(int, lambda x: x > 0, "n_EI_candidates must be > 0"),
        "random_state": _RANDOM_STATE,
    },
    "random": {"random_state": _RANDOM_STATE},
    "multivariate-tpe": {  # optuna
        name: _rule(int, lambda x: x >= 0, f"{name} must be >= 0")
        for name in ("n_startup_trials", "n_ei_candidates", "random_state")
    },
}
# E: the settings the early-stopping service accepts (unknown settings are refused)
_EARLY_STOPPING_SETTINGS: dict[str, dict[str, _SettingCheck]] = {
    "medianstop": {
        "min_trials_required": _rule(int, lambda x: x > 0, "min_trials_required must be > 0"),
        "start_step": _rule(int, lambda x: x >= 1, "start_step must be >= 1"),
    },
}


def _setting_errors(
    settings: list[dict] | None,
    rules: Mapping[str, _SettingCheck],
    algorithm: str,
    where: str,
    source: str,
) -> list[str]:
    errors = []
    for setting in settings or []:
        check = rules.get(setting.get("name"))
        problem = (
            check(setting.get("value"))
            if check
            else f"unknown setting {setting.get('name')!r} for algorithm {algorithm}"
        )
        if problem:
            errors.append(f"{where}: {problem} ({source})")
    return errors


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
    if rules is not None:
        errors += _setting_errors(
            algorithm.get("algorithmSettings"), rules, name, "spec.algorithm.algorithmSettings", "S"
        )
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
    return _setting_errors(
        early.get("algorithmSettings"),
        _EARLY_STOPPING_SETTINGS[name],
        name,
        "spec.earlyStopping.algorithmSettings",
        "E",
    )


def _number(text: Any) -> float | None:
    """`text` as a finite float, or None."""
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
