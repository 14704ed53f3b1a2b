"""Generated malformed requests (hypothesis), built from the feature spec: every one is answered
4xx with a JSON message, and the server stays healthy. At least 200 cases per endpoint."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.common.artifacts import load_model
from components.serve.launch import start_server
from components.serve.validation import FeatureRule
from tests.components.serve.conftest import valid_rows

NAME = "acs"
CASES = 250  # per endpoint; the test asserts at least MIN_CASES were sent
MIN_CASES = 200
MAX_BATCH = 20
HYPOTHESIS = settings(
    max_examples=CASES,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases every run
    suppress_health_check=list(HealthCheck),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def setup(lgbm_model_dir, test_rows):
    _, spec = load_model(lgbm_model_dir)
    rules = [FeatureRule.from_spec(f) for f in spec["features"]]
    rows = valid_rows(test_rows, [r.name for r in rules], 30)
    with start_server(lgbm_model_dir, NAME, max_batch=MAX_BATCH) as server:
        yield server, rules, rows


def bad_value(rule: FeatureRule) -> st.SearchStrategy:
    """A value this feature must reject: wrong type, or an integer outside its domain."""
    wrong_type = st.one_of(
        st.text(max_size=6),
        st.booleans(),
        st.none(),
        st.floats(allow_nan=False, allow_infinity=False),  # any float where an integer is due
        st.lists(st.integers(0, 5), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
    low, high = int(rule.low), int(rule.high)
    outside = st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))
    if rule.codes is not None:  # a list of codes: the gaps are unseen codes too
        outside = outside | st.integers(low, high).filter(lambda v: v not in rule.codes)
    return wrong_type | outside


@st.composite
def v1_case(draw, rules, rows) -> tuple[str, bytes]:
    n = draw(st.integers(1, 4))
    batch = [dict(r) for r in draw(st.lists(st.sampled_from(rows), min_size=n, max_size=n))]
    target = draw(st.integers(0, n - 1))
    rule = draw(st.sampled_from(rules))
    kind = draw(
        st.sampled_from(
            ["value", "missing", "extra", "row_type", "top", "empty", "oversized", "garbage"]
        )
    )
    body: object
    if kind == "value":
        batch[target][rule.name] = draw(bad_value(rule))
        body = {"instances": batch}
    elif kind == "missing":
        del batch[target][rule.name]
        body = {"instances": batch}
    elif kind == "extra":
        name = draw(
            st.text(min_size=1, max_size=8).filter(lambda s: s not in {r.name for r in rules})
        )
        batch[target][name] = draw(JSON_VALUES)
        body = {"instances": batch}
    elif kind == "row_type":
        batch[target] = draw(JSON_SCALARS | st.lists(st.integers(), max_size=3))
        body = {"instances": batch}
    elif kind == "top":
        body = draw(
            st.one_of(
                JSON_SCALARS,
                st.lists(JSON_VALUES, max_size=3),
                st.just({"rows": batch}),
                st.just({"instances": batch, "extra": 1}),
                JSON_SCALARS.map(lambda v: {"instances": v}),
            )
        )
    elif kind == "empty":
        body = {"instances": []}
    elif kind == "oversized":
        body = {"instances": [rows[0]] * draw(st.integers(MAX_BATCH + 1, 3 * MAX_BATCH))}
    else:
        return kind, draw(garbage(json.dumps({"instances": batch}).encode()))
    return kind, json.dumps(body).encode()


def garbage(valid: bytes) -> st.SearchStrategy[bytes]:
    """Bodies that are not JSON: truncated, random bytes, NaN literals, empty."""
    return st.one_of(
        st.integers(0, len(valid) - 1).map(lambda k: valid[:k]),
        st.binary(min_size=1, max_size=40).filter(lambda b: not _is_json(b)),
        st.just(valid.replace(b"}", b"", 1) + b"]"),
        st.just(b'{"instances": [{"AGEP": NaN}]}'),
        st.just(b""),
    )


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


@st.composite
def v2_case(draw, rules, rows) -> tuple[str, bytes]:
    n = draw(st.integers(1, 4))
    batch = draw(st.lists(st.sampled_from(rows), min_size=n, max_size=n))
    tensors = [
        {
            "name": r.name,
            "shape": [n],
            "datatype": r.datatype,
            "data": [row[r.name] for row in batch],
        }
        for r in rules
    ]
    k = draw(st.integers(0, len(tensors) - 1))
    rule = rules[k]
    kind = draw(
        st.sampled_from(
            [
                "value",
                "datatype",
                "shape",
                "length",
                "missing",
                "extra",
                "duplicate",
                "inputs",
                "top",
                "garbage",
            ]
        )
    )
    body: object = {"inputs": tensors}
    if kind == "value":
        tensors[k]["data"][draw(st.integers(0, n - 1))] = draw(bad_value(rule))
    elif kind == "datatype":
        tensors[k]["datatype"] = draw(
            st.sampled_from(["FP64", "FP32", "INT32", "INT8", "UINT64", "BOOL", "BYTES", "int64"])
            | st.text(max_size=6)
            | JSON_SCALARS
        )
    elif kind == "shape":
        tensors[k]["shape"] = draw(
            st.one_of(
                st.just([n, 1]),
                st.just([]),
                st.integers(-3, 50).filter(lambda m: m != n).map(lambda m: [m]),
                JSON_SCALARS,
                st.lists(st.text(max_size=2), min_size=1, max_size=2),
            )
        )
    elif kind == "length":
        tensors[k]["data"] = tensors[k]["data"] + [tensors[k]["data"][0]]
    elif kind == "missing":
        del tensors[k]
    elif kind == "extra":
        name = draw(
            st.text(min_size=1, max_size=8).filter(lambda s: s not in {r.name for r in rules})
        )
        tensors.append({"name": name, "shape": [n], "datatype": "INT64", "data": [1] * n})
    elif kind == "duplicate":
        tensors.append(dict(tensors[k]))
    elif kind == "inputs":
        body = {
            "inputs": draw(
                st.one_of(JSON_SCALARS, st.just([]), st.lists(JSON_SCALARS, min_size=1, max_size=3))
            )
        }
    elif kind == "top":
        body = draw(
            st.one_of(
                JSON_SCALARS, st.lists(JSON_VALUES, max_size=3), st.just({"instances": batch})
            )
        )
    else:
        return kind, draw(garbage(json.dumps({"inputs": tensors}).encode()))
    return kind, json.dumps(body).encode()


def post(server, path: str, body: bytes) -> tuple[int, bytes]:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_rejected(status: int, payload: bytes, kind: str, body: bytes) -> None:
    assert 400 <= status < 500, f"{kind}: HTTP {status} for {body[:300]!r}: {payload[:300]!r}"
    message = json.loads(payload)
    assert isinstance(message.get("error"), str) and message["error"], payload


@pytest.mark.parametrize("endpoint", ["v1", "v2"])
def test_generated_malformed_requests_are_4xx_and_the_server_survives(setup, endpoint):
    server, rules, rows = setup
    path = server.v1_url if endpoint == "v1" else server.v2_url
    path = urlsplit(path).path
    sent: dict[str, int] = {}
    strategy = v1_case(rules, rows) if endpoint == "v1" else v2_case(rules, rows)

    @HYPOTHESIS
    @given(strategy)
    def case(generated: tuple[str, bytes]) -> None:
        kind, body = generated
        status, payload = post(server, path, body)
        check_rejected(status, payload, kind, body)
        sent[kind] = sent.get(kind, 0) + 1

    case()
    total = sum(sent.values())
    print(
        f"\n{endpoint}: {total} generated malformed requests, all 4xx with a JSON message: {sent}"
    )
    assert total >= MIN_CASES
    assert server.alive()
    # still healthy and still right after all of them
    status, _ = post(server, path, b"")  # one more bad one
    assert status == 400
    conn = http.client.HTTPConnection(urlsplit(server.url).hostname, urlsplit(server.url).port)
    conn.request("GET", "/v2/health/ready")
    assert json.loads(conn.getresponse().read()) == {"ready": True}
    conn.close()
    good = (
        {"instances": rows[:2]}
        if endpoint == "v1"
        else {
            "inputs": [
                {
                    "name": r.name,
                    "shape": [2],
                    "datatype": r.datatype,
                    "data": [x[r.name] for x in rows[:2]],
                }
                for r in rules
            ]
        }
    )
    status, payload = post(server, path, json.dumps(good).encode())
    assert status == 200, payload
