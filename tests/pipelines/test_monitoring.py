"""The monitoring pipeline's spec and its recurring run: compiled by `mlpipe compile --pipeline
monitoring`, scheduled by `mlpipe schedule --pipeline monitoring` against the stand-in KFP API
server, which holds every request to the KFP v2beta1 swagger."""

from __future__ import annotations

import json

import pytest
import yaml

import pipelines.submit_cli as submit_cli
from components.common.config import override_settings
from components.monitor.actions import retrain_overrides
from pipelines.cli import main
from pipelines.kfp_package import PIPELINES
from tests.support.kfp_standin import KfpStandin

TASKS = {"load-batch", "champion-reference", "batch-statistics", "assess", "act"}
pytestmark = pytest.mark.usefixtures("kfp_offline")


@pytest.fixture(scope="module")
def package(settings, compile_once):
    return compile_once(settings, "monitoring")


def test_the_registry_holds_the_monitoring_pipeline(package):
    assert set(PIPELINES) >= {"training", "monitoring"}
    assert package.name == "mlpipe-monitoring"
    assert {"source", "source_kind", "labels", "monitoring", "retrain_mode"} <= set(
        package.parameters
    )
    assert package.parameters["retrain_mode"]["defaultValue"] == "kfp"


def test_every_task_has_image_resources_and_a_caching_choice(package):
    spec = package.spec
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "notify-failure"}  # the failure alert wraps them
    handler = spec["components"][root["exit-handler-1"]["componentRef"]["name"]]
    tasks = handler["dag"]["tasks"]
    assert set(tasks) == TASKS
    cached = {name: t["cachingOptions"].get("enableCache", False) for name, t in tasks.items()}
    # reading the champion, deciding on it and alerting are side effects; statistics are pure
    assert cached == {
        "load-batch": True,
        "champion-reference": False,
        "batch-statistics": True,
        "assess": False,
        "act": False,
    }
    executors = spec["deploymentSpec"]["executors"]
    for executor in executors.values():
        container = executor["container"]
        assert ":latest" not in container["image"]
        assert container["resources"]["cpuLimit"] and container["resources"]["memoryLimit"]
    images = {e["container"]["image"].split("/")[-1].split(":")[0] for e in executors.values()}
    assert images == {"pipeline", "tfdv"}  # TFDV statistics run in the tfdv image


def test_compile_cli_writes_the_monitoring_spec(tmp_path):
    out = tmp_path / "monitoring.yaml"
    assert main(["compile", "--pipeline", "monitoring", "--output", str(out)]) == 0
    spec, platform = yaml.safe_load_all(out.read_text())
    assert spec["pipelineInfo"]["name"] == "mlpipe-monitoring"
    assert "exec-act" in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_schedule_monitoring_from_the_ingestion_cron(capsys):
    with KfpStandin() as standin:
        code = main(
            [
                "schedule",
                "--pipeline",
                "monitoring",
                "--host",
                standin.url,
                "--set",
                "data_ingestion.schedule=0 6 * * *",
                "--param",
                "source=/data/requests.jsonl",
                "--param",
                "source_kind=request_log",
            ]
        )
        assert code == 0, capsys.readouterr().err
        (call,) = standin.calls("RecurringRunService_CreateRecurringRun")
        assert call.status == 200  # the stand-in validated it against the swagger
        body = call.body
        assert body["display_name"] == "mlpipe-monitoring-schedule"
        assert body["trigger"] == {"cron_schedule": {"cron": "0 0 6 * * *"}}
        params = body["runtime_config"]["parameters"]
        assert params["source"] == "/data/requests.jsonl"
        assert params["source_kind"] == "request_log"
        names = {p["display_name"]: p for p in standin.pipelines.values()}
        assert set(names) == {"mlpipe-monitoring", "mlpipe-training"}
        # retraining runs start the training version uploaded beside it, as the pipeline's SA
        (training_version,) = [
            v
            for v in standin.versions.values()
            if v["pipeline_id"] == names["mlpipe-training"]["pipeline_id"]
            and v["display_name"].startswith("mlpipe-training-")
        ]
        retraining = params["retraining"]
        assert retraining["version_id"] == training_version["pipeline_version_id"]
        assert retraining["pipeline_id"] == names["mlpipe-training"]["pipeline_id"]
        assert retraining["service_account"] == "mlpipe-pipeline"
        submitted = json.loads(retraining["settings"])  # whole, as JSON: ints stay ints
        assert submitted["pipeline"]["data_ingestion"]["source_url"].startswith("s3://")
        assert submitted["pipeline_path"] == "pipeline_config.yaml"  # no path of this machine
    assert "recurring run mlpipe-monitoring-schedule" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("seed=7", "has no parameter 'seed'"),
        ("monitoring={}", "--param monitoring: comes from the config"),  # --set monitoring.*
    ],
)
def test_schedule_refuses_an_unknown_or_config_monitoring_param(capsys, param, message):
    with KfpStandin() as standin:
        args = ["schedule", "--pipeline", "monitoring", "--host", standin.url]
        code = main([*args, "--cron", "0 6 * * *", "--param", param])
        assert code == 2 and not standin.requests
    assert message in capsys.readouterr().err


