"""The Katib backend: the rendered Experiment passes the swagger and admission checks, broken ones
are refused with the reason, the launcher's control flow against the stand-in (succeeded, failed,
timed out, trial failures), and the trial entrypoint as Katib runs it."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from components.common.config import REPO_ROOT, TrainingConfig, load_pipeline_config
from components.common.errors import StageError
from components.common.images import PIPELINE_IMAGE
from components.common.k8s import KATIB_EXPERIMENT, KubernetesError
from components.common.mlflow_utils import TRIAL_BEST_TAG
from components.common.search_space import ParamSpec
from components.tune import trial as trial_module
from components.tune.cv import CVResult
from components.tune.katib_launcher import run_katib, run_on_katib
from components.tune.katib_render import render_experiment
from tests.support.k8s_standin import InMemoryCluster, katib_experiment_status, katib_trial
from tests.support.katib_admission import (
    JOB_FAILURE,
    JOB_SUCCESS,
    apply_defaults,
    validate_experiment,
)

NS = "mlpipe"  # model_training.katib.namespace's default
EXP = (KATIB_EXPERIMENT.group, KATIB_EXPERIMENT.version, NS, KATIB_EXPERIMENT.plural)
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
# the launcher and trial tests use a small space of their own (one parameter of each type)
SPACE = {
    "learning_rate": ParamSpec(type="float", low=0.01, high=0.2, log=True),
    "num_leaves": ParamSpec(type="int", low=15, high=255, log=True),
    "boosting_type": ParamSpec(type="categorical", choices=["gbdt", "dart"]),
}
# Katib's StdOut collector: default filter (pkg/metricscollector/v1beta1/common/const.go)
KATIB_FILTER = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")


def rendered(**kw) -> dict:
    args = {
        "namespace": NS,
        "algorithm": "lightgbm",
        "space": SPACE,
        "train_uri": "s3://mlpipeline/artifacts/train",
        "transformer_uri": "s3://mlpipeline/artifacts/transformer",
        "fixed_params": {"n_estimators": 2000, "subsample_freq": 1},
        "max_trials": 6,
        **kw,
    }
    return render_experiment(**args)


def container(exp: dict) -> dict:
    return exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]


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


def _katib_substitute(exp: dict, values: dict[str, str]) -> dict:
    """What Katib's trial controller does: replace ${trialParameters.x} in the template's JSON."""
    text = json.dumps(exp["spec"]["trialTemplate"]["trialSpec"])
    for name, value in values.items():
        text = text.replace(f"${{trialParameters.{name}}}", value)
    return json.loads(text)


def _wrap_like_the_stdout_collector(command: list[str], metrics_file: Path) -> list[str]:
    """pkg/webhook/v1beta1/pod/utils.go wrapWorkerContainer: `sh -c` + args joined by spaces,
    with the collector's redirection and completion marker appended."""
    assert command[:2] == ["sh", "-c"]
    args = [
        *command[2:],
        f"1>{metrics_file} 2>&1",
        "&&",
        f"echo completed > {metrics_file.parent}/$$$$.pid",
    ]
    return ["sh", "-c", " ".join(args)]


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


# ---------------------------------------------------------------- the launcher


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        self.now += seconds

    def clock(self):
        return self.now


@pytest.fixture
def cluster():
    return InMemoryCluster()


def launch(cluster, exp, timeout_s=600, poll_s=10, **kw):
    t = FakeTime()
    lines: list[str] = []
    result = run_katib(
        cluster,
        exp,
        timeout_s,
        poll_s,
        SPACE,
        sleep=t.sleep,
        clock=t.clock,
        log=lines.append,
        **kw,
    )
    return result, lines, t


BEST = {
    "name": "trial-best",
    "assignments": {"learning_rate": "0.0731", "num_leaves": "96.4", "boosting_type": "gbdt"},
    "metrics": {"cv_roc_auc": 0.90412, "cv_roc_auc_std": 0.0021, "best_rounds": 371},
}


