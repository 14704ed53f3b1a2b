"""`mlpipe submit` and `mlpipe schedule` end to end (CLI main()) against the stand-in KFP API
server, which holds every request to the KFP v2beta1 swagger."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from tests.support.kfp_standin import KfpStandin

pytestmark = pytest.mark.usefixtures("kfp_offline")


@pytest.fixture
def standin():
    with KfpStandin() as server:
        yield server


def test_submit_uploads_creates_run_and_waits_for_success(standin, capsys):
    code = main(
        ["submit", "--host", standin.url, "--set", "model_training.seed=7", "--param",
         "tracking_uri=http://mlflow.mlflow:5000", "--run-name", "try-1", "--wait", "--poll", "0"]
    )  # fmt: skip
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out
    assert {r.status for r in standin.requests} == {200}
    run_id = next(iter(standin.runs))
    assert f"run try-1: {run_id} (PENDING) with " in out
    assert f"run URL: {standin.url}/#/runs/details/{run_id}" in out
    assert "s  RUNNING\n" in out and "s  SUCCEEDED\n" in out
    assert out.endswith(f"run {run_id} finished: SUCCEEDED\n")
    body = standin.calls("RunService_CreateRun")[0].body
    params = body["runtime_config"]["parameters"]
    assert params["tracking_uri"] == "http://mlflow.mlflow:5000"
    # --set changed the config: the compiled defaults (seed, config, hash) all follow it
    version = standin.versions[body["pipeline_version_reference"]["pipeline_version_id"]]
    defaults = version["pipeline_spec"]["root"]["inputDefinitions"]["parameters"]
    assert "seed" not in params and defaults["seed"]["defaultValue"] == 7
    assert defaults["config"]["defaultValue"]["model_training"]["seed"] == 7
    # the cluster profile reads s3://..., which this machine cannot reach: no digest, said so
    assert params["source_digest"] == ""
    assert "cannot compute the data digest here" in captured.err
    experiment = standin.experiments[body["experiment_id"]]
    assert experiment["display_name"] == "acs-employment"  # the config's project.experiment
    assert body["pipeline_version_reference"]["pipeline_version_id"] in standin.versions
    assert body["service_account"] == "mlpipe-pipeline"  # the config's runtime.service_account


def test_a_file_source_is_digested_as_mlpipe_run_does(standin, capsys):
    assert main(["submit", "--host", standin.url, "--profile", "none"]) == 0
    params = standin.calls("RunService_CreateRun")[0].body["runtime_config"]["parameters"]
    assert len(params["source_digest"]) == 64  # the bundled file's sha256, as `mlpipe run` has


def test_submitting_again_reuses_the_version_and_experiment(standin, capsys):
    assert main(["submit", "--host", standin.url]) == 0
    assert main(["submit", "--host", standin.url, "--experiment", "other"]) == 0
    out = capsys.readouterr().out
    assert "uploaded version" in out and "reusing version" in out
    assert len(standin.calls("UploadPipelineVersion")) == 1 and len(standin.runs) == 2
    assert sorted(e["display_name"] for e in standin.experiments.values()) == [
        "acs-employment",
        "other",
    ]


def test_a_config_change_is_a_new_version(standin):
    assert main(["submit", "--host", standin.url]) == 0
    assert main(["submit", "--host", standin.url, "--set", "model_training.seed=7"]) == 0
    assert len(standin.calls("UploadPipelineVersion")) == 2


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("sed=7", "mlpipe-training has no parameter 'sed' (parameters: algorithms,"),
        ("seed", "expected key=value"),
        # set alone, these would disagree with the config the run records: --set changes them
        ("seed=7", "--param seed: comes from the config; change the config with --set"),
        ("config={}", "--param config: comes from the config"),
        ("source=s3://b/x.parquet", "--param source: comes from the config"),
    ],
)
def test_a_bad_param_fails_before_any_request(standin, capsys, param, message):
    assert main(["submit", "--host", standin.url, "--param", param]) == 2
    assert message in capsys.readouterr().err
    assert standin.requests == []


def test_a_failed_run_exits_non_zero(capsys):
    with KfpStandin(run_states=["PENDING", "RUNNING", "FAILED"]) as standin:
        assert main(["submit", "--host", standin.url, "--wait", "--poll", "0"]) == 1
    assert "finished: FAILED" in capsys.readouterr().out


def test_auth_failure_is_reported_without_retries(capsys, monkeypatch):
    with KfpStandin(token="s3cret") as standin:
        assert main(["submit", "--host", standin.url]) == 1
        assert len(standin.requests) == 1  # healthz, refused, not retried
        err = capsys.readouterr().err
        assert "HTTP 401" in err and "KFP_TOKEN" in err
        monkeypatch.setenv("KFP_TOKEN", "s3cret")
        monkeypatch.setenv("KFP_HOST", standin.url)
        assert main(["submit"]) == 0


def test_no_host_is_reported(capsys):
    assert main(["submit"]) == 1
    assert "pass --host or set KFP_HOST" in capsys.readouterr().err


def test_schedule_from_the_config_cron_then_list_and_disable(standin, capsys):
    args = ["schedule", "--host", standin.url, "--set", "data_ingestion.schedule=0 3 * * 1"]
    assert main([*args, "--param", "tracking_uri=http://mlflow:5000"]) == 0
    out = capsys.readouterr().out
    (recurring,) = standin.recurring_runs.values()
    body = standin.calls("RecurringRunService_CreateRecurringRun")[0].body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}  # seconds first
    assert (body["max_concurrency"], body["mode"], body["no_catchup"]) == (1, "ENABLE", True)
    assert body["display_name"] == "mlpipe-training-schedule"
    assert body["service_account"] == "mlpipe-pipeline"  # the config's runtime.service_account
    assert body["runtime_config"]["parameters"]["tracking_uri"] == "http://mlflow:5000"
    assert f"/#/recurringrun/details/{recurring['recurring_run_id']}" in out

    assert main([*args]) == 1  # the same name is already scheduled
    assert "already scheduled" in capsys.readouterr().err
    assert main(["schedule", "--host", standin.url, "--list"]) == 0
    listing = capsys.readouterr().out
    assert "ENABLED" in listing and "0 0 3 * * 1" in listing
    assert main(["schedule", "--host", standin.url, "--disable", "mlpipe-training-schedule"]) == 0
    assert recurring["status"] == "DISABLED"
    assert main(["schedule", "--host", standin.url, "--disable", "mlpipe-training-schedule"]) == 1


def test_schedule_options_reach_the_request(standin):
    code = main(
        ["schedule", "--host", standin.url, "--cron", "0 30 2 * * *", "--name", "nightly",
         "--max-concurrency", "3", "--catchup", "--paused"]
    )  # fmt: skip
    assert code == 0
    body = standin.calls("RecurringRunService_CreateRecurringRun")[0].body
    assert body["trigger"]["cron_schedule"]["cron"] == "0 30 2 * * *"
    assert (body["max_concurrency"], body["mode"], body["no_catchup"]) == (3, "DISABLE", False)
    assert next(iter(standin.recurring_runs.values()))["status"] == "DISABLED"


@pytest.mark.parametrize(
    ("command", "operation"),
    [
        (["submit"], "RunService_CreateRun"),
        (["schedule", "--cron", "0 3 * * *"], "RecurringRunService_CreateRecurringRun"),
    ],
)
def test_service_account_flag_overrides_the_config(standin, command, operation):
    assert main([*command, "--host", standin.url, "--service-account", "other-sa"]) == 0
    (call,) = standin.calls(operation)
    assert call.status == 200 and call.body["service_account"] == "other-sa"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "no schedule: pass --cron"),
        (["--cron", "0 3 *"], "has 3 fields"),
        (["--cron", "0 3 * * 9"], "day of week: 9 is outside 0-6"),
        (["--max-concurrency", "11"], "KFP allows 1-10"),
    ],
)
def test_schedule_refuses_bad_input_before_any_request(standin, capsys, extra, message):
    assert main(["schedule", "--host", standin.url, *extra]) == 2
    assert message in capsys.readouterr().err
    assert standin.requests == []
