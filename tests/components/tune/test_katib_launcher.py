"""components/tune/katib_launcher.py: run_katib's control flow against the stand-in cluster
(succeeded, failed, timed out, trial failures, API hiccups, refusals, a retry attaching to or
replacing its experiment), the trials it reads back reaching MLflow like local ones, run_on_katib
staging the inputs and wiring the config (the staged copy removed on failure too), and the
experiment's namespace."""

from __future__ import annotations

import copy
import shlex
import time
from pathlib import Path

import pytest

from components.common.config import REPO_ROOT, TrainingConfig, load_pipeline_config
from components.common.errors import StageError
from components.common.k8s import KubernetesError
from components.common.mlflow_utils import TRIAL_BEST_TAG
from components.tune.cv import CVResult
from components.tune.katib_launcher import run_katib, run_on_katib
from tests.components.tune.katib_support import (
    EXP,
    NS,
    SPACE,
    container,
    rendered,
)
from tests.support.clock import FakeClock
from tests.support.k8s_standin import katib_experiment_status, katib_trial


def launch(cluster, exp, timeout_s=600, poll_s=10, **kw):
    t = FakeClock()
    lines: list[str] = []
    result = run_katib(
        cluster,
        exp,
        timeout_s,
        poll_s,
        SPACE,
        sleep=t.sleep,
        clock=t,
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