def test_a_succeeded_experiment_gives_the_typed_result(cluster):
    exp = rendered()
    name = exp["metadata"]["name"]
    cluster.script(
        "experiments",
        name,
        [
            katib_experiment_status("Created"),
            katib_experiment_status("Running", running=2, pending=4),
            katib_experiment_status("Running", succeeded=3, failed=1, running=2, best=BEST),
            katib_experiment_status("Succeeded", succeeded=4, failed=1, early_stopped=1, best=BEST),
        ],
    )
    cluster.add(
        katib_trial("trial-a", name, NS, {"learning_rate": "0.02", "num_leaves": "31"}, "Failed")
    )
    cluster.add(
        katib_trial("trial-best", name, NS, BEST["assignments"], "Succeeded", BEST["metrics"])
    )
    result, lines, t = launch(cluster, exp, fixed={"n_estimators": 2000, "subsample_freq": 1})
    assert result["backend"] == "katib"
    assert result["best_params"] == {
        "n_estimators": 371,  # the rounds the best trial's early stopping chose
        "subsample_freq": 1,
        "learning_rate": 0.0731,
        "num_leaves": 96,
        "boosting_type": "gbdt",
    }
    assert type(result["best_params"]["num_leaves"]) is int
    assert result["best_score"] == pytest.approx(0.90412)
    assert result["best_std"] == pytest.approx(0.0021)
    assert result["best_trial"] == "trial-best"
    assert (result["trials"], result["trials_complete"]) == (6, 4)
    assert (result["trials_failed"], result["trials_pruned"]) == (1, 1)
    assert result["wall_s"] == 30 and t.now == 30  # four polls, 10 s apart
    assert [h["state"] for h in result["history"]] == ["FAIL", "COMPLETE"]
    assert result["history"][1]["params"]["num_leaves"] == 96
    assert result["history"][1]["value"] == pytest.approx(0.90412)
    assert cluster.verbs("create", "experiments") == [("create", "experiments", NS, name)]
    assert cluster.verbs("delete") == []  # a finished experiment stays for inspection
    assert any("4 succeeded, 1 failed, 1 early-stopped" in line for line in lines)


def test_a_failed_experiment_raises_katibs_message(cluster):
    exp = rendered()
    cluster.script(
        "experiments",
        exp["metadata"]["name"],
        [
            katib_experiment_status("Running", running=2),
            katib_experiment_status("Failed", failed=6),
        ],
    )
    with pytest.raises(StageError, match="max failed count has reached") as info:
        launch(cluster, exp)
    assert info.value.stage == "tune" and "6 failed" in str(info.value)


def test_a_timeout_deletes_the_experiment(cluster):
    exp = rendered()
    name = exp["metadata"]["name"]
    cluster.script("experiments", name, [katib_experiment_status("Running", running=2)])
    t0 = time.perf_counter()
    with pytest.raises(StageError, match="did not finish within 120s") as info:
        launch(cluster, exp, timeout_s=120, poll_s=15)
    assert "was deleted" in str(info.value) and "2 running" in str(info.value)
    assert cluster.verbs("delete", "experiments") == [("delete", "experiments", NS, name)]
    assert cluster.objects == {}
    assert time.perf_counter() - t0 < 5  # the fake clock, not a real wait


def test_every_trial_failed_is_an_error(cluster):
    exp = rendered()
    cluster.script(
        "experiments",
        exp["metadata"]["name"],
        [katib_experiment_status("Succeeded", failed=4, metrics_unavailable=2)],
    )
    with pytest.raises(StageError, match="every trial failed") as info:
        launch(cluster, exp)
    assert "6 failed" in str(info.value)


def test_some_trial_failures_are_tolerated(cluster):
    exp = rendered()
    cluster.script(
        "experiments",
        exp["metadata"]["name"],
        [katib_experiment_status("Succeeded", succeeded=2, failed=4, best=BEST)],
    )
    result, _, _ = launch(cluster, exp)
    assert (result["trials_failed"], result["trials_complete"]) == (4, 2)
    assert result["best_params"]["learning_rate"] == 0.0731


