"""Real inference clients against a real model server (started by the test): KServe's
`InferenceRESTClient` (V1 and V2) and Triton's `tritonclient.http` get the offline predictions.
The V2 top-level fields those clients send (`model_name`, `model_version`, `outputs`,
`parameters`) are accepted when they agree with the URL; a disagreeing model name or version and
any other unknown top-level field are 400."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlparse

import numpy as np
import pytest
import requests

from components.serve._kserve import kserve  # argv-safe KServe import
from components.serve.launch import start_server
from tests.components.serve.conftest import offline_predictions

NAME = "acs"


@pytest.fixture(scope="module")
def offline(lgbm_model_dir, test_rows):
    return offline_predictions(lgbm_model_dir, test_rows, 40)


@pytest.fixture(scope="module")
def server(lgbm_model_dir, offline):
    names, rows, _ = offline
    with start_server(lgbm_model_dir, NAME) as running:
        answer = requests.post(running.v2_url, json=_v2(names, rows[:1]), timeout=10).json()
        running.version = answer["model_version"]  # sha256:<digest> of the model dir
        yield running


def _columns(names, rows):
    return {n: np.array([r[n] for r in rows], dtype=np.int64) for n in names}


def test_kserve_rest_client_v2_and_v1_equal_offline(server, offline):
    names, rows, want = offline

    async def call():
        v2 = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", retries=0, timeout=30))
        v1 = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v1", retries=0, timeout=30))
        try:
            inputs = []
            for name, column in _columns(names, rows).items():
                tensor = kserve.InferInput(name, [len(rows)], "INT64")
                tensor.set_data_from_numpy(column, binary_data=False)
                inputs.append(tensor)
            request = kserve.InferRequest(model_name=NAME, infer_inputs=inputs, request_id="k-1")
            body, _ = request.to_rest()
            assert body["model_name"] == NAME  # what the client puts in the body
            response = await v2.infer(server.url, request, model_name=NAME)
            single = await v1.infer(server.url, {"instances": rows[:3]}, model_name=NAME)
        finally:
            await v2.close()
            await v1.close()
        return body, response, single

    body, response, single = asyncio.run(call())
    assert set(body) <= {"id", "model_name", "inputs", "outputs", "parameters"}
    assert response.id == "k-1" and response.model_name == NAME
    np.testing.assert_allclose(response.outputs[0].as_numpy(), want, atol=1e-12, rtol=0)
    np.testing.assert_allclose(single["predictions"], want[:3], atol=1e-12, rtol=0)


@pytest.mark.parametrize(("versioned", "binary"), [(False, False), (True, False), (False, True)])
def test_tritonclient_http_equals_offline(server, offline, versioned, binary):
    import tritonclient.http as triton

    names, rows, want = offline
    client = triton.InferenceServerClient(urlparse(server.url).netloc, network_timeout=30)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(NAME)
        inputs = []
        for name, column in _columns(names, rows).items():
            tensor = triton.InferInput(name, [len(rows)], "INT64")
            # binary: the tensor data extension (the client's default), after the JSON header
            tensor.set_data_from_numpy(column, binary_data=binary)
            inputs.append(tensor)
        outputs = [triton.InferRequestedOutput("predictions", binary_data=False)]
        result = client.infer(
            NAME,
            inputs,
            model_version=server.version if versioned else "",
            request_id="t-1",
            outputs=outputs,
            parameters={"note": "custom parameters ride along"},
        )
        # no requested outputs: the client asks for binary outputs; a JSON answer is valid too
        plain = client.infer(NAME, inputs)
    finally:
        client.close()
    assert result.get_response()["id"] == "t-1"
    np.testing.assert_allclose(result.as_numpy("predictions"), want, atol=1e-12, rtol=0)
    np.testing.assert_allclose(plain.as_numpy("predictions"), want, atol=1e-12, rtol=0)


def _v2(names, rows, **extra):
    inputs = [
        {"name": n, "shape": [len(rows)], "datatype": "INT64", "data": [r[n] for r in rows]}
        for n in names
    ]
    return {"inputs": inputs, **extra}


def test_top_level_fields_agreeing_with_the_url_are_accepted(server, offline):
    names, rows, want = offline
    body = _v2(
        names,
        rows[:2],
        id="x",
        model_name=NAME,
        model_version=server.version,
        parameters={"binary_data_output": False},
        outputs=[{"name": "predictions", "parameters": {"binary_data": False}}],
    )
    r = requests.post(server.v2_url, json=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == pytest.approx(list(want[:2]), abs=1e-12)
    versioned = f"{server.url}/v2/models/{NAME}/versions/{server.version}/infer"
    r = requests.post(versioned, json=body, timeout=10)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"model_name": "other"}, "model_name", "model_name 'other' does not match"),
        ({"model_version": "999"}, "model_version", "model_version '999' does not match"),
        ({"model_name": 3}, "model_name", "must be a string"),
        ({"unknown": 1}, "unknown", "unknown top-level field 'unknown'"),
        ({"model": NAME}, "model", "unknown top-level field 'model'"),
        ({"outputs": [{"name": "probabilities"}]}, "outputs", "unknown output 'probabilities'"),
        ({"parameters": [1]}, "parameters", '"parameters" must be an object'),
    ],
)
def test_disagreeing_or_unknown_top_level_fields_are_400(server, offline, extra, field, message):
    names, rows, _ = offline
    r = requests.post(server.v2_url, json=_v2(names, rows[:1], **extra), timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and message in r.json()["error"]


def test_binary_tensor_data_that_does_not_fit_is_400(server, offline):
    names, rows, _ = offline
    header = {"inputs": [{"name": n, "shape": [1], "datatype": "INT64"} for n in names]}
    for tensor in header["inputs"]:
        tensor["parameters"] = {"binary_data_size": 8}
    head = json.dumps(header).encode()
    data = b"".join(np.array([rows[0][n]], dtype="<i8").tobytes() for n in names)
    post = lambda body, length: requests.post(  # noqa: E731
        server.v2_url,
        data=body,
        headers={"Inference-Header-Content-Length": str(length)},
        timeout=10,
    )
    assert post(head + data, len(head)).status_code == 200
    short = post(head + data[:-8], len(head))
    assert short.status_code == 400 and "does not fit" in short.json()["error"]
    extra = post(head + data + b"\0" * 8, len(head))
    assert extra.status_code == 400 and "belong to no input" in extra.json()["error"]
    assert post(head + data, len(head) + 10**6).status_code == 400
