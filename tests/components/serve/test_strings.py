"""String categorical features through the real model server over HTTP: V1 rows and V2 BYTES
tensors carry the declared texts, the validator maps them to the codes the model was trained on
(components/common/categories.py), and an undeclared text is a 400 naming the field and value."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from components.common import categories
from components.common.artifacts import load_model, read_dataset
from components.serve.fast_path import FastScorer
from components.serve.launch import start_server
from tests.components.serve.conftest import train_model
from tests.fixtures.strings_data import string_frame, string_schema

NAME = "strings"
N = 40


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_model(tmp_path_factory.mktemp("strings"), string_frame(), string_schema())


@pytest.fixture(scope="module")
def offline(model_dir):
    """(names, request rows with texts, the model's offline scores of the same rows as codes)."""
    pipeline, spec = load_model(model_dir)
    names = [f["name"] for f in spec["features"]]
    test = read_dataset(model_dir.parent / "test.parquet")[names].head(N)
    rows = test.to_dict("records")
    for entry in spec["features"]:
        if categories.is_string(entry):
            for row, text in zip(rows, categories.decode(test[entry["name"]], entry), strict=True):
                row[entry["name"]] = text
    rows = [{k: v if isinstance(v, str) else int(v) for k, v in r.items()} for r in rows]
    return names, rows, pipeline.predict_proba(test)[:, 1]


@pytest.fixture(scope="module")
def server(model_dir):
    with start_server(model_dir, NAME) as running:
        yield running


def v2(names, rows, types):
    return {
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": types[n], "data": [r[n] for r in rows]}
            for n in names
        ]
    }


TYPES = {"age": "INT64", "degree": "BYTES", "employer": "BYTES"}


def test_the_requests_carry_texts_and_the_fast_path_applies(model_dir, offline):
    _, rows, _ = offline
    assert {type(r["employer"]) for r in rows} == {str}
    pipeline, spec = load_model(model_dir)
    from components.serve.fast_path import build_scorer

    assert isinstance(build_scorer(pipeline, spec), FastScorer)


def test_v1_with_strings_equals_offline(server, offline):
    _, rows, want = offline
    with requests.Session() as http:
        r = http.post(server.v1_url, json={"instances": [rows[0]]}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == pytest.approx([want[0]], abs=1e-12)
        r = http.post(server.v1_url, json={"instances": rows}, timeout=10)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], want, atol=1e-12, rtol=0)


def test_v2_bytes_equals_offline(server, offline):
    names, rows, want = offline
    for part, expected in ((rows[:1], want[:1]), (rows, want)):
        r = requests.post(server.v2_url, json=v2(names, part, TYPES), timeout=10)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected, atol=1e-12, rtol=0)


def test_metadata_reports_bytes_for_string_inputs(server):
    meta = requests.get(f"{server.url}/v2/models/{NAME}", timeout=10).json()
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == TYPES


@pytest.mark.parametrize("n", [1, 3, 40])
def test_an_unseen_string_is_a_400_naming_field_and_value(server, offline, n):
    names, rows, _ = offline
    bad = [dict(r) for r in rows[:n]]
    bad[-1]["employer"] = "Unemployed"
    for url, body in (
        (server.v1_url, {"instances": bad}),
        (server.v2_url, v2(names, bad, TYPES)),
    ):
        r = requests.post(url, json=body, timeout=10)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert "'employer'" in error and "'Unemployed'" in error, error


def test_a_code_or_a_wrong_datatype_for_a_string_feature_is_a_400(server, offline):
    names, rows, _ = offline
    coded = [{**rows[0], "employer": 1}]
    r = requests.post(server.v1_url, json={"instances": coded}, timeout=10)
    assert r.status_code == 400 and "employer" in r.json()["error"], r.text
    r = requests.post(server.v2_url, json=v2(names, rows[:1], {**TYPES, "employer": "INT64"}))
    assert r.status_code == 400 and "BYTES" in r.json()["error"], r.text


@pytest.mark.parametrize(
    ("algorithm", "encoding"),
    [("xgboost", "native"), ("lightgbm", "onehot"), ("logistic_regression", "ordinal")],
)
def test_texts_score_as_offline_for_every_encoding_and_family(tmp_path, algorithm, encoding):
    """The validator's codes feed every encoder (native, one-hot, ordinal) and family the same
    way the features stage's codes did: the served scores equal the model's offline ones."""
    from components.serve.fast_path import build_scorer
    from components.serve.validation import SpecValidator

    model_dir = train_model(tmp_path, string_frame(), string_schema(), algorithm, encoding=encoding)
    pipeline, spec = load_model(model_dir)
    names = [f["name"] for f in spec["features"]]
    test = read_dataset(model_dir.parent / "test.parquet")[names].head(N)
    rows = test.to_dict("records")
    for entry in (e for e in spec["features"] if categories.is_string(e)):
        for row, text in zip(rows, categories.decode(test[entry["name"]], entry), strict=True):
            row[entry["name"]] = text
    rows = [{k: v if isinstance(v, str) else int(v) for k, v in r.items()} for r in rows]
    raw = SpecValidator(spec).v1({"instances": rows})
    want = pipeline.predict_proba(test)[:, 1]
    np.testing.assert_allclose(build_scorer(pipeline, spec)(raw), want, atol=1e-9, rtol=0)
