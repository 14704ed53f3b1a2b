"""A real model server on 127.0.0.1 (started by the test): V1/V2 single and batch requests equal
the offline predictions; health, metadata, metrics, request log, faults, KServe's own routes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from components.serve.launch import ServerStartError, start_server
from components.serve.request_log import read_request_log
from tests.components.serve.conftest import offline_predictions

NAME = "acs"


@pytest.fixture(scope="module")
def offline(lgbm_model_dir, test_rows):
    return offline_predictions(lgbm_model_dir, test_rows, 60)


@pytest.fixture(scope="module")
def server(lgbm_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "requests.jsonl"
    with start_server(lgbm_model_dir, NAME, request_log=log) as running:
        running.request_log = log
        yield running


def v2(names, rows, request_id=None):
    body = {
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": "INT64", "data": [r[n] for r in rows]}
            for n in names
        ]
    }
    if request_id:
        body["id"] = request_id
    return body


def test_v1_single_and_batch_equal_offline(server, offline):
    _, rows, want = offline
    with requests.Session() as http:
        for i in range(5):
            r = http.post(server.v1_url, json={"instances": [rows[i]]}, timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == pytest.approx([want[i]], abs=1e-12)
        r = http.post(server.v1_url, json={"instances": rows}, timeout=10)
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["predictions"], want, atol=1e-12, rtol=0)


def test_v2_single_and_batch_equal_offline(server, offline):
    names, rows, want = offline
    r = requests.post(server.v2_url, json=v2(names, rows[:1], "req-1"), timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == NAME and body["id"] == "req-1"
    assert body["model_version"].startswith("sha256:")
    (out,) = body["outputs"]
    assert out["name"] == "predictions" and out["datatype"] == "FP64" and out["shape"] == [1]
    assert out["data"] == pytest.approx([want[0]], abs=1e-12)
    r = requests.post(server.v2_url, json=v2(names, rows), timeout=10)
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], want, atol=1e-12, rtol=0)


def test_health_and_metadata(server, offline):
    names = offline[0]
    get = lambda path: requests.get(server.url + path, timeout=10)  # noqa: E731
    assert get("/").json() == {"status": "alive"}
    assert get("/v2/health/live").json() == {"live": True}
    assert get("/v2/health/ready").json() == {"ready": True}
    assert get(f"/v1/models/{NAME}").json() == {"name": NAME, "ready": True}
    assert get(f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}
    meta = get(f"/v2/models/{NAME}").json()
    assert [i["name"] for i in meta["inputs"]] == names
    assert {i["datatype"] for i in meta["inputs"]} == {"INT64"}
    assert meta["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    assert get("/v1/models").json() == {"models": [NAME]}
    missing = requests.post(f"{server.url}/v1/models/other:predict", json={}, timeout=10)
    assert missing.status_code == 404 and "other" in missing.json()["error"]


def test_an_unknown_model_name_is_a_404_without_a_traceback_in_the_server_log(server):
    for method, path in [
        ("post", "/v1/models/other:predict"),
        ("get", "/v2/models/other"),
        ("get", "/v2/models/other/ready"),
    ]:
        answer = requests.request(method, server.url + path, json={}, timeout=10)
        assert answer.status_code == 404 and "other" in answer.json()["error"], path
    # the log as the server wrote it so far (each handler's log call returns before the answer)
    log = server.log_path.read_text()
    assert "Traceback" not in log and "ModelNotFound" not in log, log[-2000:]


def test_bad_request_is_400_with_the_field(server, offline):
    row = {**offline[1][0], "SEX": 3}
    r = requests.post(server.v1_url, json={"instances": [offline[1][0], row]}, timeout=10)
    assert r.status_code == 400
    assert r.json() == {
        "error": "row 1: field 'SEX': value 3 is an unseen category code (allowed: one of [1, 2])",
        "field": "SEX",
        "row": 1,
    }
    r = requests.post(server.v1_url, data=b'{"instances": [', timeout=10)
    assert r.status_code == 400 and r.json()["error"].startswith("malformed JSON")


def test_prometheus_metrics(server, offline):
    requests.post(server.v1_url, json={"instances": [offline[1][0]]}, timeout=10)
    requests.post(server.v1_url, json={"instances": []}, timeout=10)
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert f'mlpipe_serve_requests_total{{code="200",endpoint="v1_predict",model="{NAME}"}}' in text
    assert f'mlpipe_serve_errors_total{{code="400",endpoint="v1_predict",model="{NAME}"}}' in text
    assert "mlpipe_serve_request_duration_seconds_bucket" in text
    assert f'mlpipe_serve_rows_total{{endpoint="v1_predict",model="{NAME}"}}' in text


def test_request_log_lines(server, offline):
    names, rows, want = offline
    requests.post(
        server.v1_url, json={"instances": rows[:3]}, headers={"x-request-id": "abc"}, timeout=10
    )
    requests.post(server.v2_url, json=v2(names, rows[3:4]), timeout=10)
    requests.post(server.v1_url, json={"instances": [{"AGEP": 1}]}, timeout=10)
    deadline = time.monotonic() + 5  # flushed once a second
    entries: list[dict] = []
    while time.monotonic() < deadline:
        if server.request_log.exists():
            entries = read_request_log(server.request_log)
            if any(e.get("error", "").startswith("row 0: missing") for e in entries):
                break
        time.sleep(0.2)
    tagged = [e for e in entries if e["request_id"] == "abc"]
    assert len(tagged) == 1
    entry = tagged[0]
    assert entry["inputs"] == rows[:3] and entry["status"] == 200 and entry["protocol"] == "v1"
    assert entry["outputs"] == pytest.approx(list(want[:3]), abs=1e-12)
    assert entry["model"] == NAME and entry["model_version"].startswith("sha256:")
    assert entry["latency_ms"] > 0 and entry["ts"].endswith("+00:00")
    assert any(e["protocol"] == "v2" and e["inputs"] == rows[3:4] for e in entries)
    rejected = [e for e in entries if e["status"] == 400]
    assert rejected and "inputs" not in rejected[-1] and "missing field" in rejected[-1]["error"]


@pytest.mark.integration  # starts its own server(s)
def test_request_log_flushed_at_shutdown(lgbm_model_dir, offline, tmp_path):
    log = tmp_path / "log.jsonl"
    with start_server(lgbm_model_dir, NAME, request_log=log) as srv:
        for row in offline[1][:20]:
            assert requests.post(srv.v1_url, json={"instances": [row]}, timeout=10).ok
        assert srv.stop() in (0, -15)  # SIGTERM: drains, flushes, then re-raises (uvicorn)
    assert len(read_request_log(log)) == 20


@pytest.mark.integration  # starts its own server(s)
def test_faults(lgbm_model_dir, offline):
    _, rows, want = offline
    with start_server(lgbm_model_dir, NAME, fault=["invert", "latency:30"]) as srv:
        start = time.perf_counter()
        r = requests.post(srv.v1_url, json={"instances": rows[:2]}, timeout=10)
        assert time.perf_counter() - start >= 0.03
        assert r.json()["predictions"] == pytest.approx(list(1 - want[:2]), abs=1e-12)
    seeded = {"MLPIPE_SERVE_FAULT_SEED": "1"}
    with start_server(lgbm_model_dir, NAME, fault="error:0.5", env=seeded) as srv:
        answers = [
            requests.post(srv.v1_url, json={"instances": rows[:1]}, timeout=10) for _ in range(60)
        ]
        codes = [r.status_code for r in answers]
        assert set(codes) == {200, 500} and 15 <= codes.count(500) <= 45
        assert all("injected fault" in r.json()["error"] for r in answers if r.status_code == 500)
        assert requests.get(srv.url + "/v2/health/ready", timeout=10).ok


@pytest.mark.integration  # starts its own server(s)
def test_kserve_routes_serve_the_same_model(lgbm_model_dir, offline):
    """Without the lean hot routes, KServe's own V1/V2 routes call TabularModel.predict."""
    names, rows, want = offline
    with start_server(lgbm_model_dir, NAME, kserve_routes=True) as srv:
        r = requests.post(srv.v1_url, json={"instances": rows[:4]}, timeout=10)
        assert r.json()["predictions"] == pytest.approx(list(want[:4]), abs=1e-12)
        r = requests.post(srv.v2_url, json=v2(names, rows[:4]), timeout=10)
        assert r.json()["outputs"][0]["data"] == pytest.approx(list(want[:4]), abs=1e-12)
        r = requests.post(srv.v1_url, json={"instances": [{**rows[0], "AGEP": "x"}]}, timeout=10)
        assert r.status_code == 400 and "AGEP" in r.json()["error"]


def test_start_server_reports_a_broken_model_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ServerStartError, match="not a model dir"):
        start_server(tmp_path / "empty", NAME, timeout=30)