def _tracked_trials(result: dict, tmp_path: Path) -> tuple:
    """`result` written as the tune task writes it and logged as the track task logs the tune
    stage, under a pipeline run: (the `tune-<algorithm>` run, its trial runs by number)."""
    import mlflow

    from components.track import track
    from components.tune.tune import summary, write_result

    stage = f"tune-{result['algorithm']}"
    write_result(result, str(tmp_path / stage))
    with mlflow.start_run(run_name="pipeline-run") as pipeline_run:
        track._log_stage(stage, summary(result), [tmp_path / stage], {})
    client = mlflow.MlflowClient()
    experiment = [pipeline_run.info.experiment_id]
    under = "tags.mlflow.parentRunId = '{}'"
    (tune_run,) = client.search_runs(experiment, under.format(pipeline_run.info.run_id))
    trials = client.search_runs(experiment, under.format(tune_run.info.run_id))
    return tune_run, sorted(trials, key=lambda r: int(r.data.tags["mlpipe.trial_number"]))


def _local_trials(monkeypatch, n: int) -> dict:
    """The Optuna backend's result for `n` trials over SPACE, cross-validation faked."""
    import components.tune.optuna_backend as optuna_backend

    def fake(train, spec, transformer, algorithm, params, folds, *args, **kw):
        mean = 0.8 + params["learning_rate"]
        return CVResult(mean, 0.004, [mean] * folds, [150] * folds)

    monkeypatch.setattr(optuna_backend, "cross_validate", fake)
    fixed = {"n_estimators": 2000}
    return optuna_backend.run_optuna(
        None, {}, None, "lightgbm", SPACE, fixed, 3, "stratified", 42, n, None
    )


@pytest.mark.parametrize("store", ["mlflow_store", "mlflow_server"])
def test_katib_trials_reach_mlflow_like_local_trials(
    cluster, store, request, tmp_path, monkeypatch
):
    """Trial pods have no MLflow login: the trials Katib ran reach MLflow from the Trials the
    tune task read back, as runs under the tune stage's run with the local trials' shape (in a
    SQLite store, and through a tracking server's REST API as on a cluster)."""
    request.getfixturevalue(store)
    exp = rendered()
    name = exp["metadata"]["name"]
    pruned = {"learning_rate": "0.15", "num_leaves": "40", "boosting_type": "dart"}
    cluster.script(
        "experiments",
        name,
        [katib_experiment_status("Succeeded", succeeded=1, failed=1, early_stopped=1, best=BEST)],
    )
    cluster.add(
        katib_trial("trial-a", name, NS, {"learning_rate": "0.02", "num_leaves": "31"}, "Failed")
    )
    cluster.add(
        katib_trial("trial-best", name, NS, BEST["assignments"], "Succeeded", BEST["metrics"])
    )
    cluster.add(katib_trial("trial-c", name, NS, pruned, "EarlyStopped", {"cv_roc_auc": 0.85}))
    katib_result, _, _ = launch(cluster, exp, fixed={"n_estimators": 2000}, algorithm="lightgbm")

    tune_run, trials = _tracked_trials(katib_result, tmp_path / "katib")
    assert tune_run.info.run_name == "tune-lightgbm"
    assert [t.info.run_name for t in trials] == ["trial-a", "trial-best", "trial-c"]
    assert [t.data.tags["mlpipe.trial"] for t in trials] == ["trial-a", "trial-best", "trial-c"]
    failed, best, early = trials
    assert failed.info.status == "FAILED" and failed.data.tags["mlpipe.trial_state"] == "FAIL"
    assert "cv_roc_auc" not in failed.data.metrics
    assert best.info.status == "FINISHED"
    assert best.data.tags["mlpipe.backend"] == "katib"
    assert best.data.tags["mlpipe.algorithm"] == "lightgbm"
    assert best.data.params == {
        "learning_rate": "0.0731",
        "num_leaves": "96",
        "boosting_type": "gbdt",
    }
    assert best.data.metrics == pytest.approx(
        {"cv_roc_auc": 0.90412, "cv_roc_auc_std": 0.0021, "best_rounds": 371}
    )
    assert early.data.tags["mlpipe.trial_state"] == "PRUNED"
    assert early.data.metrics == pytest.approx({"cv_roc_auc": 0.85})
    assert tune_run.data.metrics["trial_cv_roc_auc"] == pytest.approx(0.85)  # the last step

    # the local backend's trials: the same structure, tags, params and metric names
    local_run, local = _tracked_trials(_local_trials(monkeypatch, 3), tmp_path / "local")
    assert local_run.info.run_name == "tune-lightgbm"
    assert [t.info.run_name for t in local] == [f"tune-lightgbm-{n}" for n in range(3)]
    assert [t.data.tags["mlpipe.trial"] for t in local] == [t.info.run_name for t in local]
    assert {t.data.tags["mlpipe.backend"] for t in local} == {"optuna"}
    # the best trial of each study is tagged for the next study's warm start
    assert best.data.tags[TRIAL_BEST_TAG] == "true" and TRIAL_BEST_TAG not in early.data.tags
    assert sum(TRIAL_BEST_TAG in t.data.tags for t in local) == 1
    for katib_trial_run, local_trial_run in zip([best, best, best], local, strict=True):
        assert set(local_trial_run.data.tags) | {TRIAL_BEST_TAG} == set(katib_trial_run.data.tags)
        assert set(local_trial_run.data.params) == set(katib_trial_run.data.params) == set(SPACE)
        assert set(local_trial_run.data.metrics) == set(katib_trial_run.data.metrics)
        assert local_trial_run.info.status == "FINISHED"
    first = local[0].data
    assert first.metrics["best_rounds"] == 225  # 150 rounds on 2/3 of the rows, scaled
    assert first.metrics["cv_roc_auc"] == pytest.approx(0.8 + float(first.params["learning_rate"]))


