"""The KFP adapter (`kfp.Client` underneath) against the stand-in KFP API server: a real HTTP server
on 127.0.0.1 that holds every request to the KFP v2beta1 swagger and records it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import kfp
import pytest
import requests
import yaml

from components.common.config import REPO_ROOT
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
from pipelines.kfp_package import compile_package
from tests.support.kfp_standin import KfpStandin, _swagger, schema_errors


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


def _run(client, package):
    """A run named "r" of the uploaded package, in the default experiment."""
    pipeline, version, experiment = _setup(client, package)
    return client.create_run(
        "r", pipeline["pipeline_id"], version["pipeline_version_id"], experiment["experiment_id"]
    )


def _body_schema(operation):
    for methods in _swagger()["paths"].values():
        for op in methods.values():
            if op["operationId"] == operation:
                return next(p["schema"] for p in op["parameters"] if p["in"] == "body")
    raise KeyError(operation)


def _free_port() -> int:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_upload_version_experiment_run_and_recurring_run_flow(standin, client, package):
    pipeline, version, experiment = _setup(client, package)
    run = client.create_run(
        "nightly", pipeline["pipeline_id"], version["pipeline_version_id"],
        experiment["experiment_id"], {"seed": 7, "algorithms": ["lightgbm"]},
        description="why", service_account="mlpipe-pipeline",
    )  # fmt: skip
    recurring = client.create_recurring_run(
        "weekly", pipeline["pipeline_id"], version["pipeline_version_id"],
        experiment["experiment_id"], "0 0 3 * * 1", {"seed": 7},
        service_account="mlpipe-pipeline",
    )  # fmt: skip

    assert [r.operation for r in standin.requests] == [
        "PipelineService_ListPipelines",  # by name: not there yet
        "UploadPipeline",
        "PipelineService_ListPipelineVersions",  # only the first version KFP made
        "UploadPipelineVersion",  # ours, named by content
        "ExperimentService_ListExperiments",
        "ExperimentService_CreateExperiment",
        "RunService_CreateRun",
        "RecurringRunService_CreateRecurringRun",
    ]
    assert {r.status for r in standin.requests} == {200}
    upload = standin.calls("UploadPipeline")[0]
    assert upload.query["name"] == [package.name]
    filename, content = upload.form["uploadfile"]
    assert filename == "pipeline.yaml"
    assert next(yaml.load_all(content, Loader=yaml.CSafeLoader)) == package.spec
    assert standin.calls("UploadPipelineVersion")[0].query == {
        "pipelineid": [pipeline["pipeline_id"]],
        "name": [package.version_name],
    }
    assert version["name"] == package.version_name
    assert standin.calls("RunService_CreateRun")[0].body == {
        "display_name": "nightly",
        "description": "why",
        "experiment_id": experiment["experiment_id"],
        "pipeline_version_reference": {
            "pipeline_id": pipeline["pipeline_id"],
            "pipeline_version_id": version["pipeline_version_id"],
        },
        "runtime_config": {"parameters": {"seed": 7, "algorithms": ["lightgbm"]}},
        "service_account": "mlpipe-pipeline",
    }
    sent = standin.calls("RecurringRunService_CreateRecurringRun")[0].body
    assert sent["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    # kfp.Client sends the int64 as a JSON number; the API server's protojson reads both forms
    assert (sent["max_concurrency"], sent["mode"], sent["no_catchup"]) == (1, "ENABLE", True)
    assert sent["service_account"] == "mlpipe-pipeline"
    # checked again here, independently of the stand-in: every JSON body satisfies the swagger
    for operation in ("RunService_CreateRun", "RecurringRunService_CreateRecurringRun"):
        assert schema_errors(standin.calls(operation)[0].body, _body_schema(operation)) == []
    # plain dicts, as the server wrote them
    assert run["state"] == "PENDING" and recurring["status"] == "ENABLED"
    assert recurring["max_concurrency"] == "1" and isinstance(recurring["created_at"], str)
    assert "error" not in run  # unset fields are left out, not None
    assert client.run_url(run["run_id"]) == f"{standin.url}/#/runs/details/{run['run_id']}"


def test_same_package_reuses_its_version_new_content_adds_one(standin, client, package):
    pipeline, version, _ = _setup(client, package)
    again = client.ensure_pipeline_version(package.yaml_bytes, package.name, package.version_name)
    assert again == (pipeline, version, False)
    assert len(standin.calls("UploadPipelineVersion")) == 1
    changed = package.yaml_bytes + b"\n# x\n"
    _, other, uploaded = client.ensure_pipeline_version(changed, package.name, "other-version")
    assert uploaded and other["pipeline_version_id"] != version["pipeline_version_id"]
    assert len(standin.pipelines) == 1 and len(standin.versions) == 3
    assert len(standin.calls("UploadPipeline")) == 1


def test_a_version_uploaded_meanwhile_is_found_after_the_409(standin, client, package, monkeypatch):
    _, version, _ = _setup(client, package)
    real, answers = client.find_pipeline_version, iter([None])  # the first lookup misses it
    monkeypatch.setattr(client, "find_pipeline_version", lambda *a: next(answers, real(*a)))
    again = client.ensure_pipeline_version(package.yaml_bytes, package.name, package.version_name)
    assert again[1] == version and len(standin.versions) == 2
    assert [r.status for r in standin.calls("UploadPipelineVersion")] == [200, 409]


def test_experiment_is_found_not_recreated(standin, client):
    first = client.ensure_experiment("acs-employment")
    assert client.ensure_experiment("acs-employment") == first
    assert len(standin.calls("ExperimentService_CreateExperiment")) == 1
    listed = standin.calls("ExperimentService_ListExperiments")[-1]
    assert '"string_value": "acs-employment"' in listed.query["filter"][0]


def test_wait_for_run_reports_each_state_until_succeeded(client, package):
    run = _run(client, package)
    seen = []
    final = client.wait_for_run(
        run["run_id"], poll_s=0, on_change=lambda r: seen.append(r["state"])
    )
    assert seen == ["RUNNING", "SUCCEEDED"] and final["state"] == "SUCCEEDED"
    assert [s["state"] for s in final["state_history"]] == ["PENDING", "RUNNING", "SUCCEEDED"]


def test_wait_for_run_stops_at_canceled(package):
    # kfp.Client.wait_for_run_completion's final states lack "canceled": it would poll on
    with KfpStandin(run_states=["PENDING", "CANCELED"]) as standin:
        client = KfpClient(standin.url, sleep=lambda s: None)
        run = _run(client, package)
        assert client.wait_for_run(run["run_id"], poll_s=0)["state"] == "CANCELED"
        assert len(standin.calls("RunService_GetRun")) == 1


def test_wait_for_run_times_out_with_the_last_state(package):
    with KfpStandin(run_states=["PENDING", "RUNNING"]) as standin:
        client = KfpClient(standin.url, sleep=lambda s: None)
        run = _run(client, package)
        ticks = iter(range(100))
        with pytest.raises(KfpTimeout, match="still RUNNING after 3 s") as err:
            client.wait_for_run(run["run_id"], timeout_s=3, poll_s=1, clock=lambda: next(ticks))
        assert err.value.last["state"] == "RUNNING"


def test_recurring_runs_are_listed_by_name_across_pages_and_disabled(standin, client, package):
    pipeline, version, experiment = _setup(client, package)
    for name in ("a", "b", "a"):
        client.create_recurring_run(
            name, pipeline["pipeline_id"], version["pipeline_version_id"],
            experiment["experiment_id"], "0 0 3 * * *",
        )  # fmt: skip
    named = client.list_recurring_runs(name="a")
    assert [r["display_name"] for r in named] == ["a", "a"]
    client.disable_recurring_run(named[0]["recurring_run_id"])
    assert [r["status"] for r in client.list_recurring_runs(name="a")] == ["DISABLED", "ENABLED"]
    disable = standin.calls("RecurringRunService_DisableRecurringRun")[0]
    assert disable.method == "POST" and disable.body is None
    client.page_size = 2  # paging follows next_page_token to the end
    listed = len(standin.calls("RecurringRunService_ListRecurringRuns"))
    assert len(client.list_recurring_runs()) == 3
    assert len(standin.calls("RecurringRunService_ListRecurringRuns")) == listed + 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cron": "0 3 *"}, "Schedule cron is not a supported"),
        ({"cron": "0 0 25 * * *"}, "hour: 25 is outside 0-23"),
        ({"max_concurrency": 11}, "at least 1 and at most 10. Received 11"),
        ({"display_name": ""}, "Recurring run's name cannot be empty"),
        ({"parameters": {"sed": 7}}, "['sed'] are not declared"),
    ],
)
def test_a_refused_recurring_run_is_a_named_invalid_error(
    standin, client, package, sleeps, change, message
):
    pipeline, version, experiment = _setup(client, package)
    args = {
        "display_name": "weekly",
        "pipeline_id": pipeline["pipeline_id"],
        "version_id": version["pipeline_version_id"],
        "experiment_id": experiment["experiment_id"],
        "cron": "0 0 3 * * 1",
        **change,
    }
    with pytest.raises(KfpInvalid) as err:
        client.create_recurring_run(**args)
    assert message in str(err.value) and message in err.value.server_message
    assert "POST /apis/v2beta1/recurringruns failed: HTTP 400" in str(err.value)
    assert err.value.status == 400 and err.value.endpoint == "POST /apis/v2beta1/recurringruns"
    assert not standin.recurring_runs and sleeps == []


def _raw(standin, method, path, **kwargs):
    """A request the client would never send, straight to the stand-in."""
    answer = requests.request(method, f"{standin.url}/apis/v2beta1{path}", timeout=5, **kwargs)
    return answer.status_code, answer.json().get("message", "")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bogus": 1}, "(body): unknown field(s) ['bogus']"),
        ({"trigger": {"cron_schedule": {"cron": "0 3 * * *", "tz": "UTC"}}}, "unknown field"),
        ({"max_concurrency": "two"}, "max_concurrency: 'two' is not a valid int64"),
        ({"max_concurrency": 1.5}, "max_concurrency: 1.5 is not of type 'string', 'integer'"),
        ({"mode": "ON"}, "mode: 'ON' is not one of"),
        ({"no_catchup": "yes"}, "no_catchup: 'yes' is not of type 'boolean'"),
        ({"namespace": "team-a"}, "namespace: is output only"),
    ],
)
def test_standin_refuses_bodies_that_break_the_swagger(standin, client, package, change, message):
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
    status, text = _raw(standin, "POST", "/recurringruns", json=body)
    assert status == 400 and message in text
    assert message in standin.requests[-1].errors[0] and not standin.recurring_runs


def test_standin_refuses_undeclared_query_and_form_fields(standin):
    assert _raw(standin, "GET", "/experiments", params={"pipeline_name": "x"}) == (
        400,
        "Invalid input for ExperimentService_ListExperiments: query parameter 'pipeline_name' "
        "is not declared (known: ['filter', 'namespace', 'page_size', 'page_token', 'sort_by'])",
    )
    _, text = _raw(standin, "GET", "/experiments", params={"page_size": "ten"})
    assert "query parameter 'page_size': 'ten' is not an integer" in text
    _, text = _raw(
        standin, "POST", "/pipelines/upload", params={"name": "p"}, files={"file": ("p", b"x")}
    )
    assert "form field 'uploadfile' is required" in text
    _, text = _raw(standin, "POST", "/recurringruns/x:disable", json={"force": True})
    assert "takes no request body" in text
    bad_op = '{"predicates": [{"key": "x", "operation": "GREATER_THAN"}]}'
    _, text = _raw(standin, "GET", "/experiments", params={"filter": bad_op})
    assert "filter operation 'GREATER_THAN'" in text
    assert {r.status for r in standin.requests} == {400}


def test_standin_reads_filters_as_jsonpb_does(standin, client):
    # kfp.Client's own lookups send operation numbers and lowerCamelCase names
    client.ensure_experiment("e")
    assert client.kfp.get_experiment(experiment_name="e").display_name == "e"
    assert '"stringValue": "e"' in standin.requests[-1].query["filter"][0]


def test_not_found_and_already_exists(client, package, tmp_path):
    assert client.find_pipeline("nope") is None
    with pytest.raises(KfpNotFound, match=r"GET /apis/v2beta1/runs/run-9 failed: HTTP 404"):
        client.get_run("run-9")
    client.ensure_pipeline_version(package.yaml_bytes, "p", "p-1")
    with pytest.raises(KfpAlreadyExists, match="a pipeline named 'p' exists"):
        client.kfp.pipeline_uploads.upload_pipeline(_write(package, tmp_path), name="p")
    with pytest.raises(KfpInvalid, match="not a KFP pipeline spec"):
        client.ensure_pipeline_version(b"hello: world\n", "q", "q-1")


def _write(package, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(package.yaml_bytes)
    return str(path)


def test_missing_or_wrong_token_is_an_auth_error_and_not_retried(tmp_path, monkeypatch):
    sleeps: list[float] = []
    with KfpStandin(token="s3cret") as standin:
        with pytest.raises(KfpAuthError, match="HTTP 401: Unauthenticated: no bearer token"):
            KfpClient(standin.url, sleep=sleeps.append).healthz()
        with pytest.raises(KfpAuthError, match="token is not valid.*KFP_TOKEN"):
            KfpClient(standin.url, token="wrong", sleep=sleeps.append).healthz()
        assert len(standin.requests) == 2 and sleeps == []
        # the token from the environment, then from a file, re-read on every request
        monkeypatch.setenv("KFP_TOKEN", "s3cret")
        assert KfpClient.from_env(host=standin.url).healthz()["pipeline_store"] == "database"
        monkeypatch.delenv("KFP_TOKEN")
        token_file = tmp_path / "token"
        token_file.write_text("s3cret\n")
        monkeypatch.setenv("KFP_TOKEN_FILE", str(token_file))
        client = KfpClient.from_env(host=standin.url, sleep=sleeps.append)
        assert client.healthz()
        assert standin.requests[-1].headers["authorization"] == "Bearer s3cret"
        token_file.write_text("rotated\n")
        with pytest.raises(KfpAuthError, match="token is not valid"):
            client.healthz()
        token_file.unlink()
        with pytest.raises(KfpAuthError, match="cannot read the KFP token file"):
            client.healthz()
        assert sleeps == []


def test_in_cluster_token_is_used_when_nothing_else_is_given(tmp_path, monkeypatch):
    for name in ("KFP_TOKEN", "KFP_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    token = tmp_path / "token"
    token.write_text("projected")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    with KfpStandin(token="projected") as standin:
        assert KfpClient.from_env(host=standin.url).healthz()
        assert standin.requests[-1].to_json()["bearer"] is True


def test_forbidden_is_an_auth_error(standin, client, sleeps):
    standin.inject("HealthzService_GetHealthz", 403, message="no access to namespace team-a")
    with pytest.raises(KfpAuthError, match="HTTP 403: no access to namespace team-a"):
        client.healthz()
    assert sleeps == [] and len(standin.requests) == 1


def test_503_then_success_is_retried_for_reads(standin, client, sleeps):
    standin.inject("HealthzService_GetHealthz", 503, times=2)
    assert client.healthz()["multi_user"] is False
    assert [r.status for r in standin.requests] == [503, 503, 200]
    assert sleeps == [0.5, 1.0]  # exponential backoff


def test_5xx_on_a_create_is_not_retried(standin, client, sleeps, package):
    pipeline, version, experiment = _setup(client, package)
    standin.inject("RunService_CreateRun", 503, message="db busy")
    with pytest.raises(KfpUnavailable, match="POST /apis/v2beta1/runs failed: HTTP 503: db busy"):
        client.create_run(
            "r", pipeline["pipeline_id"], version["pipeline_version_id"],
            experiment["experiment_id"],
        )  # fmt: skip
    assert len(standin.calls("RunService_CreateRun")) == 1 and sleeps == []


def test_a_create_is_not_retried_on_a_connection_error(package, tmp_path):
    sleeps: list[float] = []
    client = KfpClient(f"http://127.0.0.1:{_free_port()}", sleep=sleeps.append, timeout_s=2)
    with pytest.raises(KfpUnavailable, match=r"\(POST /apis/v2beta1/runs\)"):
        client.create_run("r", "p", "v", "e")
    with pytest.raises(KfpUnavailable, match=r"\(POST /apis/v2beta1/pipelines/upload\)"):
        client.kfp.pipeline_uploads.upload_pipeline(_write(package, tmp_path), name="p")
    assert sleeps == []


def test_5xx_retries_are_bounded(standin, client, sleeps):
    standin.inject("RunService_GetRun", 502, times=10, message="bad gateway")
    with pytest.raises(KfpUnavailable, match="HTTP 502: bad gateway"):
        client.get_run("run-1")
    assert len(standin.requests) == 4 and len(sleeps) == 3


def test_connection_refused_on_a_read_is_retried_and_names_the_host():
    port = _free_port()
    sleeps: list[float] = []
    client = KfpClient(f"http://127.0.0.1:{port}", sleep=sleeps.append, timeout_s=2)
    with pytest.raises(KfpUnavailable) as err:
        client.healthz()
    assert f"cannot reach the KFP API at http://127.0.0.1:{port}" in str(err.value)
    assert "(GET /apis/v2beta1/healthz)" in str(err.value) and len(sleeps) == 3


def test_construction_calls_no_server_and_ignores_the_local_kfp_context(tmp_path, monkeypatch):
    # kfp.Client() would read this file (namespace, auth header) and, without a namespace,
    # call healthz before returning
    context = tmp_path / "context.json"
    settings = {"namespace": "elsewhere", "client_authentication_header_name": "X-Who"}
    context.write_text(json.dumps(settings))
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(context))
    KfpClient(f"http://127.0.0.1:{_free_port()}")  # nobody listens: no call was made
    with KfpStandin() as standin:
        client = KfpClient(standin.url)
        assert standin.requests == []
        client.ensure_experiment("e")
        listed = standin.calls("ExperimentService_ListExperiments")[0]
        assert listed.query.get("namespace", [""]) == [""] and "x-who" not in listed.headers
    assert json.loads(context.read_text()) == settings  # not rewritten


def test_namespace_reaches_the_lookups_and_the_upload(package):
    with KfpStandin() as standin:
        client = KfpClient(standin.url, namespace="team-a")
        pipeline, _, _ = client.ensure_pipeline_version(package.yaml_bytes, "p", "p-1")
        experiment = client.ensure_experiment("e")
    assert pipeline["namespace"] == "team-a" and experiment["namespace"] == "team-a"
    assert standin.calls("UploadPipeline")[0].query["namespace"] == ["team-a"]
    assert standin.calls("PipelineService_ListPipelines")[0].query["namespace"] == ["team-a"]


def test_no_host_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("KFP_HOST", raising=False)
    with pytest.raises(KfpError, match="pass --host or set KFP_HOST"):
        KfpClient.from_env()


def test_standalone_standin_records_every_request_as_json_lines(tmp_path, package):
    record = tmp_path / "requests.jsonl"
    command = [sys.executable, "-m", "tests.support.kfp_standin", "--port", "0"]
    server = subprocess.Popen(
        [*command, "--record", str(record)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        url = server.stdout.readline().split(" on ")[-1].strip()  # "... listening on http://..."
        client = KfpClient(url, token="t")
        pipeline, version, experiment = _setup(client, package)
        client.create_run(
            "r", pipeline["pipeline_id"], version["pipeline_version_id"],
            experiment["experiment_id"], {"seed": 7}, service_account="mlpipe-pipeline",
        )  # fmt: skip
        with pytest.raises(KfpInvalid):
            client.create_run(
                "r", pipeline["pipeline_id"], version["pipeline_version_id"], "", {"sed": 1}
            )
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["operation"] for line in lines][-2:] == ["RunService_CreateRun"] * 2
    accepted, refused = lines[-2:]
    assert accepted["status"] == 200 and accepted["bearer"] is True
    assert accepted["body"]["service_account"] == "mlpipe-pipeline"
    assert accepted["response"]["run_id"] and accepted["errors"] == []
    assert refused["status"] == 400 and "['sed'] are not declared" in refused["message"]
    upload = next(line for line in lines if line["operation"] == "UploadPipeline")
    assert upload["form"]["uploadfile"]["size"] == len(package.yaml_bytes)
    assert upload["params"] == {"name": package.name}


def test_the_client_imports_inside_a_kfp_task():
    """A task runs with _KFP_RUNTIME=true (kfp loads only what executing needs): the monitoring
    pipeline's act task creates runs from there. Without the import order kfp_client keeps, the
    import fails with a circular import inside kfp.dsl (seen in the cluster rehearsal)."""
    import subprocess
    import sys

    code = "import kfp.dsl; from components.common.kfp_client import KfpClient; print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "_KFP_RUNTIME": "true"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
