"""Unit tests of components/deploy/replay.py: `Replay` without any server.

No server is started here. What the module allows without one is tested: what the constructor
refuses (no rows, rows that are not JSON), how it reads the router's URL (host, port, the default
port 80 and host 127.0.0.1), the V1 request path and one-row bodies in order, and the failure
path: against a port where nothing listens every request is counted as a failure by its
exception's name, nothing as ok, and leaving the `with` block stops every client thread. The
answered paths (HTTP 200 counted ok, another status counted as `HTTP <status>`) need a serving
router and are not tested here: only tests/pipelines/test_local_run.py's canary rehearsal runs
them (its windows need the replayed traffic), without asserting the counts.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest

from components.deploy.replay import Replay

ROWS = [{"AGEP": 30, "SEX": 1}, {"AGEP": 61.5, "SEX": 2}, {"AGEP": 18, "SEX": 1}]


def test_no_rows_is_refused():
    with pytest.raises(ValueError, match="^no rows to replay$"):
        Replay("http://127.0.0.1:8080", "m", [])


def test_a_row_that_is_not_json_is_refused_before_any_thread_starts():
    with pytest.raises(TypeError, match="int64 is not JSON serializable"):
        Replay("http://127.0.0.1:8080", "m", [{"AGEP": np.int64(30)}])


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://10.0.0.5:8081", "10.0.0.5", 8081),
        ("http://router.mlpipe.svc", "router.mlpipe.svc", 80),  # no port: HTTP's
        ("http://:8080", "127.0.0.1", 8080),  # no host: this machine
        ("http://[::1]:9000/anything", "::1", 9000),  # the URL's path is not used
    ],
)
def test_the_routers_url_gives_host_and_port(url, host, port):
    replay = Replay(url, "m", ROWS)
    assert (replay.host, replay.port) == (host, port)


def test_each_row_is_one_v1_request_to_the_models_predict_path_in_order():
    replay = Replay("http://127.0.0.1:8080", "income-v2", ROWS, clients=3)
    assert replay.path == "/v1/models/income-v2:predict"
    assert [json.loads(b) for b in replay.bodies] == [{"instances": [row]} for row in ROWS]
    assert replay.clients == 3
    assert (replay.ok, replay.failed, dict(replay.failures)) == (0, 0, {})


@pytest.fixture()
def closed_port() -> Iterator[int]:
    """A local port held bound but not listening: connections to it are refused (no server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_refused_requests_are_counted_by_name_and_the_clients_stop(closed_port):
    replay = Replay(f"http://127.0.0.1:{closed_port}", "m", ROWS, clients=2)
    with replay:
        assert len(replay._threads) == 2 and all(t.daemon for t in replay._threads)
        deadline = time.monotonic() + 10
        while replay.failed < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not any(t.is_alive() for t in replay._threads)
    assert replay.ok == 0 and replay.failed >= 20
    assert set(replay.failures) == {"ConnectionRefusedError"}
    # nothing is counted once the block is left
    settled = replay.failed
    time.sleep(0.05)
    assert replay.failed == settled
