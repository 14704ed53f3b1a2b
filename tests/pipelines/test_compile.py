"""The compiled spec: what a cluster will run. Checks every task's image, resources, retries,
caching, that data moves between tasks only as artifacts, and that no default points at this
repository. What pipelines/platform.py puts in every spec (the mounts, the exit handler):
test_platform.py."""

import re

import pytest
import yaml

from components.common.config import REPO_ROOT
from pipelines.cli import main

# tasks that move state (the registry's aliases, a source's watermark): never cached
# the gate reads the registry's champion, register/deploy move aliases, commit moves a watermark;
# the exit handler's task alerts; not-deployed reads gate's blessing, new on every run
NEVER_CACHED_TASKS = {
    "gate",
    "register",
    "deploy",
    "not-deployed",
    "commit-ingest",
    "notify-failure",
}


@pytest.fixture(scope="module")
def compiled(compile_cli):
    return compile_cli()


@pytest.fixture(scope="module")
def spec(compiled):
    return compiled[0]


def _body(spec):
    """The tasks inside the exit handler: everything but the failure alert."""
    handler = spec["root"]["dag"]["tasks"]["exit-handler-1"]
    return spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"]


def _tasks(spec):
    """Every task of the pipeline, nested DAGs (the quality gate's dsl.If) included."""
    found = {}

    def walk(dag):
        for name, task in dag.get("tasks", {}).items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"])
            else:
                found[name] = (task, component)

    walk(spec["root"]["dag"])
    return found


def _executor(spec, component):
    return spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]


def test_at_least_six_tasks(spec):
    assert set(_tasks(spec)) >= {"ingest", "validate", "features", "train", "evaluate", "register"}


def test_every_task_has_pinned_image_resources_retry_and_caching(spec):
    for name, (task, component) in _tasks(spec).items():
        container = _executor(spec, component)
        image = container["image"]
        assert re.fullmatch(r"[\w.\-/]+:\d+\.\d+\.\d+[\w.\-]*", image), f"{name}: {image}"
        assert not image.endswith(":latest")
        resources = container["resources"]
        for key in (
            "resourceCpuRequest",
            "resourceCpuLimit",
            "resourceMemoryRequest",
            "resourceMemoryLimit",
        ):
            assert resources.get(key), f"{name}: no {key}"
        assert task["retryPolicy"]["maxRetryCount"] >= 1, name
        assert task["taskInfo"]["name"], name
        caching = task.get("cachingOptions", {}).get("enableCache", False)
        assert caching == (name not in NEVER_CACHED_TASKS), f"{name}: caching {caching}"
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert re.fullmatch(r"[0-9a-f]{16}", env["MLPIPE_CODE_VERSION"]), name


def test_validate_runs_in_the_tfdv_image(spec):
    _, component = _tasks(spec)["validate"]
    assert "/tfdv:" in _executor(spec, component)["image"]


def test_no_string_parameter_carries_a_path_between_tasks(spec):
    for name, (task, _component) in _tasks(spec).items():
        for param, value in task.get("inputs", {}).get("parameters", {}).items():
            # between tasks = fed by another task's output parameter
            assert "taskOutputParameter" not in value, f"{name}.{param} comes from a task"
            constant = value.get("runtimeValue", {}).get("constant")
            if isinstance(constant, str):
                assert "/" not in constant or name == "ingest", f"{name}.{param}={constant}"


def test_register_only_under_the_quality_gate(spec):
    root_tasks = _body(spec)
    assert "register" not in root_tasks
    # dsl.If / dsl.Else on the gate task's verdict (not evaluate's): one group of two branches
    group = next(t for n, t in root_tasks.items() if n.startswith("condition-branches"))
    assert "gate" in group["dependentTasks"]
    branches = spec["components"][group["componentRef"]["name"]]["dag"]["tasks"].values()
    bodies = {}
    for branch in branches:
        condition = branch["triggerPolicy"]["condition"]
        tasks = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"]
        bodies[condition] = tasks
    blessed = "inputs.parameter_values['pipelinechannel--gate-Output'] == true"
    assert set(bodies) == {blessed, f"!({blessed})"}
    assert set(bodies[blessed]) == {"register", "deploy"}
    assert bodies[blessed]["deploy"]["dependentTasks"] == ["register"]
    # blocked: nothing registered; the task only says so (the run's deployment output)
    assert set(bodies[f"!({blessed})"]) == {"not-deployed"}
    # the gate compares against the champion on evaluate's summary and records its verdict on
    # the MLflow run track's output names (a data dependency, no search for the run)
    gate = root_tasks["gate"]
    artifacts = gate["inputs"]["artifacts"]
    summary = artifacts["summary"]["taskOutputArtifact"]
    assert summary == {"outputArtifactKey": "summary", "producerTask": "evaluate"}
    tracked = artifacts["logged_model"]["taskOutputArtifact"]
    assert tracked == {"outputArtifactKey": "logged_model", "producerTask": "track"}


