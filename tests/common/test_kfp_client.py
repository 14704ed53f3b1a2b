"""The KFP adapter against the stand-in KFP API server (a real HTTP server on 127.0.0.1 that
holds every request to the KFP v2beta1 swagger and records it)."""

from __future__ import annotations

import socket

import pytest
import yaml

from components.common.kfp_client import (
    KfpAlreadyExists,
    KfpAuthError,
    KfpClient,
    KfpError,
    KfpInvalid,
    KfpNotFound,
    KfpTimeout,
    KfpUnavailable,
)
from components.common.kfp_standin import KfpStandin, schema_errors
from pipelines.kfp_package import compile_package


@pytest.fixture(scope="module")
def package(settings):
    return compile_package(settings)  # the real training pipeline, compiled once


@pytest.fixture
def standin():
    with KfpStandin() as server:
        yield server


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(standin, sleeps):
    return KfpClient(standin.url, sleep=sleeps.append, timeout_s=5)


def _setup(client, package, experiment="acs-employment"):
    pipeline, version, _ = client.ensure_pipeline_version(
        package.yaml_bytes, package.name, package.version_name
    )
    return pipeline, version, client.ensure_experiment(experiment)


def _body_schema(operation):
    from components.common.kfp_standin import _swagger

    for methods in _swagger()["paths"].values():
        for op in methods.values():
            if op["operationId"] == operation:
                return next(p["schema"] for p in op["parameters"] if p["in"] == "body")
    raise KeyError(operation)