def test_api_hiccups_while_waiting_are_ridden_out(cluster):
    exp = rendered()
    cluster.script(
        "experiments",
        exp["metadata"]["name"],
        [
            katib_experiment_status("Running"),
            KubernetesError("etcd leader changed"),
            katib_experiment_status("Succeeded", succeeded=1, best=BEST),
        ],
    )
    assert launch(cluster, exp)[0]["trials_complete"] == 1


def test_an_experiment_katib_refuses_fails_the_task_with_katibs_reason(cluster):
    exp = rendered()
    exp["spec"]["parallelTrialCount"] = 7  # more than maxTrialCount: Katib's webhook refuses it
    with pytest.raises(StageError, match="cannot create the experiment") as info:
        launch(cluster, exp)
    assert "parallelTrialCount: 7 should be less than or equal to" in str(info.value)
    assert cluster.objects == {}


def test_rbac_refusal_names_what_is_missing(cluster):
    cluster.deny("create", "experiments")
    with pytest.raises(StageError, match=f"needs create/get/watch/delete .* in namespace {NS}"):
        launch(cluster, rendered())


def test_a_retry_attaches_to_its_experiment(cluster):
    exp = rendered()
    name = exp["metadata"]["name"]
    cluster.create(*EXP, exp)  # left by the first attempt of the task
    cluster.script(
        "experiments", name, [katib_experiment_status("Succeeded", succeeded=1, best=BEST)]
    )
    assert launch(cluster, exp)[0]["trials_complete"] == 1
    # created once (by the first attempt): the retry's create met AlreadyExists and it attached
    assert len(cluster.verbs("create", "experiments")) == 1
    assert cluster.verbs("delete") == []


def test_a_retry_replaces_its_failed_experiment(cluster):
    exp = rendered()
    name = exp["metadata"]["name"]
    first = cluster.create(*EXP, exp)

    def controller(obj, tick):
        if obj["metadata"]["uid"] == first["metadata"]["uid"]:
            return katib_experiment_status("Failed", failed=6)
        return katib_experiment_status("Succeeded", succeeded=1, best=BEST)

    cluster.script("experiments", name, controller)
    assert launch(cluster, exp)[0]["trials_complete"] == 1
    assert cluster.verbs("delete", "experiments") == [("delete", "experiments", NS, name)]


def test_a_different_experiment_under_the_same_name_is_left_alone(cluster):
    exp = rendered()
    other = copy.deepcopy(exp)
    other["spec"]["maxTrialCount"] = 7
    other["metadata"]["annotations"]["mlpipe.dev/spec-hash"] = "0" * 16
    cluster.create(*EXP, other)
    with pytest.raises(StageError, match="a different Katib Experiment"):
        launch(cluster, exp)
    assert cluster.verbs("delete") == []


def _katib_training(**over) -> TrainingConfig:
    return TrainingConfig.model_validate(
        {
            "algorithms": ["lightgbm"],
            "hyperparameter_tuning": True,
            "tuning_backend": "katib",
            "max_trials": 4,
            "params": {"lightgbm": {"n_estimators": 500}},
            "search_spaces": {"lightgbm": {k: v.model_dump() for k, v in SPACE.items()}},
            **over,
        }
    )


