"""The compiled spec: what a cluster will run. Checks every task's image, resources, retries,
caching, and that data moves between tasks only as artifacts."""

import re

import pytest
import yaml

from pipelines.cli import main

# tasks that move state (the registry's aliases, a source's watermark): never cached
# the gate reads the registry's champion, register/deploy move aliases, commit moves a watermark
SIDE_EFFECT_TASKS = {"gate", "register", "deploy", "commit-ingest"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("spec") / "pipeline.yaml"
    assert main(["compile", "--output", str(out)]) == 0
    return yaml.safe_load(out.read_text())


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
        assert caching == (name not in SIDE_EFFECT_TASKS), f"{name}: caching {caching}"
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
    root_tasks = spec["root"]["dag"]["tasks"]
    assert "register" not in root_tasks
    branch = next(t for t in root_tasks.values() if "triggerPolicy" in t)
    # the branch follows the gate task's verdict, not evaluate's
    condition = branch["triggerPolicy"]["condition"]
    assert "pipelinechannel--gate-Output" in condition, condition
    assert "gate" in branch["dependentTasks"]
    body = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"register", "deploy"}
    assert body["deploy"]["dependentTasks"] == ["register"]
    # the gate compares against the champion after track recorded the run, on evaluate's summary
    gate = root_tasks["gate"]
    assert "track" in gate["dependentTasks"]
    summary = gate["inputs"]["artifacts"]["summary"]["taskOutputArtifact"]
    assert summary == {"outputArtifactKey": "summary", "producerTask": "evaluate"}


def test_tuning_fans_out_over_algorithms_and_gathers(spec):
    root = spec["root"]["dag"]["tasks"]
    loop = next(t for t in root.values() if "parameterIterator" in t)
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("algorithms")
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert {"tune", "train"} <= set(body)
    select = root["select-model"]
    assert select["inputs"]["artifacts"]["models"]["taskOutputArtifact"]["producerTask"] == (
        next(name for name, t in root.items() if t is loop)
    )
