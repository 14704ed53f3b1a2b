"""components/tune/katib_render.py: the rendered Experiment passes the swagger and admission
checks, broken ones are refused with the reason, the trial command survives Katib's
substitution and the StdOut collector's wrapping, and the trial pods are hardened, get their env
from the rendered manifests (a read-only S3 key, nothing of MLflow's), and the pipeline's
account may run experiments in the Katib namespace."""

from __future__ import annotations

import copy
import json
import shlex

import pytest

from components.common.config import REPO_ROOT, load_pipeline_config
from components.common.images import PIPELINE_IMAGE
from components.common.search_space import ParamSpec
from components.tune import trial as trial_module
from components.tune.katib_render import render_experiment
from tests.components.tune.katib_support import (
    EXP,
    NS,
    SPACE,
    _katib_substitute,
    _wrap_like_the_stdout_collector,
    container,
    rendered,
)
from tests.support.katib_admission import (
    JOB_FAILURE,
    JOB_SUCCESS,
    apply_defaults,
    validate_experiment,
)

TRAINING = load_pipeline_config().model_training
SPACES = TRAINING.search_spaces or {
    "lightgbm": {
        "learning_rate": ParamSpec(type="float", low=0.01, high=0.2, log=True),
        "num_leaves": ParamSpec(type="int", low=15, high=255, log=True),
    },
    "random_forest": {
        "max_features": ParamSpec(type="categorical", choices=["sqrt", 0.5, 0.8]),
    },
}


# ---------------------------------------------------------------- render + validate


