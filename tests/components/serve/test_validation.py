"""Request validation from the feature spec: every rule, single rows and batches, V1 and V2."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.serve.validation import RequestError, SpecValidator
from tests.components.serve.conftest import spec_from_schema

ROW = {
    "AGEP": 35, "SCHL": 21, "MAR": 1, "RELP": 0, "DIS": 2, "ESP": 0, "CIT": 1, "MIG": 1,
    "MIL": 4, "ANC": 1, "NATIVITY": 1, "DEAR": 2, "DEYE": 2, "DREM": 2, "SEX": 1, "RAC1P": 1,
}  # fmt: skip


@pytest.fixture(scope="module")
def validator(schema) -> SpecValidator:
    return SpecValidator(spec_from_schema(schema), max_batch=100)


def v2_body(rows: list[dict], datatype: str = "INT64") -> dict:
    return {
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": datatype, "data": [r[n] for r in rows]}
            for n in ROW
        ]
    }


def test_valid_row_and_batch_give_the_matrix_in_spec_order(validator):
    one = validator.v1({"instances": [ROW]})
    assert one.shape == (1, 16) and one.dtype == np.float64
    assert one[0].tolist() == [float(ROW[n]) for n in validator.names]
    rows = [{**ROW, "AGEP": 20 + i} for i in range(40)]  # 40 rows: the vectorised checks
    batch = validator.v1({"instances": rows})
    assert batch[:, 0].tolist() == [20.0 + i for i in range(40)]
    np.testing.assert_array_equal(validator.v2(v2_body(rows)), batch)


@pytest.mark.parametrize("n_rows", [1, 3, 40])  # one row, small batch, vectorised batch
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("AGEP", "35", "expected an integer, got string"),
        ("AGEP", 35.5, "expected an integer, got float"),
        ("SCHL", 21.0, "expected an integer, got float"),  # a float where a code is required
        ("SEX", True, "expected an integer, got boolean"),
        ("MAR", None, "expected an integer, got null"),
        ("MAR", [1], "expected an integer, got array"),
        ("AGEP", float("nan"), "expected an integer, got float"),
        ("AGEP", 120, r"outside the declared domain \[0, 99\]"),
        ("AGEP", -1, "outside the declared domain"),
        ("ANC", 5, "unseen category code"),  # inside the gap of ANC's codes [1, 2, 3, 4, 8]
        ("SCHL", 25, "unseen category code"),
        ("RAC1P", 0, "unseen category code"),
    ],
)
def test_bad_values_name_the_field_and_row(validator, n_rows, field, value, message):
    rows = [dict(ROW) for _ in range(n_rows)]
    bad_row = n_rows - 1
    rows[bad_row][field] = value
    with pytest.raises(RequestError, match=message) as err:
        validator.v1({"instances": rows})
    assert err.value.field == field and err.value.row == bad_row and err.value.status == 400
    assert field in str(err.value)
    if n_rows > 1:
        assert f"row {bad_row}" in str(err.value)


def test_missing_and_unknown_fields(validator):
    missing = {k: v for k, v in ROW.items() if k != "DREM"}
    with pytest.raises(RequestError, match="row 1: missing field 'DREM'"):
        validator.v1({"instances": [ROW, missing]})
    with pytest.raises(RequestError, match="unknown field 'income'") as err:
        validator.v1({"instances": [{**ROW, "income": 5}]})
    assert err.value.field == "income"
    swapped = {**missing, "income": 5}  # same size, different keys
    with pytest.raises(RequestError, match="missing field 'DREM'"):
        validator.v1({"instances": [swapped]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([ROW], "must be a JSON object"),
        ("x", "must be a JSON object"),
        ({}, 'must hold "instances"'),
        ({"instances": ROW}, '"instances" must be a list'),
        ({"instances": []}, "empty batch"),
        ({"instances": [ROW], "extra": 1}, "unknown top-level field 'extra'"),
        ({"instances": [ROW, [1, 2]]}, "row 1: expected an object"),
    ],
)
def test_bad_v1_bodies(validator, body, message):
    with pytest.raises(RequestError, match=message):
        validator.v1(body)


def test_oversized_batch_is_413(validator):
    with pytest.raises(RequestError, match="exceeds the limit of 100") as err:
        validator.v1({"instances": [ROW] * 101})
    assert err.value.status == 413


def test_infinite_float_in_a_float_feature_is_rejected():
    spec = {"features": [{"name": "x", "kind": "numeric", "dtype": "float", "min": 0.0}]}
    validator = SpecValidator(spec)
    assert validator.v1({"instances": [{"x": 1}, {"x": 2.5}]})[:, 0].tolist() == [1.0, 2.5]
    for n in (1, 40):
        with pytest.raises(RequestError, match="not a finite number"):
            validator.v1({"instances": [{"x": 1.0}] * (n - 1) + [{"x": math.inf}]})
    with pytest.raises(RequestError, match=r"outside the declared domain \[0, inf\]"):
        validator.v1({"instances": [{"x": -0.5}]})


def v2_with(tensor_change: dict, name: str = "SEX") -> dict:
    body = v2_body([ROW, ROW])
    for tensor in body["inputs"]:
        if tensor["name"] == name:
            tensor.update(tensor_change)
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (v2_with({"datatype": "FP64"}), "datatype must be INT64, not 'FP64'"),
        (v2_with({"datatype": "BYTES"}), "datatype must be INT64"),
        (v2_with({"shape": [2, 1]}), "shape must be"),
        (v2_with({"shape": [3]}), "data must be a flat list of 3"),
        (v2_with({"shape": [1], "data": [1]}), "differs from the other tensors"),
        (v2_with({"data": [1, 7]}), "row 1: field 'SEX': value 7 is an unseen category code"),
        (v2_with({"data": [1, 1.0]}), "row 1: field 'SEX': expected an integer, got float"),
        (v2_with({"data": [[1], [1]]}), "expected an integer, got array"),
        (v2_with({"name": "sex"}), "unknown input tensor 'sex'"),
        (v2_with({"extra": 1}), "unknown field 'extra'"),
        ({"inputs": v2_body([ROW])["inputs"][1:]}, "missing input tensor 'AGEP'"),
        ({"inputs": [*v2_body([ROW])["inputs"], v2_body([ROW])["inputs"][0]]}, "given twice"),
        ({"inputs": []}, "non-empty list"),
        ({"inputs": {"AGEP": [1]}}, "non-empty list"),
        ({"inputs": [1]}, "expected a tensor object"),
        ({"instances": [ROW]}, "unknown top-level field 'instances'"),
        ([], "must be a JSON object"),
    ],
)
def test_bad_v2_bodies(validator, body, message):
    with pytest.raises(RequestError, match=message):
        validator.v2(body)


def test_v2_accepts_id_and_parameters(validator):
    body = {"id": "r1", "parameters": {}, **v2_body([ROW])}
    assert validator.v2(body).shape == (1, 16)
    with pytest.raises(RequestError, match='"id" must be a string'):
        validator.v2({**body, "id": 5})


def test_error_json_names_field_and_row():
    err = RequestError("row 3: bad", field="AGEP", row=3)
    assert err.to_json() == {"error": "row 3: bad", "field": "AGEP", "row": 3}
