"""The KServe model (serve/tabular_model.py) in process, on a real LightGBM model dir: the shared
V1/V2 core, KServe's `predict` for dicts and InferRequests, the `invert` fault, the score
observer, where scoring runs (loop or worker thread) and `rows_of`. No server is started."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from components.serve import tabular_model as tm
from components.serve._kserve import InferRequest, InferResponse, InvalidInput, kserve
from components.serve.faults import Faults
from components.serve.model_source import load_model_uri
from components.serve.tabular_model import TabularModel, rows_of, run_scoring
from components.serve.validation import RequestError
from tests.components.serve.conftest import offline_predictions

NAME = "acs"


@pytest.fixture(scope="module")
def loaded(lgbm_model_dir):
    return load_model_uri(str(lgbm_model_dir))


@pytest.fixture(scope="module")
def offline(lgbm_model_dir, test_rows):
    return offline_predictions(lgbm_model_dir, test_rows, 10)


def _model(loaded, **kwargs) -> TabularModel:
    model = TabularModel(NAME, loaded, **kwargs)
    assert model.load() is True
    return model


def _infer_request(model: TabularModel, rows: list[dict], request_id: str | None = None):
    # kserve via _kserve: imported directly it would parse pytest's command line
    inputs = [kserve.InferInput(**t) for t in _v2_body(model, rows)["inputs"]]
    return InferRequest(NAME, inputs, request_id=request_id, from_grpc=False)


def _v2_body(model: TabularModel, rows: list[dict]) -> dict:
    return {
        "inputs": [
            {
                "name": t["name"],
                "shape": [len(rows)],
                "datatype": t["datatype"],
                "data": [r[t["name"]] for r in rows],
            }
            for t in model.get_input_types()
        ]
    }


# ---------------------------------------------------------------- rows_of


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        ({"instances": [{}, {}, {}]}, 3),
        ({"instances": []}, 0),
        ({"inputs": [{"name": "a", "data": [1, 2]}, {"name": "b", "data": [1]}]}, 2),
        ({"inputs": [{"name": "a", "data": "12"}]}, 0),
        ({"inputs": [{"name": "a"}]}, 0),
        ({"inputs": []}, 0),
        ({"inputs": ["x"]}, 0),
        ({"instances": "many"}, 0),
        ({}, 0),
        ([{"instances": [1]}], 0),
        (None, 0),
        ("instances", 0),
    ],
)
def test_rows_of_reads_the_claimed_rows_without_validating(body, rows):
    assert rows_of(body) == rows


# ---------------------------------------------------------------- run_scoring


def test_run_scoring_stays_on_the_loop_unless_offloaded():
    async def where(offload: bool) -> int:
        return await run_scoring(offload, threading.get_ident)

    async def both() -> tuple[int, int, int]:
        return threading.get_ident(), await where(False), await where(True)

    loop_thread, inline, offloaded = asyncio.run(both())
    assert inline == loop_thread
    assert offloaded != loop_thread


@pytest.mark.parametrize("offload", [False, True])
def test_run_scoring_passes_the_result_and_raises_the_error(offload):
    def boom() -> None:
        raise RequestError("bad row", "x", 3)

    assert asyncio.run(run_scoring(offload, lambda: 42)) == 42
    with pytest.raises(RequestError, match="bad row"):
        asyncio.run(run_scoring(offload, boom))


# ---------------------------------------------------------------- the model


def test_load_makes_it_ready_with_the_specs_features(loaded):
    model = TabularModel(NAME, loaded)
    assert not model.ready
    assert model.load() is True and model.ready
    names = [f["name"] for f in loaded.spec["features"]]
    assert [t["name"] for t in model.get_input_types()] == names
    assert all(t["shape"] == [-1] for t in model.get_input_types())
    assert model.get_output_types() == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
    assert model.version == loaded.version


def test_infer_v1_answers_the_offline_scores_and_feeds_the_observer(loaded, offline):
    names, rows, expected = offline
    model = _model(loaded)
    seen: list[np.ndarray] = []
    model.score_observer = seen.append
    response, raw, scores = model.infer_v1({"instances": rows})
    np.testing.assert_allclose(response["predictions"], expected, rtol=1e-9)
    assert raw.shape == (len(rows), len(names))
    np.testing.assert_array_equal(scores, response["predictions"])
    assert len(seen) == 1 and np.array_equal(seen[0], scores)


def test_infer_v2_response_names_the_model_and_takes_the_bodys_id(loaded, offline):
    _, rows, expected = offline
    model = _model(loaded)
    body = _v2_body(model, rows)
    response, _, _ = model.infer_v2(body, request_id="http-1")
    assert response["id"] == "http-1"  # no id in the body: the HTTP request's
    assert response["model_name"] == NAME and response["model_version"] == loaded.version
    (output,) = response["outputs"]
    assert output["name"] == "predictions" and output["datatype"] == "FP64"
    assert output["shape"] == [len(rows)]
    np.testing.assert_allclose(output["data"], expected, rtol=1e-9)
    response, _, _ = model.infer_v2({**body, "id": "mine"}, request_id="http-1")
    assert response["id"] == "mine"


def test_the_invert_fault_answers_one_minus_the_score(loaded, offline):
    _, rows, expected = offline
    model = _model(loaded, faults=Faults(invert=True))
    seen: list[np.ndarray] = []
    model.score_observer = seen.append
    response, _, _ = model.infer_v1({"instances": rows})
    np.testing.assert_allclose(response["predictions"], 1.0 - expected, rtol=1e-9)
    np.testing.assert_allclose(seen[0], 1.0 - expected, rtol=1e-9)  # what clients saw


@pytest.mark.parametrize(
    "body",
    [{"instances": [{"nope": 1}]}, {"rows": []}, [], {"instances": "x"}],
)
def test_an_invalid_v1_body_is_a_request_error_and_scores_nothing(loaded, body):
    model = _model(loaded)
    seen: list[np.ndarray] = []
    model.score_observer = seen.append
    with pytest.raises(RequestError):
        model.infer_v1(body)
    assert seen == []


def test_more_rows_than_max_batch_is_refused(loaded, offline):
    _, rows, _ = offline
    model = _model(loaded, max_batch=3)
    with pytest.raises(RequestError):
        model.infer_v1({"instances": rows[:4]})
    assert len(model.infer_v1({"instances": rows[:3]})[0]["predictions"]) == 3


# ---------------------------------------------------------------- KServe's predict


def test_predict_a_v1_dict(loaded, offline):
    _, rows, expected = offline
    response = asyncio.run(_model(loaded).predict({"instances": rows}))
    np.testing.assert_allclose(response["predictions"], expected, rtol=1e-9)


def test_predict_an_infer_request_answers_an_infer_response(loaded, offline):
    _, rows, expected = offline
    model = _model(loaded)
    response = asyncio.run(model.predict(_infer_request(model, rows, "r-1")))
    assert isinstance(response, InferResponse)
    assert response.id == "r-1" and response.model_name == NAME
    assert response.model_version == loaded.version
    (output,) = response.outputs
    np.testing.assert_allclose(output.data, expected, rtol=1e-9)


def test_predict_an_infer_request_without_id_takes_the_header_else_a_new_one(loaded, offline):
    _, rows, _ = offline
    model = _model(loaded)
    request = _infer_request(model, rows)
    by_header = asyncio.run(model.predict(request, {"x-request-id": "hdr"}))
    assert by_header.id == "hdr"
    fresh = asyncio.run(model.predict(_infer_request(model, rows)))
    assert fresh.id and fresh.id != "hdr"


def test_predict_turns_a_request_error_into_kserves_invalid_input(loaded):
    model = _model(loaded)
    with pytest.raises(InvalidInput, match="row 0: missing field"):
        asyncio.run(model.predict({"instances": [{"nope": 1}]}))


def test_predict_scores_a_big_batch_in_a_worker_thread(loaded, test_rows, monkeypatch):
    """Over OFFLOAD_ROWS rows: scored off the event loop, with the same answers."""
    names = [f["name"] for f in loaded.spec["features"]]
    n = tm.OFFLOAD_ROWS + 1
    frame = test_rows[names].head(n)
    assert len(frame) == n
    rows = [{k: int(v) for k, v in r.items()} for r in frame.to_dict("records")]
    model = _model(loaded, max_batch=n)
    threads: list[int] = []
    model.score_observer = lambda _: threads.append(threading.get_ident())

    async def go() -> tuple[int, dict]:
        return threading.get_ident(), await model.predict({"instances": rows})

    loop_thread, response = asyncio.run(go())
    expected = loaded.pipeline.predict_proba(frame)[:, 1]
    np.testing.assert_allclose(response["predictions"], expected, rtol=1e-9)
    assert threads and threads[0] != loop_thread
    # one row fewer than the limit stays on the loop
    monkeypatch.setattr(tm, "OFFLOAD_ROWS", n)
    threads.clear()
    loop_thread, _ = asyncio.run(go())
    assert threads == [loop_thread]