def test_run_on_katib_stages_the_inputs_and_wires_the_config(cluster, trial_data, tmp_path):
    """The trials read a staged copy in the project's store (never KFP's artifact URIs), with
    the folds the task defined, in the configured namespace; the copy is gone afterwards."""
    from components.common.artifacts import load_model, read_dataset
    from components.common.splitting import split_indices
    from components.tune.katib_staging import read_folds

    training = _katib_training()
    created, seen = [], {}

    def controller(obj, tick):
        if tick == 0:
            created.append(obj)
            argv = shlex.split(container(obj)["command"][2])
            arg = lambda flag: argv[argv.index(flag) + 1]  # noqa: E731
            seen.update(train=arg("--train-data"), folds=arg("--folds"))
            seen["tf"] = arg("--transformer")
            seen["staged"] = [Path(seen[k]).exists() for k in ("train", "folds", "tf")]
            seen["read_folds"] = read_folds(seen["folds"])
        return katib_experiment_status("Succeeded", succeeded=4, best=BEST)

    cluster.script("experiments", "*", controller)  # the name is derived from the spec
    staging = tmp_path / "staging"
    options = {
        "namespace": "mlpipe",
        "staging_url": str(staging),
        "poll_s": 0.01,
        "timeout_s": 5,
        "parallel_trials": 8,
    }
    lines: list[str] = []
    train, tf = str(trial_data / "train.parquet"), str(trial_data / "transformer")
    result = run_on_katib(
        train,
        tf,
        "lightgbm",
        training,
        options,
        adapter=cluster,
        identity=("minio://mlpipeline/v2/artifacts/run/train", "minio://.../transformer"),
        log=lines.append,
    )
    exp = created[0]
    assert exp["metadata"]["namespace"] == "mlpipe"
    assert exp["spec"]["maxTrialCount"] == 4 and exp["spec"]["parallelTrialCount"] == 4
    assert result["best_params"]["n_estimators"] == 371 and result["algorithm"] == "lightgbm"
    assert seen["staged"] == [True, True, True]
    assert all(seen[k].startswith(str(staging)) for k in ("train", "folds", "tf"))
    assert "minio://" not in container(exp)["command"][2]
    _, spec = load_model(tf)
    expected = split_indices(
        read_dataset(train)[spec["label"]].to_numpy(),
        training.cv_folds,
        training.cv_strategy,
        training.seed,
    )
    assert len(seen["read_folds"]) == training.cv_folds
    for (fit, val), (efit, evalid) in zip(seen["read_folds"], expected, strict=True):
        assert (fit == efit).all() and (val == evalid).all()
    env = {e["name"]: e for e in container(exp)["env"]}
    # the read-only key: trials only read the staged copy
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "mlpipe-s3-readonly"
    assert env["AWS_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"]["name"] == "mlpipe-pipeline-env"
    assert not any(staging.iterdir())  # removed once the experiment is over
    assert any("staged under" in line for line in lines)


def test_the_staged_inputs_are_removed_when_the_experiment_fails(cluster, trial_data, tmp_path):
    cluster.script(
        "experiments", "*", lambda obj, tick: katib_experiment_status("Failed", failed=4)
    )
    staging = tmp_path / "staging"
    with pytest.raises(StageError, match="failed"):
        run_on_katib(
            str(trial_data / "train.parquet"),
            str(trial_data / "transformer"),
            "lightgbm",
            _katib_training(),
            {"staging_url": str(staging), "poll_s": 0.01, "timeout_s": 5},
            adapter=cluster,
        )
    assert not any(staging.iterdir())


def test_the_staging_prefix_is_the_inputs_identity():
    from components.tune.katib_staging import staging_key

    a = staging_key("lightgbm", "minio://x/train", "minio://x/tf")
    assert a == staging_key("lightgbm", "minio://x/train", "minio://x/tf")
    assert a != staging_key("xgboost", "minio://x/train", "minio://x/tf")
    assert a != staging_key("lightgbm", "minio://y/train", "minio://x/tf")