def test_tuning_fans_out_over_algorithms_and_gathers(spec):
    root = _body(spec)
    loop = next(t for t in root.values() if "parameterIterator" in t)
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("algorithms")
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert {"tune", "train"} <= set(body)
    select = root["select-model"]
    assert select["inputs"]["artifacts"]["models"]["taskOutputArtifact"]["producerTask"] == (
        next(name for name, t in root.items() if t is loop)
    )


def _defaults(spec):
    """Every string inside a default or a constant of a compiled spec, with where it is."""
    found = []

    def walk(node, where, inside=False):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}", inside or key in ("defaultValue", "constant"))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]", inside)
        elif isinstance(node, str) and inside:
            found.append((where, node))

    for name, component in [("root", spec["root"]), *spec["components"].items()]:
        walk(component.get("inputDefinitions", {}), name)
        walk(component.get("dag", {}), name)
    return found


@pytest.mark.parametrize("pipeline", ["training", "monitoring"])
def test_no_compiled_default_points_at_a_repository_path(compile_cli, pipeline):
    spec, _ = compile_cli("--pipeline", pipeline)
    top = {p.name for p in REPO_ROOT.iterdir()}
    for where, value in _defaults(spec):
        assert str(REPO_ROOT) not in value, f"{where}: {value}"
        assert not value.startswith(("sqlite:", "file:", "/")), f"{where}: {value}"
        first = value.split("/", 1)[0]
        assert not ("/" in value and first in top), f"{where}: {value} is a repository path"
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["source"]["defaultValue"].startswith("s3://"), params["source"]


def test_the_laptop_profile_compiles_the_laptop_defaults(compile_cli):
    spec, _ = compile_cli("--profile", "none")
    source = spec["root"]["inputDefinitions"]["parameters"]["source"]["defaultValue"]
    assert source == "data/acs_employment_ma_2015_2018.parquet"


@pytest.mark.parametrize("pipeline", ["training", "monitoring"])
def test_a_webhook_url_in_the_config_is_refused_before_compiling(
    tmp_path_factory, pipeline, capsys
):
    """Its path is a secret: on a cluster it comes from the alerts Secret only, so a config
    that holds one does not compile (and the error names where the URL goes instead)."""
    secret = "https://hooks.example.com/services/T000/B000/s3cr3t-path"
    out = tmp_path_factory.mktemp("spec") / "pipeline.yaml"
    args = ["compile", "--pipeline", pipeline, "--output", str(out)]
    assert main([*args, "--set", f"monitoring.webhook_url={secret}"]) != 0
    assert not out.exists()
    captured = capsys.readouterr()
    assert "webhook_url_env" in captured.err + captured.out
    assert "s3cr3t-path" not in captured.err + captured.out


def test_trial_and_model_pods_get_no_mlflow_credentials(compile_cli):
    """The MLflow login is for pipeline tasks only: neither the Katib Experiment the tune task
    renders (from the cluster profile) nor the InferenceService deploy renders names it, and no
    password reaches the compiled spec."""
    from components.common.config import REPO_ROOT, load_pipeline_config
    from components.deploy.kserve_target import KServeSettings, Model, render_inference_service
    from components.tune.katib_render import render_experiment

    cfg = load_pipeline_config(profile=REPO_ROOT / "config/profiles/cluster.yaml")
    katib = cfg.model_training.katib
    experiment = render_experiment(
        namespace=katib.namespace,
        algorithm="lightgbm",
        space=cfg.model_training.search_spaces["lightgbm"],
        train_uri="s3://b/train",
        transformer_uri="s3://b/transformer",
        env=katib.env,
        env_from_secrets=tuple(katib.env_from_secrets),
        env_config_map=katib.env_config_map,
        s3_secret=katib.s3_secret,
        service_account=katib.service_account,
    )
    settings = KServeSettings.from_config(cfg.deployment.rollout.kserve)
    isvc = render_inference_service("acs", Model("3", "s3://b/models/3", "ab" * 32), settings)
    for what, obj in (("trial", experiment), ("model", isvc)):
        text = yaml.safe_dump(obj)
        assert cfg.runtime.mlflow_auth_secret not in text, what
        assert "MLFLOW_TRACKING_USERNAME" not in text and "MLFLOW_TRACKING_PASSWORD" not in text
    # the trials' object store mount is there, with the read-only key, never the tasks' one
    trial = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in trial["containers"][0]["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {"mlpipe-s3-readonly"} and cfg.runtime.s3_secret not in refs

    spec, platform = compile_cli("--profile", "cluster")
    compiled = yaml.safe_dump(spec) + yaml.safe_dump(platform)
    assert "dev-only-mlflow-password" not in compiled
