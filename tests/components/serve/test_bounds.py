"""The server's bounds, in process (the ASGI app driven directly): one body limit for every
route (declared and streamed), the row limit on every predict path, generic 500s."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from prometheus_client import CollectorRegistry

from components.serve import app as app_module
from components.serve.app import ServingApp
from components.serve.server import ServeOptions, load
from tests.components.serve.conftest import offline_predictions

NAME = "acs"
LIMIT = 10_000
CHUNK = 1_000
JSON = [("content-type", "application/json")]


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """Each app its own Prometheus registry (the server process has one app)."""
    metrics = app_module.ServerMetrics
    monkeypatch.setattr(
        app_module,
        "ServerMetrics",
        lambda name, version: metrics(name, CollectorRegistry(), version),
    )


@pytest.fixture(scope="module")
def model(lgbm_model_dir):
    return load(ServeOptions(model=str(lgbm_model_dir), name=NAME, max_batch=5))


@pytest.fixture(scope="module")
def offline(lgbm_model_dir, test_rows):
    return offline_predictions(lgbm_model_dir, test_rows, 10)


def paths(model) -> list[str]:
    return [
        f"/v1/models/{NAME}:predict",
        f"/v2/models/{NAME}/infer",
        f"/v2/models/{NAME}/versions/{model.version}/infer",
        f"/v2/models/{NAME}/versions/other/infer",  # KServe's route (not this version)
        "/v1/models/other:predict",  # KServe's route (another model)
    ]


def call(app, path, chunks, headers=(), method="POST"):
    """(status, body, how many body chunks the app read) for one request to `app`."""
    state = {"read": 0}
    sent: list[dict] = []

    async def receive():
        if state["read"] >= len(chunks):
            await asyncio.sleep(3600)  # the client waits for the answer
        state["read"] += 1
        return {
            "type": "http.request",
            "body": chunks[state["read"] - 1],
            "more_body": state["read"] < len(chunks),
        }

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 5000),
        "http_version": "1.1",
        "root_path": "",
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, state["read"]


@pytest.mark.parametrize("fast_routes", [True, False])
def test_a_declared_content_length_over_the_limit_is_413_before_the_body_is_read(
    model, fast_routes
):
    app = ServingApp(model, fast_routes=fast_routes, max_body_bytes=LIMIT)
    for path in paths(model):
        status, body, read = call(app, path, [b"x" * 10], [("content-length", str(LIMIT + 1))])
        assert (status, read) == (413, 0), path
        assert str(LIMIT) in orjson.loads(body)["error"]


@pytest.mark.parametrize("fast_routes", [True, False])
def test_a_streamed_body_is_cut_once_it_passes_the_limit(model, fast_routes):
    """A chunked body (no Content-Length) of 100 x LIMIT: 413 after LIMIT/CHUNK + 1 chunks (a
    route that reads no body — KServe's 404 for another model — reads at most as many)."""
    app = ServingApp(model, fast_routes=fast_routes, max_body_bytes=LIMIT)
    chunks = [b"x" * CHUNK] * (100 * LIMIT // CHUNK)
    for path in paths(model):
        status, body, read = call(app, path, chunks)
        assert read <= LIMIT // CHUNK + 1, path
        if "other:" in path:
            assert status == 404
            continue
        assert status == 413, (path, body)
        assert str(LIMIT) in orjson.loads(body)["error"]


@pytest.mark.parametrize("fast_routes", [True, False])
def test_a_body_within_the_limit_still_works_on_every_route(model, offline, fast_routes):
    _, rows, want = offline
    app = ServingApp(model, fast_routes=fast_routes, max_body_bytes=LIMIT)
    payload = orjson.dumps({"instances": rows[:2]})
    chunks = [payload[i : i + 100] for i in range(0, len(payload), 100)]
    status, body, _ = call(app, f"/v1/models/{NAME}:predict", chunks)
    assert status == 200
    assert orjson.loads(body)["predictions"] == pytest.approx(list(want[:2]), abs=1e-12)
    status, body, _ = call(app, "/v2/health/ready", [b""], method="GET")
    assert status == 200


@pytest.mark.parametrize("fast_routes", [True, False])
def test_the_row_limit_holds_on_every_predict_path(model, offline, fast_routes):
    names, rows, _ = offline
    app = ServingApp(model, fast_routes=fast_routes)
    six = rows[:6]
    v2 = {
        "inputs": [
            {"name": n, "shape": [6], "datatype": "INT64", "data": [r[n] for r in six]}
            for n in names
        ]
    }
    cases = [(f"/v1/models/{NAME}:predict", {"instances": six}), (f"/v2/models/{NAME}/infer", v2)]
    if fast_routes:  # KServe's own versioned route answers 501 (no model versioning)
        cases.append((f"/v2/models/{NAME}/versions/{model.version}/infer", v2))
    for path, body in cases:
        status, answer, _ = call(app, path, [orjson.dumps(body)], JSON)
        assert status in (400, 413), (path, answer)
        assert "batch of 6 rows exceeds the limit of 5" in orjson.loads(answer)["error"], path


@pytest.mark.parametrize("fast_routes", [True, False])
def test_an_unexpected_exception_is_a_generic_500_with_a_request_id(
    lgbm_model_dir, offline, fast_routes, caplog
):
    model = load(ServeOptions(model=str(lgbm_model_dir), name=NAME))

    def broken(raw):
        raise RuntimeError("secret internals /etc/model.joblib")

    model.scorer = broken
    app = ServingApp(model, fast_routes=fast_routes)
    _, rows, _ = offline
    with caplog.at_level(logging.ERROR):
        status, body, _ = call(
            app,
            f"/v1/models/{NAME}:predict",
            [orjson.dumps({"instances": rows[:1]})],
            [("x-request-id", "req-42")],
        )
    assert status == 500
    assert orjson.loads(body) == {"error": "internal server error", "request_id": "req-42"}
    assert b"secret" not in body and b"RuntimeError" not in body and b"Traceback" not in body
    logged = [r for r in caplog.records if r.exc_info and "req-42" in r.getMessage()]
    assert logged and "secret internals" in str(logged[0].exc_info[1])


def test_health_is_answered_in_front_as_kserve_answers_it(model):
    """The front answers the server's health probes itself (no routing: a probe under load waits
    on the GIL once); its answers are KServe's own, byte for byte."""
    app = ServingApp(model)
    for path in ("/v2/health/live", "/v2/health/ready"):
        front = call(app, path, [b""], method="GET")
        kserve = call(app.kserve_app, path, [b""], method="GET")
        assert (
            (front[0], orjson.loads(front[1]))
            == (kserve[0], orjson.loads(kserve[1]))
            == (
                200,
                {path.rsplit("/", 1)[1]: True},
            )
        )
    from prometheus_client import generate_latest

    assert 'endpoint="health"' in generate_latest(app.metrics._registry).decode()


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_a_big_body_is_decoded_off_the_loop_with_the_same_answers(model, offline, protocol):
    """A body over OFFLOAD_BYTES is decoded in the scoring thread: malformed JSON is still a 400
    and a valid one still scores (the event loop holds no decode of it)."""
    names, rows, want = offline
    app = ServingApp(model)
    path = f"/v1/models/{NAME}:predict" if protocol == "v1" else f"/v2/models/{NAME}/infer"
    pad = b" " * (app_module.OFFLOAD_BYTES + 1)  # JSON whitespace: the same request, bigger
    bad = b'{"instances": [' + pad
    status, answer, _ = call(app, path, [bad], JSON)
    assert status == 400 and orjson.loads(answer)["error"].startswith("malformed JSON")
    two = rows[:2]
    body = (
        {"instances": two}
        if protocol == "v1"
        else {
            "inputs": [
                {"name": n, "shape": [2], "datatype": "INT64", "data": [r[n] for r in two]}
                for n in names
            ]
        }
    )
    status, answer, _ = call(app, path, [orjson.dumps(body) + pad], JSON)
    assert status == 200, answer
    got = orjson.loads(answer)
    scores = got["predictions"] if protocol == "v1" else got["outputs"][0]["data"]
    assert scores == pytest.approx(list(want[:2]), abs=1e-12)