def test_staging_again_overwrites_in_place(trial_data, tmp_path):
    """A retry (or a concurrent run with the same cached inputs) stages over the same prefix:
    the same layout, never nested, never removed first."""
    from components.tune.katib_staging import read_folds, stage_inputs

    folds = [(np.arange(0, 10), np.arange(10, 15))] * 3
    args = (str(trial_data / "train.parquet"), str(trial_data / "transformer"), folds)
    first = stage_inputs(*args, str(tmp_path), "lightgbm-k")
    layout = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    again = stage_inputs(*args, str(tmp_path), "lightgbm-k")
    assert again == first
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == layout
    assert [len(v) for _, v in read_folds(again.folds_uri)] == [5, 5, 5]


def test_on_a_cluster_the_staging_location_must_be_an_object_store(monkeypatch):
    from components.tune.katib_staging import staging_base

    monkeypatch.setenv("MLPIPE_CLUSTER", "1")
    monkeypatch.setenv("MLPIPE_STATE_DIR", "s3://mlpipe-data/state")
    assert staging_base(None) == "s3://mlpipe-data/state/katib-staging"
    assert staging_base("s3://other/stage/") == "s3://other/stage"
    with pytest.raises(StageError, match="object store URL"):
        staging_base("/tmp/stage")


def test_the_namespace_defaults_to_the_pipelines_own(tmp_path):
    from components.common.config import KatibConfig
    from components.tune.katib_launcher import experiment_namespace

    assert KatibConfig().namespace == "mlpipe"
    cluster_cfg = load_pipeline_config(profile=REPO_ROOT / "config/profiles/cluster.yaml")
    assert cluster_cfg.model_training.katib.namespace == "mlpipe"
    assert cluster_cfg.deployment.rollout.kserve.namespace == "mlpipe"
    sa = tmp_path / "namespace"
    sa.write_text("team-a\n")
    assert experiment_namespace(KatibConfig(namespace=None), sa) == "team-a"
    with pytest.raises(StageError, match="not readable"):
        experiment_namespace(KatibConfig(namespace=None), tmp_path / "absent")


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


# ---------------------------------------------------------------- the trial entrypoint


@pytest.fixture(scope="module")
def trial_data(tmp_path_factory, sample_data, schema):
    from components.features.features import run as build_features

    root = tmp_path_factory.mktemp("trial")
    src = root / "data.parquet"
    sample_data.to_parquet(src)
    feature_cfg = load_pipeline_config().feature_engineering.model_dump(mode="json")
    build_features(
        str(src),
        schema.model_dump(mode="json"),
        feature_cfg,
        str(root / "train.parquet"),
        str(root / "test.parquet"),
        str(root / "transformer"),
    )
    return root


def _trial_argv(exp: dict, values: dict[str, str], metrics: Path) -> list[str]:
    job = _katib_substitute(exp, values)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    return _wrap_like_the_stdout_collector(command, metrics)


def _collect(text: str, names: list[str]) -> dict[str, list[float]]:
    """Katib's text-format parsing: lines that mention a metric, the default filter's matches."""
    out: dict[str, list[float]] = {n: [] for n in names}
    for line in text.splitlines():
        if not any(n in line for n in names):
            continue
        for match in KATIB_FILTER.finditer(line):
            if match.group(1).strip() in out:
                out[match.group(1).strip()].append(float(match.group(2)))
    return out