@pytest.mark.parametrize("algorithm", sorted(SPACES))
def test_the_rendered_experiment_passes_every_check(algorithm):
    exp = render_experiment(
        namespace=NS,
        algorithm=algorithm,
        space=SPACES[algorithm],
        train_uri="minio://mlpipeline/v2/artifacts/run/train",
        transformer_uri="minio://mlpipeline/v2/artifacts/run/transformer",
        fixed_params=TRAINING.params_for(algorithm),
        max_trials=TRAINING.max_trials,
        cv_folds=TRAINING.cv_folds,
        seed=TRAINING.seed,
    )
    assert validate_experiment(exp) == []
    spec = exp["spec"]
    assert exp["metadata"]["name"].startswith(f"tune-{algorithm.replace('_', '-')}-")
    assert len(exp["metadata"]["name"]) <= 40
    assert spec["objective"]["type"] == "maximize"
    assert spec["objective"]["objectiveMetricName"] == "cv_roc_auc"
    assert {"name": "cv_roc_auc", "value": "latest"} in spec["objective"]["metricStrategies"]
    assert spec["algorithm"]["algorithmName"] == "tpe"
    assert spec["earlyStopping"]["algorithmName"] == "medianstop"
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert [p["name"] for p in spec["parameters"]] == list(SPACES[algorithm])
    assert spec["maxFailedTrialCount"] == spec["maxTrialCount"] == TRAINING.max_trials
    template = spec["trialTemplate"]
    refs = {p["reference"] for p in template["trialParameters"]}
    assert refs >= set(SPACES[algorithm])
    job = template["trialSpec"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert template["successCondition"] == JOB_SUCCESS  # what Katib would default to
    assert template["failureCondition"] == JOB_FAILURE
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    c = container(exp)
    assert c["name"] == template["primaryContainerName"] and c["image"] == PIPELINE_IMAGE
    assert ":latest" not in c["image"]
    assert "python -m components.tune.trial" in c["command"][2]
    # the same inputs give the same name (a retried task finds its experiment)
    again = render_experiment(
        namespace=NS,
        algorithm=algorithm,
        space=SPACES[algorithm],
        train_uri="minio://mlpipeline/v2/artifacts/run/train",
        transformer_uri="minio://mlpipeline/v2/artifacts/run/transformer",
        fixed_params=TRAINING.params_for(algorithm),
        max_trials=TRAINING.max_trials,
        cv_folds=TRAINING.cv_folds,
        seed=TRAINING.seed,
    )
    assert again["metadata"]["name"] == exp["metadata"]["name"]


def _key(part: str):
    return int(part) if part.lstrip("-").isdigit() else part


def _set(path: str, value):
    def mutate(exp):
        node = exp
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[_key(part)]
        if value is _DELETE:
            del node[_key(leaf)]
        else:
            node[_key(leaf)] = value

    return mutate


_DELETE = object()
TEMPLATE = "spec.trialTemplate"
POD = f"{TEMPLATE}.trialSpec.spec.template.spec"


def _command(fn):
    def mutate(exp):
        c = container(exp)
        c["command"] = ["sh", "-c", fn(c["command"][2])]

    return mutate


BROKEN = {
    "bad objective type": (
        _set("spec.objective.type", "maximise"),
        "spec.objective.type: 'maximise' must be minimize or maximize",
    ),
    "min > max": (
        _set("spec.parameters.0.feasibleSpace.min", "0.5"),
        "spec.parameters[0].feasibleSpace: min 0.5 must be less than max",
    ),
    "unknown algorithm": (
        _set("spec.algorithm.algorithmName", "bayes"),
        "spec.algorithm.algorithmName: unknown algorithm 'bayes'",
    ),
    "no objective metric": (
        _set("spec.objective.objectiveMetricName", ""),
        "objectiveMetricName: must be specified",
    ),
    "objective among the additional metrics": (
        _set("spec.objective.additionalMetricNames", ["cv_roc_auc"]),
        "should not contain spec.objective.objectiveMetricName",
    ),
    "unknown parameter type": (
        _set("spec.parameters.0.parameterType", "float"),
        "parameterType: 'float' is not supported",
    ),
    "unknown distribution": (
        _set("spec.parameters.0.feasibleSpace.distribution", "loguniform"),
        "distribution: 'loguniform' is not supported",
    ),
    "log scale from zero": (
        _set("spec.parameters.0.feasibleSpace.min", "0"),
        "logUniform needs min > 0",
    ),
    "missing max": (
        _set("spec.parameters.0.feasibleSpace.max", _DELETE),
        "min and max must be specified for double",
    ),
    "list on a double": (
        _set("spec.parameters.0.feasibleSpace.list", ["0.1"]),
        "feasibleSpace.list: not supported for double",
    ),
    "categorical without list": (
        _set("spec.parameters.-1.feasibleSpace", {"distribution": "uniform"}),
        "categorical needs a non-empty list",
    ),
    "min on a categorical": (
        _set("spec.parameters.-1.feasibleSpace.min", "1"),
        "min, max and step are not supported for categorical",
    ),
    "int with fractional bounds": (
        _set("spec.parameters.1.feasibleSpace.max", "255.5"),
        "min/max of an int must be integers",
    ),
    "no parameters": (_set("spec.parameters", []), "spec.parameters or spec.nasConfig"),
    "more failures than trials": (
        _set("spec.maxFailedTrialCount", 7),
        "maxFailedTrialCount: 7 should be less than or equal to spec.maxTrialCount 6",
    ),
    "more parallel than trials": (
        _set("spec.parallelTrialCount", 8),
        "parallelTrialCount: 8 should be less than or equal to spec.maxTrialCount 6",
    ),
    "no trials": (_set("spec.maxTrialCount", 0), "maxTrialCount: 0 must be greater than 0"),
    "negative failures": (
        _set("spec.maxFailedTrialCount", -1),
        "maxFailedTrialCount: -1 should not be less than 0",
    ),
    "name too long": (
        _set("metadata.name", "tune-" + "x" * 40),
        "at most 40 characters",
    ),
    "name not a DNS name": (_set("metadata.name", "Tune_LGBM"), "RFC 1123"),
    "unknown early stopping": (
        _set("spec.earlyStopping.algorithmName", "median"),
        "unknown early stopping algorithm 'median'",
    ),
    "bad medianstop setting": (
        _set("spec.earlyStopping.algorithmSettings", [{"name": "start_step", "value": "0"}]),
        "start_step must be >= 1",
    ),
    "unknown medianstop setting": (
        _set("spec.earlyStopping.algorithmSettings", [{"name": "patience", "value": "3"}]),
        "unknown setting 'patience' for algorithm medianstop",
    ),
    "bad tpe setting": (
        _set("spec.algorithm.algorithmSettings", [{"name": "gamma", "value": "2"}]),
        "gamma should be in (0, 1)",
    ),
    "unknown tpe setting": (
        _set("spec.algorithm.algorithmSettings", [{"name": "n_startup", "value": "2"}]),
        "unknown setting 'n_startup' for algorithm tpe",
    ),
    "unknown collector": (
        _set("spec.metricsCollectorSpec.collector.kind", "Stdout"),
        "invalid metrics collector kind 'Stdout'",
    ),
    "file collector with a relative path": (
        _set(
            "spec.metricsCollectorSpec",
            {
                "collector": {"kind": "File"},
                "source": {"fileSystemPath": {"path": "metrics.log", "kind": "File"}},
            },
        ),
        "an absolute file path",
    ),
    "bad resume policy": (_set("spec.resumePolicy", "Always"), "not a ResumePolicyType"),
    "no trial template": (_set("spec.trialTemplate", _DELETE), "trialTemplate: must be specified"),
    "no primary container": (
        _set(f"{TEMPLATE}.primaryContainerName", ""),
        "primaryContainerName: must be specified",
    ),
    "primary container not in the Job": (
        _set(f"{TEMPLATE}.primaryContainerName", "training"),
        "'training' is not a container of the trial Job",
    ),
    "no trialParameters": (
        _set(f"{TEMPLATE}.trialParameters", _DELETE),
        "trialParameters: must be specified",
    ),
    "reference to an undefined parameter": (
        _set(f"{TEMPLATE}.trialParameters.0.reference", "eta"),
        "'eta' does not exist in spec.parameters",
    ),
    "duplicated trial parameter": (
        lambda e: e["spec"]["trialTemplate"]["trialParameters"].append(
            copy.deepcopy(e["spec"]["trialTemplate"]["trialParameters"][0])
        ),
        "trialParameters: duplicate entry (name='learning_rate')",  # the list is a map by name
    ),
    "searched parameter never passed": (
        lambda e: e["spec"]["parameters"].append(
            {
                "name": "max_bin",
                "parameterType": "int",
                "feasibleSpace": {"min": "63", "max": "511"},
            }
        ),
        "searched parameter(s) ['max_bin'] are never passed to the trial",
    ),
    "placeholder without a trial parameter": (
        _command(lambda cmd: cmd + " --param 'max_bin=${trialParameters.max_bin}'"),
        "['${trialParameters.max_bin}'] in the trialSpec are not in trialParameters",
    ),
    "trial parameter not used": (
        _command(lambda cmd: cmd.replace("${trialParameters.num_leaves}", "63")),
        "'num_leaves' is not used in spec.trialTemplate.trialSpec",
    ),
    "name in the trialSpec": (
        _set(f"{TEMPLATE}.trialSpec.metadata", {"name": "fixed"}),
        "metadata.name and metadata.namespace in the trialSpec must be omitted",
    ),
    "no kind in the trialSpec": (
        _set(f"{TEMPLATE}.trialSpec.kind", _DELETE),
        "apiVersion and kind in the trialSpec must be specified",
    ),
    "unknown Job field": (
        _set(f"{POD}.containers.0.cmd", ["python"]),
        "containers[0].cmd: unknown field of Container",
    ),
    "wrong Job field type": (
        _set(f"{TEMPLATE}.trialSpec.spec.backoffLimit", "0"),
        "spec.backoffLimit: '0' is not of type int",
    ),
    "Job that restarts always": (
        _set(f"{POD}.restartPolicy", "Always"),
        "restartPolicy must be Never or OnFailure",
    ),
    "unknown spec field (schema)": (
        _set("spec.maxTrialCounts", 6),
        "schema: spec: unknown field(s) ['maxTrialCounts']",
    ),
    "wrong type (schema)": (
        _set("spec.maxTrialCount", "6"),
        "schema: spec.maxTrialCount: '6' is not of type 'integer'",
    ),
    "bad metric strategy": (
        _set("spec.objective.metricStrategies.0.value", "mean"),
        "'mean' is not min, max or latest",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_experiment_is_refused_with_the_reason(case):
    mutate, reason = BROKEN[case]
    exp = rendered()
    mutate(exp)
    errors = validate_experiment(exp)
    assert any(reason in e for e in errors), errors


def test_validation_sees_katibs_defaults():
    exp = rendered(max_trials=2)
    del exp["spec"]["parallelTrialCount"]  # Katib's default is 3 ...
    errors = validate_experiment(exp)
    assert any("parallelTrialCount: 3 should be less than or equal" in e for e in errors), errors
    defaulted = apply_defaults(rendered())
    del defaulted["spec"]["trialTemplate"]["successCondition"]
    assert validate_experiment(defaulted) == []  # ... and a Job gets its conditions by default
    bare = rendered()
    del bare["spec"]["objective"]["metricStrategies"]
    strategies = apply_defaults(bare)["spec"]["objective"]["metricStrategies"]
    assert {"name": "cv_roc_auc", "value": "max"} in strategies


def test_render_refuses_what_cannot_work():
    with pytest.raises(ValueError, match="both fixed and searched"):
        rendered(fixed_params={"learning_rate": 0.1})
    unsafe = {"objective": ParamSpec(type="categorical", choices=["binary", "cross entropy"])}
    with pytest.raises(ValueError, match="cannot travel through Katib"):
        rendered(space=unsafe)
    with pytest.raises(ValueError, match="start_step 4 exceeds cv_folds 3"):
        rendered(early_stopping={"start_step": 4})
    with pytest.raises(ValueError, match="empty"):
        rendered(space={})
    exp = rendered(early_stopping=None, goal=0.91, katib_algorithm="random")
    assert "earlyStopping" not in exp["spec"] and exp["spec"]["objective"]["goal"] == 0.91
    assert validate_experiment(exp) == []


def test_the_trial_command_survives_katibs_substitution_and_wrapping(tmp_path):
    exp = rendered()
    values = {
        "learning_rate": "0.0512",
        "num_leaves": "87.0",  # hyperopt's loguniform hands ints over as floats
        "boosting_type": "dart",
        "trialName": "tune-lightgbm-x-abc123",
    }
    job = _katib_substitute(exp, values)
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "KATIB_TRIAL_NAME", "value": "tune-lightgbm-x-abc123"} in c["env"]
    wrapped = _wrap_like_the_stdout_collector(c["command"], tmp_path / "metrics.log")
    argv = shlex.split(wrapped[2])
    end = argv.index(f"1>{tmp_path / 'metrics.log'}")
    assert argv[:3] == ["python", "-m", "components.tune.trial"]
    args = trial_module.parse_args(argv[3:end])
    assert json.loads(args.fixed_params_json) == {"n_estimators": 2000, "subsample_freq": 1}
    space = trial_module.parse_space(args.space_json)
    assert space == SPACE
    typed = trial_module.parse_params(space, args.param)
    assert typed == {"learning_rate": 0.0512, "num_leaves": 87, "boosting_type": "dart"}
    assert type(typed["num_leaves"]) is int
    assert (args.train_data, args.cv_folds, args.seed) == ("s3://mlpipeline/artifacts/train", 3, 42)


# ---------------------------------------------------------------- trial pods: security, env, RBAC


def test_trials_mount_the_runtimes_config_map_and_a_read_only_secret():
    """The ConfigMap follows the runtime's; the S3 Secret never follows the tasks' read-write
    one: trials get the read-only key unless katib names another."""
    from components.common.config import KatibConfig, PipelineConfig

    cfg = load_pipeline_config()
    katib = cfg.model_training.katib
    assert katib.env_config_map == cfg.runtime.env_config_map
    assert katib.s3_secret == KatibConfig().s3_secret == "mlpipe-s3-readonly"
    assert katib.s3_secret != cfg.runtime.s3_secret
    data = cfg.model_dump(mode="json")
    data["runtime"] |= {"env_config_map": "env-b", "s3_secret": "s3-b"}
    for key in ("env_config_map", "s3_secret"):
        del data["model_training"]["katib"][key]
    other = PipelineConfig.model_validate(data).model_training.katib
    assert (other.env_config_map, other.s3_secret) == ("env-b", "mlpipe-s3-readonly")
    data["model_training"]["katib"]["s3_secret"] = "ro-b"
    assert PipelineConfig.model_validate(data).model_training.katib.s3_secret == "ro-b"


def test_trial_pods_run_non_root_without_a_token_and_bounded():
    exp = rendered(env_config_map="mlpipe-pipeline-env", s3_secret="mlpipe-s3")
    assert validate_experiment(exp) == []
    pod = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # covers Katib's collector sidecar too
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(exp)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for part in ("requests", "limits"):
        assert set(c["resources"][part]) >= {"cpu", "memory"}
    # from the config: what pipeline_config.yaml sets
    limits = TRAINING.katib.resources["limits"]
    exp = rendered(resources=TRAINING.katib.resources)
    assert container(exp)["resources"]["limits"] == limits
    with pytest.raises(ValueError, match="limits needs"):
        rendered(resources={"requests": {"cpu": "1", "memory": "1Gi"}})


def test_trial_pods_get_nothing_of_mlflows():
    """Least privilege: no MLflow URI and no MLflow login in the rendered trial spec, whatever
    the pipeline's tasks get."""
    from components.common.config import PipelineConfig

    cfg = load_pipeline_config(profile=REPO_ROOT / "config/profiles/cluster.yaml")
    katib = cfg.model_training.katib
    exp = rendered(
        env=katib.env,
        env_from_secrets=tuple(katib.env_from_secrets),
        env_config_map=katib.env_config_map,
        s3_secret=katib.s3_secret,
        service_account=katib.service_account,
    )
    pod = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    for c in pod["containers"] + pod.get("initContainers", []):
        assert "envFrom" not in c  # whole ConfigMaps or Secrets would bring every key
        names = {e["name"] for e in c.get("env", [])}
        refs = [e.get("valueFrom", {}) for e in c.get("env", [])]
        keys = {r[kind]["key"] for r in refs for kind in r if kind.endswith("KeyRef")}
        sources = {r[kind]["name"] for r in refs for kind in r if kind.endswith("KeyRef")}
        assert not {n for n in names | keys if n.startswith("MLFLOW_")}, c["name"]
        assert cfg.runtime.mlflow_auth_secret not in sources
    assert "MLFLOW" not in json.dumps(exp) and "mlflow" not in json.dumps(pod)
    # nor can a config give them one
    data = cfg.model_dump(mode="json")
    for change in (
        {"env_from_secrets": [cfg.runtime.mlflow_auth_secret]},
        {"s3_secret": cfg.runtime.mlflow_auth_secret},
        {"env": {"MLFLOW_TRACKING_URI": "http://mlflow.mlpipe.svc.cluster.local:5000"}},
    ):
        bad = copy.deepcopy(data)
        bad["model_training"]["katib"] |= change
        with pytest.raises(ValueError, match="MLflow"):
            PipelineConfig.model_validate(bad)


def test_the_stand_in_cluster_admits_the_hardened_experiment(cluster):
    exp = rendered(env_config_map="mlpipe-pipeline-env", s3_secret="mlpipe-s3")
    cluster.create(*EXP, exp)  # the stand-in enforces Katib's schema and webhooks
    stored = cluster.get(*EXP, exp["metadata"]["name"])["spec"]
    assert stored == apply_defaults(exp)["spec"]  # as submitted, with Katib's defaults
    assert stored["parameters"][0]["feasibleSpace"]["distribution"] == "logUniform"


def test_the_trial_env_resolves_from_the_rendered_manifests():
    """In `mlpipe` (kind overlay) the trial gets the object store's endpoint from the same-named
    ConfigMap the pipeline's tasks use in `kubeflow`, the read-only key the model servers'
    ServiceAccount lists (not the tasks' read-write one), and nothing of MLflow's."""
    from tests.support.manifests import Rendered

    cfg = load_pipeline_config(profile=REPO_ROOT / "config/profiles/cluster.yaml")
    katib = cfg.model_training.katib
    manifests = Rendered.overlay("kind")
    exp = rendered(
        namespace=katib.namespace, env_config_map=katib.env_config_map, s3_secret=katib.s3_secret
    )
    env = manifests.container_env(container(exp), katib.namespace)
    task_cm = manifests.config_map(cfg.runtime.env_config_map, "kubeflow")
    task_s3 = manifests.secret(cfg.runtime.s3_secret, "kubeflow")
    for key in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        assert env[key] == task_cm[key], key
    serving = manifests.find("ServiceAccount", "mlpipe-serving", katib.namespace)
    assert [s["name"] for s in serving["secrets"]] == [katib.s3_secret]
    read_only = manifests.secret(katib.s3_secret, katib.namespace)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == read_only[key] != task_s3[key], key
    assert "MLFLOW_TRACKING_URI" in task_cm and not [k for k in env if k.startswith("MLFLOW_")]
    for overlay in ("kind", "cloud"):  # the trials' copy never drifts from the tasks'
        rendered_overlay = Rendered.overlay(overlay)
        trials = rendered_overlay.config_map(cfg.runtime.env_config_map, katib.namespace)
        tasks = rendered_overlay.config_map(cfg.runtime.env_config_map, "kubeflow")
        assert trials and all(tasks.get(k) == v for k, v in trials.items()), overlay
        assert not [k for k in trials if k.startswith("MLFLOW_")], overlay


def test_the_trial_keys_are_ones_every_task_gets():
    from components.tune.katib_render import TRIAL_CONFIG_MAP_KEYS, TRIAL_SECRET_KEYS
    from pipelines.platform import CONFIG_MAP_KEYS, S3_SECRET_KEYS

    assert set(TRIAL_CONFIG_MAP_KEYS) <= set(CONFIG_MAP_KEYS)
    assert set(TRIAL_SECRET_KEYS) <= set(S3_SECRET_KEYS)


def test_the_pipelines_account_may_run_experiments_in_the_katib_namespace():
    from tests.support.manifests import Rendered

    manifests = Rendered.overlay("kind")
    ns = TRAINING.katib.namespace
    sa = load_pipeline_config().runtime.service_account
    bindings = [
        b
        for b in manifests.objects
        if b["kind"] == "RoleBinding"
        and b["metadata"]["namespace"] == ns
        and any(s["kind"] == "ServiceAccount" and s["name"] == sa for s in b["subjects"])
    ]
    verbs: dict[str, set[str]] = {}
    for b in bindings:
        role = manifests.find("Role", b["roleRef"]["name"], ns)
        for rule in role["rules"]:
            if "kubeflow.org" in rule["apiGroups"]:
                for r in rule["resources"]:
                    verbs.setdefault(r, set()).update(rule["verbs"])
    assert verbs["experiments"] >= {"create", "get", "watch", "delete"}
    assert verbs["trials"] >= {"get", "list"}
    namespace = manifests.find("Namespace", ns)
    assert namespace["metadata"]["labels"]["katib.kubeflow.org/metrics-collector-injection"] == (
        "enabled"
    )
