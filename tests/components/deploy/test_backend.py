"""`ServeBackend` against the real model server: the URL it hands the router, the model name in
the paths, close/stop (idempotent, log kept), a start failure. (LocalTarget turns a start failure
into `CandidateFailed`; test_rollout_real_servers.py runs whole rollouts on this backend.)"""

from __future__ import annotations

import re

import httpx
import pytest

from components.deploy.backend import ServeBackend
from components.serve.launch import ServerStartError
from tests.components.serve import conftest as serve_fixtures
from tests.components.serve.conftest import valid_rows

# the serve tests' small real model (tests/components/serve/conftest.py's fixtures, not seen here)
lgbm_model_dir = serve_fixtures.lgbm_model_dir
test_rows = serve_fixtures.test_rows

NAME = "acs-employment"


def refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/v2/health/live", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_serve_backend_serves_the_model_under_its_name_and_close_stops_it(
    lgbm_model_dir, test_rows
):
    spec_names = [c for c in test_rows.columns if c not in ("id", "year", "employed")]
    with ServeBackend() as backend:
        url = backend.start(str(lgbm_model_dir), NAME)
        # a base URL the router can prefix client paths with
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert backend.running == [url]
        resp = httpx.post(
            f"{url}/v1/models/{NAME}:predict",
            json={"instances": valid_rows(test_rows, spec_names, 3)},
        )
        assert resp.status_code == 200, resp.text
        assert all(0 <= p <= 1 for p in resp.json()["predictions"])
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200  # the router's warm path
    # one server start only (KServe's imports take 5-10 s): close() stops what stop() stops
    assert backend.running == [] and refused(url)
    assert url in backend.logs  # kept after the server's folder is gone
    backend.stop(url + "/")  # idempotent, either URL form
    backend.stop("http://127.0.0.1:1")  # never started: nothing to do


def test_a_server_that_cannot_start_raises_and_leaves_nothing_running(lgbm_model_dir):
    backend = ServeBackend(timeout_s=30)
    with pytest.raises(ServerStartError, match="bad fault"):
        backend.start(str(lgbm_model_dir), NAME, fault="no-such-fault")
    assert backend.running == []