def test_the_trial_runs_as_katib_runs_it(trial_data, tmp_path):
    exp = rendered(
        train_uri=str(trial_data / "train.parquet"),
        transformer_uri=f"file://{trial_data / 'transformer'}",
        fixed_params={"n_estimators": 80, "n_jobs": 1},
    )
    metrics = tmp_path / "metrics.log"
    argv = _trial_argv(
        exp,
        {
            "learning_rate": "0.1",
            "num_leaves": "15",
            "boosting_type": "gbdt",
            "trialName": "t-1",
        },
        metrics,
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    log = metrics.read_text()
    assert proc.returncode == 0, log
    assert list(tmp_path.glob("*.pid"))  # the collector's completion marker was written
    found = _collect(log, ["cv_roc_auc", "cv_roc_auc_std", "best_rounds"])
    folds = found["cv_roc_auc"]
    assert len(folds) == 3  # one running mean per fold: medianstop's steps
    assert 0.75 < folds[-1] < 1.0  # `latest`: the mean over all folds
    assert len(found["cv_roc_auc_std"]) == 1 and 0 <= found["cv_roc_auc_std"][0] < 0.1
    assert len(found["best_rounds"]) == 1 and 1 <= found["best_rounds"][0] <= 80
    metric_lines = [line for line in log.splitlines() if "cv_roc_auc=" in line]
    for line in metric_lines:  # RFC 3339 timestamps: Katib orders the observations by them
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z cv_roc_auc=[\d.]+$", line), line
    assert seconds < 60


def _fake_cv(scores, rounds=None, error=None):
    def cross_validate(train, spec, transformer, algorithm, params, folds, strategy, seed, **kw):
        if error is not None:
            raise error
        for i in range(len(scores)):
            kw["on_fold"](i, sum(scores[: i + 1]) / (i + 1))
        cross_validate.params = params
        mean = sum(scores) / len(scores)
        return CVResult(mean, 0.01, list(scores), [rounds] * len(scores) if rounds else [])

    return cross_validate


def _argv(data: Path, *params: str, space: dict | None = None) -> list[str]:
    space = space or {k: v.model_dump(mode="json") for k, v in SPACE.items()}
    argv = [
        "--algorithm",
        "lightgbm",
        "--train-data",
        str(data / "train.parquet"),
        "--transformer",
        str(data / "transformer"),
        "--fixed-params-json",
        '{"n_estimators": 100}',
        "--space-json",
        json.dumps(space),
    ]
    for p in params:
        argv += ["--param", p]
    return argv


PARAMS = ("learning_rate=0.05", "num_leaves=63", "boosting_type=gbdt")


def test_trial_output_and_exit_codes(trial_data, monkeypatch, capsys):
    import components.tune.cv as cv

    fake = _fake_cv([0.90, 0.92, 0.91], rounds=120)
    monkeypatch.setattr(cv, "cross_validate", fake)
    assert trial_module.main(_argv(trial_data, *PARAMS)) == 0
    out = capsys.readouterr().out
    found = _collect(out, ["cv_roc_auc", "cv_roc_auc_std", "best_rounds"])
    assert found["cv_roc_auc"] == pytest.approx([0.90, 0.91, 0.91])
    assert found["best_rounds"] == [180.0]  # 120 rounds on 2/3 of the rows, scaled to all rows
    assert fake.params == {
        "n_estimators": 100,
        "learning_rate": 0.05,
        "num_leaves": 63,
        "boosting_type": "gbdt",
    }

    monkeypatch.setattr(cv, "cross_validate", _fake_cv([], error=ValueError("num_leaves < 2")))
    assert trial_module.main(_argv(trial_data, *PARAMS)) == 1
    captured = capsys.readouterr()
    assert "cv_roc_auc=" not in captured.out and "num_leaves < 2" in captured.err

    monkeypatch.setattr(cv, "cross_validate", _fake_cv([float("nan")] * 3))
    assert trial_module.main(_argv(trial_data, *PARAMS)) == 1
    assert "cross-validation score is nan" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (PARAMS[:2], "no value for searched parameter(s) ['boosting_type']"),
        ((*PARAMS, "max_bin=63"), "unknown parameter 'max_bin'"),
        ((*PARAMS[:2], "boosting_type=goss"), "not one of"),
        ((*PARAMS, "learning_rate=0.1"), "given twice"),
        ((*PARAMS[1:], "learning_rate=${trialParameters.learning_rate}"), "not substituted"),
        ((*PARAMS[1:], "learning_rate"), "expected NAME=VALUE"),
    ],
)
def test_bad_trial_arguments_exit_2(trial_data, capsys, params, reason):
    assert trial_module.main(_argv(trial_data, *params)) == 2
    assert reason in capsys.readouterr().err


def test_a_missing_input_fails_the_trial(tmp_path, capsys):
    assert trial_module.main(_argv(tmp_path, *PARAMS)) == 1
    assert "failed:" in capsys.readouterr().err


