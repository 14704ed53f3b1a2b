"""Preflight, before any traffic: `probe` sends the requests stable answered to the candidate
(the deploy tests' stand-in model server, upstream_server.py, in this process) and `check_spec`
validates champion-shaped rows with the candidate's own request validation (the model server's
SpecValidator, from a real model's feature spec)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import httpx
import pytest

from components.deploy.preflight import Incompatible, _rows, check_spec, probe
from components.serve.validation import DEFAULT_MAX_BATCH, RequestError
from tests.components.deploy.upstream_server import Faults, make_handler
from tests.fixtures.models import FEATURES, logistic

MODEL = "acs"
V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
DROPPED = ["AGEP", "SCHL", "MAR"]  # a candidate trained without them: another feature set


class Candidate:
    """The stand-in model server on a free port; `seen`: (path, content-type, body) received;
    `short`: it scores one row fewer than sent; `status`: its answers carry this status."""

    def __init__(
        self,
        name: str = MODEL,
        fault: str | None = None,
        short: bool = False,
        status: int | None = None,
    ):
        base = make_handler(name, Faults(fault))
        seen = self.seen = []

        class Handler(base):
            def _send(self, code: int, doc: object) -> None:
                super()._send(status or code, doc)  # `status`: the same body, another status

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                seen.append((self.path, self.headers.get("content-type"), body))
                if short:  # scores one row fewer than it was sent
                    doc = json.loads(body)
                    doc["instances"] = doc.get("instances", [])[1:]
                    body = json.dumps(doc).encode()
                # the stand-in reads the body again; the connection's stream serves the next
                # request (keep-alive), so it is put back after
                stream, self.rfile = self.rfile, io.BytesIO(body)
                self.headers.replace_header("content-length", str(len(body)))
                try:
                    super().do_POST()
                finally:
                    self.rfile = stream

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Candidate:
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,))
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def candidate() -> Iterator[Candidate]:
    with Candidate() as c:
        yield c


def v1(*rows: dict) -> tuple[str, bytes]:
    return V1, json.dumps({"instances": list(rows)}).encode()


REQUESTS = [v1({"i": 1}), v1({"i": 2}, {"i": 3}), v1(*({"i": i} for i in range(10)))]


# ---------------------------------------------------------------- probe


def test_probe_sends_each_request_as_it_was_sent_in_order(candidate):
    assert probe(candidate.url, REQUESTS) == 3
    assert [(p, b) for p, _, b in candidate.seen] == REQUESTS  # the exact bytes
    assert {ct for _, ct, _ in candidate.seen} == {"application/json"}


def test_probe_with_nothing_to_send_passes_without_a_request(candidate):
    assert probe(candidate.url, []) == 0 and candidate.seen == []


def test_probe_refuses_a_candidate_that_refuses_a_request_and_stops_there():
    with Candidate(name="another-model") as other:  # 404 for our model's path
        with pytest.raises(Incompatible, match=r"HTTP 404 .*no model at /v1/models/acs"):
            probe(other.url, REQUESTS)
        assert len(other.seen) == 1


def test_probe_refuses_a_candidate_that_scores_fewer_rows_than_sent():
    with Candidate(short=True) as short:
        with pytest.raises(Incompatible, match="does not score a request .* HTTP 200"):
            probe(short.url, REQUESTS[1:])  # 2 rows sent, 1 score back
        # a one-row request gets no score at all: refused too
        with pytest.raises(Incompatible, match="HTTP 200"):
            probe(short.url, REQUESTS[:1])


def test_a_client_error_refuses_even_with_scores_in_its_body():
    # scores in the body, but not a 2xx
    with Candidate(status=429) as limited, pytest.raises(Incompatible, match="HTTP 429"):
        probe(limited.url, REQUESTS)


def test_server_errors_are_left_to_the_canary_windows():
    with Candidate(fault="error:1") as failing:  # every request answered 500
        assert probe(failing.url, REQUESTS) == 3
        assert len(failing.seen) == 3  # every request still tried


def test_a_v2_request_needs_scores_but_no_row_count(candidate):
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "data": [1, 2, 3]}]})
    assert probe(candidate.url, [(V2, body.encode())]) == 1
    empty = json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "data": []}]})
    with pytest.raises(Incompatible, match="HTTP 200"):
        probe(candidate.url, [(V2, empty.encode())])  # answered, but without a score


def test_an_unreachable_candidate_is_a_transport_error_not_an_incompatibility():
    with Candidate() as gone:
        url = gone.url
    with pytest.raises(httpx.TransportError):
        probe(url, REQUESTS, timeout_s=2)


def test_a_candidate_slower_than_the_timeout_times_out():
    with Candidate(fault="latency:500") as slow, pytest.raises(httpx.TimeoutException):
        probe(slow.url, REQUESTS[:1], timeout_s=0.05)


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (b'{"instances": [{"a": 1}, {"a": 2}]}', 2),
        (b'{"instances": []}', 0),
        (b'{"inputs": [{"data": [1]}]}', None),  # V2: not counted
        (b'{"instances": {"a": 1}}', None),
        (b"[1, 2]", None),
        (b"not json", None),
        (b"\xff\xfe", None),
    ],
)
def test_rows_of_a_request_body(body, rows):
    assert _rows(body) == rows


# ---------------------------------------------------------------- check_spec


@pytest.fixture(scope="module")
def specs(acs_rows):
    train, test = acs_rows
    _, full = logistic(train)
    _, fewer = logistic(train, [f for f in FEATURES if f not in DROPPED])
    return full, fewer, test[FEATURES].head(50).to_dict("records")


def test_check_spec_accepts_the_same_features_and_refuses_another_set(acs_rows):
    train, test = acs_rows
    _, full = logistic(train)
    _, fewer = logistic(train, [f for f in FEATURES if f not in DROPPED])
    rows = test[FEATURES].head(50).to_dict("records")
    assert check_spec(full, rows) == 50
    with pytest.raises(Incompatible, match="unknown field 'AGEP'"):
        check_spec(fewer, rows)


def test_check_spec_takes_any_number_of_rows_in_one_batch(specs, acs_rows):
    full, _, _ = specs
    _, test = acs_rows
    rows = test[FEATURES].to_dict("records")
    many = rows * 21  # 10,500 rows: beyond the server's default batch limit (10,000)
    assert len(many) > DEFAULT_MAX_BATCH and check_spec(full, many) == len(many)


def test_check_spec_with_no_rows_refuses_nothing(specs):
    full, _, _ = specs
    assert check_spec(full, []) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("AGEP"), "missing field 'AGEP'"),
        (lambda r: r.update(AGEP="30"), "field 'AGEP': expected an integer, got string"),
        (lambda r: r.update(AGEP=30.5), "expected an integer, got float 30.5"),
        (lambda r: r.update(AGEP=None), "expected an integer, got null"),
        (lambda r: r.update(income=1), "unknown field 'income'"),
    ],
)
def test_check_spec_names_the_first_row_the_candidate_refuses(specs, change, message):
    full, _, rows = specs
    rows = [dict(r) for r in rows]
    change(rows[7])
    with pytest.raises(
        Incompatible, match="refuses a request the champion answers: HTTP 400"
    ) as err:
        check_spec(full, rows)
    assert message in str(err.value)
    assert isinstance(err.value.__cause__, RequestError)
