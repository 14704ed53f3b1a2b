"""pipelines/platform.py: what `configure_task`, `mount_cluster_env` and `with_failure_alert` put
in a compiled spec. Tiny pipelines built here with kfp.dsl and compiled by KFP's own compiler,
plus the project's two pipelines compiled by `mlpipe compile` (every task mounted, every task
inside the exit handler).

No `from __future__ import annotations`: KFP reads the components' annotations as types."""

import pytest
import yaml
from kfp import compiler, dsl

from components.common.config import load_pipeline_config
from pipelines.code_version import ENV_NAME, stage_version
from pipelines.platform import (
    CONFIG_MAP_KEYS,
    EXIT_HANDLER,
    configure_task,
    mount_cluster_env,
    with_failure_alert,
)

RESOURCES = ("100m", "1", "128M", "1G")


@dsl.component(base_image="python:3.11")
def echo(x: str) -> str:
    return x


def _compile(pipeline, tmp_path):
    """KFP's compiler -> (pipeline spec, platform spec; {} when nothing was mounted)."""
    out = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(out))
    docs = list(yaml.safe_load_all(out.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def _one_task(tmp_path, configure):
    """A pipeline of one `echo` task that `configure(task)` sets up, compiled:
    (the root task, its container, its Kubernetes mounts)."""

    @dsl.pipeline(name="tiny")
    def tiny(x: str = "a"):
        configure(echo(x=x))

    spec, platform = _compile(tiny, tmp_path)
    task = spec["root"]["dag"]["tasks"]["echo"]
    container = spec["deploymentSpec"]["executors"]["exec-echo"]["container"]
    mounts = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    return task, container, mounts.get("executors", {}).get("exec-echo", {})


def _secrets(mounts):
    return {s["secretName"]: s for s in mounts.get("secretAsEnv", [])}


@pytest.fixture(scope="module")
def cfg():
    return load_pipeline_config()


# ---------------------------------------------------------------- configure_task


def test_configure_task_sets_name_resources_caching_retries_and_code_version(cfg, tmp_path):
    task, container, mounts = _one_task(
        tmp_path,
        lambda t: configure_task(t, cfg, "Shown", RESOURCES, cached=True, retries=3, code="ingest"),
    )
    assert task["taskInfo"]["name"] == "Shown"
    assert task["cachingOptions"] == {"enableCache": True}
    assert task["retryPolicy"]["maxRetryCount"] == 3
    assert task["retryPolicy"]["backoffDuration"] == "30s"
    assert task["retryPolicy"]["backoffFactor"] == 2.0
    resources = container["resources"]
    got = tuple(
        resources[k]
        for k in (
            "resourceCpuRequest",
            "resourceCpuLimit",
            "resourceMemoryRequest",
            "resourceMemoryLimit",
        )
    )
    assert got == RESOURCES  # request, limit, request, limit: in that order
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {ENV_NAME: stage_version("ingest")}
    assert stage_version("ingest") != stage_version("train")  # the stage's own digest
    assert mounts["configMapAsEnv"] and mounts["fieldPathAsEnv"]  # the cluster mounts too


def test_an_uncached_task_without_retries_has_no_cache_and_no_retry_policy(cfg, tmp_path):
    task, _, _ = _one_task(
        tmp_path,
        lambda t: configure_task(t, cfg, "Once", RESOURCES, cached=False, retries=0, code="train"),
    )
    assert not task["cachingOptions"].get("enableCache", False)
    assert "retryPolicy" not in task


@pytest.mark.parametrize("resources", [("100m", "1", "128M"), ("100m", "1", "128M", "1G", "x")])
def test_resources_other_than_four_values_are_refused(cfg, tmp_path, resources):
    with pytest.raises(ValueError):
        _one_task(
            tmp_path,
            lambda t: configure_task(t, cfg, "Bad", resources, cached=True, retries=0, code="x"),
        )


# ---------------------------------------------------------------- mount_cluster_env


def test_the_mounts_are_named_by_the_config_and_all_optional(tmp_path):
    cfg = load_pipeline_config(
        overrides={
            "runtime.env_config_map": "my-env",
            "runtime.s3_secret": "my-s3",
            "runtime.mlflow_auth_secret": "my-login",
            "runtime.alerts_secret": "my-alerts",
        }
    )
    _, container, mounts = _one_task(tmp_path, lambda t: mount_cluster_env(t, cfg))
    (config_map,) = mounts["configMapAsEnv"]
    assert config_map["configMapName"] == "my-env"
    pairs = [(k["configMapKey"], k["envVar"]) for k in config_map["keyToEnv"]]
    assert pairs == [(key, key) for key in CONFIG_MAP_KEYS]
    secrets = _secrets(mounts)
    assert set(secrets) == {"my-s3", "my-login"}  # no alerts Secret unless asked
    assert {k["envVar"] for k in secrets["my-s3"]["keyToEnv"]} == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    # a key a cluster lacks must not leave the pod stuck in CreateContainerConfigError
    assert config_map["optional"] is True
    assert all(s["optional"] is True for s in secrets.values())
    assert mounts["fieldPathAsEnv"] == [
        {"name": "MLPIPE_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"}
    ]
    assert "env" not in container  # mount_cluster_env alone sets no code version


def test_alerts_mount_the_webhook_under_the_variable_the_config_names(tmp_path):
    cfg = load_pipeline_config(
        overrides={"runtime.alerts_secret": "hooks", "monitoring.webhook_url_env": "MY_HOOK"}
    )
    _, _, mounts = _one_task(tmp_path, lambda t: mount_cluster_env(t, cfg, alerts=True))
    hooks = _secrets(mounts)["hooks"]
    assert hooks["keyToEnv"] == [{"secretKey": "webhook_url", "envVar": "MY_HOOK"}]
    assert hooks["optional"] is True


# ---------------------------------------------------------------- with_failure_alert


def _steps(monitoring: dict, n: int = 1):
    echo(x="b")


def test_with_failure_alert_wraps_the_steps_in_an_exit_handler_that_alerts(cfg, tmp_path):
    spec, platform = _compile(with_failure_alert(_steps, "wrapped", "desc", cfg, 2), tmp_path)
    assert spec["pipelineInfo"] == {"name": "wrapped", "description": "desc"}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"monitoring", "n"}  # the steps' parameters, kept
    assert params["n"]["defaultValue"] == 1
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "notify-failure"}
    assert root["exit-handler-1"]["taskInfo"]["name"] == EXIT_HANDLER
    body = spec["components"][root["exit-handler-1"]["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"echo"}  # the steps' tasks run inside the handler
    notify = root["notify-failure"]
    assert notify["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    inputs = notify["inputs"]["parameters"]
    assert inputs["pipeline"]["runtimeValue"]["constant"] == "wrapped"
    assert inputs["monitoring"]["componentInputParameter"] == "monitoring"
    # the alert task: configured like every task, uncached, retried, with the webhook mounted
    assert notify["taskInfo"]["name"] == "Alert on failure"
    assert not notify["cachingOptions"].get("enableCache", False)
    assert notify["retryPolicy"]["maxRetryCount"] == 2
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert cfg.runtime.alerts_secret in _secrets(executors["exec-notify-failure"])
    assert cfg.runtime.alerts_secret not in _secrets(executors.get("exec-echo", {}))


def test_steps_with_a_return_annotation_still_compile_without_outputs(cfg, tmp_path):
    """KFP refuses pipeline outputs from inside an ExitHandler: the wrapper drops the
    annotation (the steps return nothing through it)."""

    def steps(monitoring: dict) -> str:
        echo(x="b")

    spec, _ = _compile(with_failure_alert(steps, "annotated", "d", cfg, 0), tmp_path)
    assert "outputDefinitions" not in spec["root"]
    assert "retryPolicy" not in spec["root"]["dag"]["tasks"]["notify-failure"]


def test_steps_without_a_monitoring_parameter_are_refused(cfg):
    def steps(n: int = 1):
        echo(x="b")

    with pytest.raises(ValueError, match="monitoring"):
        with_failure_alert(steps, "no-alerts", "d", cfg, 0)


# ---------------------------------------------------------------- the project's pipelines


@pytest.fixture(scope="module")
def spec(compile_cli):
    return compile_cli()[0]


def test_every_task_runs_inside_the_exit_handler_that_alerts_on_failure(spec):
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "notify-failure"}
    notify = root["notify-failure"]
    assert notify["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert notify["dependentTasks"] == ["exit-handler-1"]
    status = notify["inputs"]["parameters"]["status"]["taskFinalStatus"]
    assert status["producerTask"] == "exit-handler-1"
    run_name = notify["inputs"]["parameters"]["run_name"]["runtimeValue"]["constant"]
    assert run_name == "{{$.pipeline_job_name}}"
    handler = spec["root"]["dag"]["tasks"]["exit-handler-1"]
    body = spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"]
    assert {"ingest", "validate", "features", "gate", "commit-ingest"} <= set(body)


@pytest.mark.parametrize("pipeline", ["training", "monitoring"])
def test_every_task_mounts_the_cluster_env_and_s3_credentials(compile_cli, pipeline):
    spec, platform = compile_cli("--pipeline", pipeline)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])  # every task, none left out
    for label, config in executors.items():
        (config_map,) = config["configMapAsEnv"]
        assert config_map["configMapName"] == "mlpipe-pipeline-env", label
        mounted = {k["envVar"] for k in config_map["keyToEnv"]}
        assert {"MLPIPE_CLUSTER", "MLFLOW_TRACKING_URI", "MLPIPE_STATE_DIR"} <= mounted, label
        assert {"AWS_ENDPOINT_URL", "KFP_HOST"} <= mounted, label
        secrets = {s["secretName"]: s for s in config["secretAsEnv"]}
        s3 = {k["envVar"] for k in secrets["mlpipe-s3"]["keyToEnv"]}
        assert s3 == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, label
        # MLflow's login: names and keys only (never a value) from the client Secret
        login = {(k["secretKey"], k["envVar"]) for k in secrets["mlpipe-mlflow-auth"]["keyToEnv"]}
        assert login == {(k, k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        assert secrets["mlpipe-mlflow-auth"]["optional"] is True, label
        (run_id,) = config["fieldPathAsEnv"]
        assert run_id == {"name": "MLPIPE_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"}
        # the alert webhook only where alerts are sent, and only from the Secret
        alerts = label in ("exec-notify-failure", "exec-act")
        assert ("mlpipe-alerts" in secrets) == alerts, label
        if alerts:
            (key,) = secrets["mlpipe-alerts"]["keyToEnv"]
            assert key == {"secretKey": "webhook_url", "envVar": "MLPIPE_ALERT_WEBHOOK"}