def test_cluster_retraining_creates_a_run_of_the_uploaded_training_version(
    settings, compile_once, tmp_path, monkeypatch
):
    from components.common.kfp_client import KfpClient
    from components.monitor.actions import TriggerStore, start_retraining_on_kfp

    monkeypatch.setenv("MLPIPE_STATE_DIR", str(tmp_path / "state"))
    key = "ab" * 32
    with KfpStandin() as standin:
        monkeypatch.setenv("KFP_HOST", standin.url)
        client = KfpClient.from_env()
        retraining = submit_cli.retraining_parameter(
            client, compile_once(settings, "training"), settings
        )
        assert TriggerStore().claim(key, {"status": "claimed"})
        out = start_retraining_on_kfp({"batch_digest": key, "newest": 2017}, retraining)
        (call,) = standin.calls("RunService_CreateRun")
        assert call.status == 200  # valid against the swagger
    body = call.body
    assert out["run_id"] and body["display_name"] == "mlpipe-retrain-abababababab"
    assert body["pipeline_version_reference"]["pipeline_version_id"] == retraining["version_id"]
    assert body["service_account"] == "mlpipe-pipeline"
    params = body["runtime_config"]["parameters"]
    assert params["ingestion"]["window"] == {"start": 2015, "end": 2017}
    split = params["feature_engineering"]["split"]
    assert (split["train_window"], split["test_window"]) == ([2015, 2016], [2017, 2017])
    # the run records the config it trains on: the windows are in `config` and its hash
    assert params["config"]["data_ingestion"]["window"] == {"start": 2015, "end": 2017}
    assert params["config"]["feature_engineering"]["split"] == split
    windows = retrain_overrides(settings, 2017)
    assert params["config_hash"] == override_settings(settings, windows).digest()
    assert params["config_hash"] != settings.digest()
    (trigger,) = TriggerStore().entries()
    assert trigger["status"] == "started" and trigger["run_id"] == out["run_id"]


def test_a_retraining_window_the_config_refuses_starts_no_run(settings):
    """A batch older than the training window's start: the window would end before it starts.
    The act task checks the changed config as `--set` does, before any request, and blames the
    retraining for it (not a flag nobody gave)."""
    from components.common.config import ConfigError
    from components.monitor.actions import retraining_parameters
    from pipelines.monitoring import retraining_defaults

    with pytest.raises(
        ConfigError, match="^retraining on data up to 2014: data_ingestion.window: "
    ):
        retraining_parameters(retraining_defaults(settings), 2014)


def test_cluster_retraining_without_the_training_version_says_how_to_get_it(settings):
    from components.common.errors import StageError
    from components.monitor.actions import start_retraining_on_kfp
    from pipelines.monitoring import retraining_defaults

    with pytest.raises(StageError, match="mlpipe submit|schedule --pipeline monitoring"):
        start_retraining_on_kfp({"batch_digest": "cd" * 32}, retraining_defaults(settings))