def test_the_trial_never_talks_to_mlflow(trial_data, tmp_path, monkeypatch, capsys):
    """Even with an MLflow URI in its environment: trial pods have no MLflow login, and the
    track task logs the trials (test_katib_trials_reach_mlflow_like_local_trials)."""
    import components.tune.cv as cv

    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("KATIB_TRIAL_NAME", "tune-lightgbm-abc-x7k2")
    monkeypatch.setattr(cv, "cross_validate", _fake_cv([0.90, 0.92, 0.91]))
    assert trial_module.main(_argv(trial_data, *PARAMS)) == 0
    assert "cv_roc_auc=" in capsys.readouterr().out
    assert not store.exists()


def test_the_trial_reads_remote_artifacts(trial_data, monkeypatch, capsys):
    """On a cluster the trial gets the artifacts' URIs: it copies them with fsspec (here its
    in-memory filesystem; s3://, gs:// and KFP's minio:// go the same way)."""
    import fsspec

    import components.tune.cv as cv

    fs = fsspec.filesystem("memory")
    fs.pipe("/run-1/train.parquet", (trial_data / "train.parquet").read_bytes())
    for file in (trial_data / "transformer").iterdir():
        fs.pipe(f"/run-1/transformer/{file.name}", file.read_bytes())
    fake = _fake_cv([0.9, 0.9, 0.9])
    monkeypatch.setattr(cv, "cross_validate", fake)
    argv = _argv(trial_data, *PARAMS)
    argv[argv.index("--train-data") + 1] = "memory://run-1/train.parquet"
    argv[argv.index("--transformer") + 1] = "memory://run-1/transformer"
    assert trial_module.main(argv) == 0, capsys.readouterr().err
    fs.rm("/run-1", recursive=True)

    seen = []
    monkeypatch.setattr(
        fsspec.core, "url_to_fs", lambda url: seen.append(url) or (_ for _ in ()).throw(OSError)
    )
    with pytest.raises(OSError):
        trial_module.localize("minio://mlpipeline/v2/artifacts/train", trial_data)
    assert seen == ["s3://mlpipeline/v2/artifacts/train"]


# ---------------------------------------------------------------- trial pods: security, env, RBAC


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


def test_a_trial_on_the_staged_folds_scores_what_the_local_backend_scores(trial_data, tmp_path):
    """The tune task's staging, the rendered trial command with two assignments filled in as
    Katib fills them, run as Katib's StdOut collector wraps it: the `latest` objective equals the
    local backend's cross-validation for the same parameters and folds."""
    from components.common.artifacts import load_model, read_dataset
    from components.common.splitting import split_indices
    from components.tune.cv import cross_validate
    from components.tune.katib_staging import stage_inputs

    train_path, tf_path = str(trial_data / "train.parquet"), str(trial_data / "transformer")
    train = read_dataset(train_path)
    transformer, spec = load_model(tf_path)
    y = train[spec["label"]].to_numpy()
    splits = split_indices(y, 3, "stratified", 42)
    staged = stage_inputs(train_path, tf_path, splits, str(tmp_path / "stage"), "lightgbm-k")
    space = {k: SPACE[k] for k in ("learning_rate", "num_leaves")}
    fixed = {"n_estimators": 60, "n_jobs": 1}
    exp = render_experiment(
        namespace="mlpipe",
        algorithm="lightgbm",
        space=space,
        train_uri=staged.train_uri,
        transformer_uri=f"file://{staged.transformer_uri}",
        folds_uri=staged.folds_uri,
        fixed_params=fixed,
    )
    values = {"learning_rate": "0.08", "num_leaves": "21.0", "trialName": "t-2"}
    metrics = tmp_path / "metrics.log"
    argv = _trial_argv(exp, values, metrics)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    log = metrics.read_text()
    assert proc.returncode == 0, log
    objective = _collect(log, ["cv_roc_auc"])["cv_roc_auc"][-1]
    local = cross_validate(
        train,
        spec,
        transformer,
        "lightgbm",
        {**fixed, "learning_rate": 0.08, "num_leaves": 21},
        3,
        "stratified",
        42,
    )
    assert objective == pytest.approx(local.mean, abs=1e-6)  # printed with 6 decimals


def test_a_nan_is_reported_without_an_equals_sign(capsys):
    trial_module.emit("cv_roc_auc", float("nan"))
    captured = capsys.readouterr()
    assert captured.out == "" and "cv_roc_auc=" not in captured.err