def test_upload_version_experiment_run_and_recurring_run_flow(standin, client, package):
    pipeline, version, experiment = _setup(client, package)
    run = client.create_run(
        "nightly", pipeline["pipeline_id"], version["pipeline_version_id"],
        experiment["experiment_id"], {"seed": 7, "algorithms": ["lightgbm"]},
    )  # fmt: skip
    recurring = client.create_recurring_run(
        "weekly", pipeline["pipeline_id"], version["pipeline_version_id"],
        experiment["experiment_id"], "0 0 3 * * 1", {"seed": 7},
    )  # fmt: skip

    assert [r.operation for r in standin.requests] == [
        "PipelineService_GetPipelineByName",  # 404: not there yet
        "UploadPipeline",
        "PipelineService_ListPipelineVersions",  # the first version KFP made
        "UploadPipelineVersion",  # ours, named by content
        "ExperimentService_ListExperiments",
        "ExperimentService_CreateExperiment",
        "RunService_CreateRun",
        "RecurringRunService_CreateRecurringRun",
    ]
    assert [r.status for r in standin.requests] == [404] + [200] * 7
    upload = standin.calls("UploadPipeline")[0]
    assert upload.query["name"] == [package.name]
    filename, content = upload.form["uploadfile"]
    assert (
        filename == "pipeline.yaml" and yaml.load(content, Loader=yaml.CSafeLoader) == package.spec
    )
    assert standin.calls("UploadPipelineVersion")[0].query == {
        "pipelineid": [pipeline["pipeline_id"]],
        "name": [package.version_name],
    }
    assert version["name"] == package.version_name
    assert standin.calls("RunService_CreateRun")[0].body == {
        "display_name": "nightly",
        "experiment_id": experiment["experiment_id"],
        "pipeline_version_reference": {
            "pipeline_id": pipeline["pipeline_id"],
            "pipeline_version_id": version["pipeline_version_id"],
        },
        "runtime_config": {"parameters": {"seed": 7, "algorithms": ["lightgbm"]}},
    }
    sent = standin.calls("RecurringRunService_CreateRecurringRun")[0].body
    assert sent["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert (sent["max_concurrency"], sent["mode"], sent["no_catchup"]) == ("1", "ENABLE", True)
    # checked again here, independently of the stand-in: every JSON body satisfies the swagger
    for operation in ("RunService_CreateRun", "RecurringRunService_CreateRecurringRun"):
        assert schema_errors(standin.calls(operation)[0].body, _body_schema(operation)) == []
    assert run["state"] == "PENDING" and recurring["status"] == "ENABLED"
    assert client.run_url(run["run_id"]) == f"{standin.url}/#/runs/details/{run['run_id']}"


def test_same_package_reuses_its_version_new_content_adds_one(standin, client, package):
    pipeline, version, _ = _setup(client, package)
    again = client.ensure_pipeline_version(package.yaml_bytes, package.name, package.version_name)
    assert again == (pipeline, version, False)
    assert len(standin.calls("UploadPipelineVersion")) == 1
    changed = package.yaml_bytes.replace(b"mlpipe-training", b"mlpipe-training", 1) + b"\n# x\n"
    _, other, uploaded = client.ensure_pipeline_version(changed, package.name, "other-version")
    assert uploaded and other["pipeline_version_id"] != version["pipeline_version_id"]
    assert len(standin.pipelines) == 1 and len(standin.versions) == 3


def test_experiment_is_found_not_recreated(standin, client):
    first = client.ensure_experiment("acs-employment")
    assert client.ensure_experiment("acs-employment") == first
    assert len(standin.calls("ExperimentService_CreateExperiment")) == 1
    listed = standin.calls("ExperimentService_ListExperiments")[-1]
    assert '"string_value": "acs-employment"' in listed.query["filter"][0]


def test_wait_for_run_reports_each_state_until_succeeded(client, package):
    pipeline, version, experiment = _setup(client, package)
    run = client.create_run(
        "r", pipeline["pipeline_id"], version["pipeline_version_id"], experiment["experiment_id"]
    )
    seen = []
    final = client.wait_for_run(
        run["run_id"], poll_s=0, on_change=lambda r: seen.append(r["state"])
    )
    assert seen == ["RUNNING", "SUCCEEDED"] and final["state"] == "SUCCEEDED"
    assert [s["state"] for s in final["state_history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]


def test_wait_for_run_times_out_with_the_last_state(package):
    with KfpStandin(run_states=["PENDING", "RUNNING"]) as standin:
        client = KfpClient(standin.url, sleep=lambda s: None)
        pipeline, version, experiment = _setup(client, package)
        run = client.create_run(
            "r", pipeline["pipeline_id"], version["pipeline_version_id"],
            experiment["experiment_id"],
        )  # fmt: skip
        ticks = iter(range(100))
        with pytest.raises(KfpTimeout, match="still RUNNING after 3 s") as err:
            client.wait_for_run(run["run_id"], timeout_s=3, poll_s=1, clock=lambda: next(ticks))
        assert err.value.last["state"] == "RUNNING"


def test_recurring_runs_are_listed_by_name_and_disabled(standin, client, package):
    pipeline, _, experiment = _setup(client, package)
    for name in ("a", "b", "a"):
        client.create_recurring_run(
            name, pipeline["pipeline_id"], None, experiment["experiment_id"], "0 0 3 * * *"
        )
    named = client.list_recurring_runs(name="a")
    assert [r["display_name"] for r in named] == ["a", "a"]
    client.disable_recurring_run(named[0]["recurring_run_id"])
    assert [r["status"] for r in client.list_recurring_runs(name="a")] == ["DISABLED", "ENABLED"]
    disable = standin.calls("RecurringRunService_DisableRecurringRun")[0]
    assert disable.method == "POST" and disable.body is None
    # paging follows next_page_token to the end
    assert len(client._list("/recurringruns", "recurringRuns", {}, page_size=2)) == 3
    assert len(standin.calls("RecurringRunService_ListRecurringRuns")) == 2 + 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bogus": 1}, "(body): unknown field(s) ['bogus']"),
        ({"trigger": {"cron_schedule": {"cron": "0 3 * * *", "tz": "UTC"}}}, "unknown field"),
        ({"max_concurrency": 2}, "max_concurrency: 2 is not of type 'string'"),
        ({"max_concurrency": "two"}, "max_concurrency: 'two' is not a valid int64"),
        ({"mode": "ON"}, "mode: 'ON' is not one of"),
        ({"no_catchup": "yes"}, "no_catchup: 'yes' is not of type 'boolean'"),
        ({"namespace": "team-a"}, "namespace: is output only"),
        ({"trigger": {"cron_schedule": {"cron": "0 3 *"}}}, "Schedule cron is not a supported"),
        ({"trigger": {"cron_schedule": {"cron": "0 0 25 * * *"}}}, "hour: 25 is outside 0-23"),
        ({"max_concurrency": "11"}, "at least 1 and at most 10. Received 11"),
        ({"display_name": ""}, "Recurring run's name cannot be empty"),
        ({"runtime_config": {"parameters": {"sed": 7}}}, "['sed'] are not declared"),
    ],
)
def test_standin_refuses_malformed_recurring_runs_and_client_surfaces_it(
    standin, client, package, change, message
):
    pipeline, _, experiment = _setup(client, package)
    body = {
        "display_name": "weekly",
        "experiment_id": experiment["experiment_id"],
        "pipeline_version_reference": {"pipeline_id": pipeline["pipeline_id"]},
        "trigger": {"cron_schedule": {"cron": "0 0 3 * * 1"}},
        "max_concurrency": "1",
        "mode": "ENABLE",
        **change,
    }
    with pytest.raises(KfpInvalid) as err:
        client._request("POST", "/recurringruns", body=body)
    assert message in str(err.value)
    assert "POST /apis/v2beta1/recurringruns failed: HTTP 400" in str(err.value)
    assert err.value.status == 400 and not standin.recurring_runs


def test_standin_refuses_undeclared_query_and_form_fields(standin, client, package):
    with pytest.raises(KfpInvalid, match="query parameter 'pipeline_name' is not declared"):
        client._request("GET", "/experiments", params={"pipeline_name": "x"}, idempotent=True)
    with pytest.raises(KfpInvalid, match="query parameter 'page_size': 'ten' is not an integer"):
        client._request("GET", "/experiments", params={"page_size": "ten"}, idempotent=True)
    with pytest.raises(KfpInvalid, match="form field 'uploadfile' is required"):
        client._request(
            "POST", "/pipelines/upload", params={"name": "p"}, files={"file": ("p.yaml", b"x")}
        )
    with pytest.raises(KfpInvalid, match="not a KFP pipeline spec"):
        client.upload_pipeline(b"hello: world\n", "p")
    with pytest.raises(KfpInvalid, match="takes no request body"):
        client._request("POST", "/recurringruns/x:disable", body={"force": True})
    with pytest.raises(KfpInvalid, match="filter operation 'GREATER_THAN'"):
        client._request(
            "GET", "/experiments",
            params={"filter": '{"predicates": [{"key": "x", "operation": "GREATER_THAN"}]}'},
        )  # fmt: skip
    assert {r.status for r in standin.requests} == {400}


def test_not_found_and_already_exists(client, package):
    assert client.get_pipeline_by_name("nope") is None
    with pytest.raises(KfpNotFound, match=r"GET /apis/v2beta1/runs/run-9 failed: HTTP 404"):
        client.get_run("run-9")
    client.upload_pipeline(package.yaml_bytes, "p")
    with pytest.raises(KfpAlreadyExists, match="a pipeline named 'p' exists"):
        client.upload_pipeline(package.yaml_bytes, "p")
    client._request("POST", "/experiments", body={"display_name": "e"})
    with pytest.raises(KfpAlreadyExists, match="HTTP 409"):
        client._request("POST", "/experiments", body={"display_name": "e"})


def test_missing_or_wrong_token_is_an_auth_error_and_not_retried(tmp_path, monkeypatch):
    sleeps: list[float] = []
    with KfpStandin(token="s3cret") as standin:
        with pytest.raises(KfpAuthError, match="HTTP 401: Unauthenticated: no bearer token"):
            KfpClient(standin.url, sleep=sleeps.append).healthz()
        with pytest.raises(KfpAuthError, match="token is not valid.*KFP_TOKEN"):
            KfpClient(standin.url, token="wrong", sleep=sleeps.append).healthz()
        assert len(standin.requests) == 2 and sleeps == []
        # the token from the environment, then from a file
        monkeypatch.setenv("KFP_TOKEN", "s3cret")
        assert KfpClient.from_env(host=standin.url).healthz()["pipeline_store"] == "database"
        monkeypatch.delenv("KFP_TOKEN")
        token_file = tmp_path / "token"
        token_file.write_text("s3cret\n")
        monkeypatch.setenv("KFP_TOKEN_FILE", str(token_file))
        assert KfpClient.from_env(host=standin.url).healthz()
        assert standin.requests[-1].headers["authorization"] == "Bearer s3cret"


def test_forbidden_is_an_auth_error(standin, client, sleeps):
    standin.inject("HealthzService_GetHealthz", 403, message="no access to namespace team-a")
    with pytest.raises(KfpAuthError, match="HTTP 403: no access to namespace team-a"):
        client.healthz()
    assert sleeps == [] and len(standin.requests) == 1


def test_503_then_success_is_retried_for_idempotent_calls(standin, client, sleeps):
    standin.inject("HealthzService_GetHealthz", 503, times=2)
    assert client.healthz()["multi_user"] is False
    assert [r.status for r in standin.requests] == [503, 503, 200]
    assert sleeps == [0.5, 1.0]  # exponential backoff


def test_5xx_on_a_create_is_not_retried(standin, client, sleeps):
    standin.inject("ExperimentService_CreateExperiment", 503, message="db busy")
    with pytest.raises(KfpUnavailable, match="POST /apis/v2beta1/experiments failed: HTTP 503"):
        client._request("POST", "/experiments", body={"display_name": "e"})
    assert len(standin.requests) == 1 and sleeps == []


def test_5xx_retries_are_bounded(standin, client, sleeps):
    standin.inject("RunService_GetRun", 502, times=10, message="bad gateway")
    with pytest.raises(KfpUnavailable, match="HTTP 502: bad gateway"):
        client.get_run("run-1")
    assert len(standin.requests) == 4 and len(sleeps) == 3


def test_connection_refused_names_the_host():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    client = KfpClient(f"http://127.0.0.1:{port}", sleep=sleeps.append, timeout_s=2)
    with pytest.raises(KfpUnavailable) as err:
        client.healthz()
    assert f"cannot reach the KFP API at http://127.0.0.1:{port}" in str(err.value)
    assert "GET /apis/v2beta1/healthz" in str(err.value) and len(sleeps) == 3


def test_no_host_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("KFP_HOST", raising=False)
    with pytest.raises(KfpError, match="pass --host or set KFP_HOST"):
        KfpClient.from_env()
