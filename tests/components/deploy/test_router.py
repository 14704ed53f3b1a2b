"""The weighted router against real model server processes: exact split, score capture (V1 and
V2), errors passed through and counted, shadow traffic, and zero failed requests under continuous
load while weights change, the canary is promoted and a new one rolled back."""

from __future__ import annotations

import time

import httpx
import pytest

from components.deploy.router import Router, RouterError, scores_of
from tests.components.deploy.conftest import MODEL, LoadClient
from tests.components.deploy.upstream_server import score

V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"


@pytest.fixture
def pair(backend):
    stable, canary = backend.start("m1", MODEL), backend.start("m2", MODEL, "invert")
    with Router(stable, stable_label="v1").start() as router:
        yield router, stable, canary


def test_weight_split_is_exact_and_scores_are_recorded(pair):
    router, _, canary = pair
    router.set_canary(canary, label="v2", weight=30)
    with httpx.Client(base_url=router.url) as client:
        answers = [client.post(V1, json={"instances": [{"i": i}]}).json() for i in range(200)]
    windows = router.take_windows()
    assert (windows["stable"].requests, windows["canary"].requests) == (140, 60)
    inverted = sum(
        a["predictions"][0] != pytest.approx(score({"i": i})) for i, a in enumerate(answers)
    )
    assert inverted == 60  # the canary (inverted scores) answered exactly its share
    assert len(windows["canary"].scores) == 60 and windows["canary"].errors == 0
    assert sorted(windows["stable"].scores + [1 - s for s in windows["canary"].scores]) == (
        pytest.approx(sorted(score({"i": i}) for i in range(200)))
    )
    assert router.take_windows()["stable"].requests == 0  # reset


def test_v2_scores_and_status_endpoint(pair):
    router, _, _ = pair
    body = {
        "inputs": [{"name": "x", "shape": [2], "datatype": "BYTES", "data": [{"a": 1}, {"a": 2}]}]
    }
    answer = httpx.post(router.url + V2, json=body).json()
    assert answer["outputs"][0]["data"] == pytest.approx([score({"a": 1}), score({"a": 2})])
    state = httpx.get(router.url + "/-/router").json()
    assert state["stable"]["label"] == "v1" and state["stable"]["window"]["scores"] == 2


def test_scores_of_reads_v1_v2_and_ignores_junk():
    assert scores_of(b'{"predictions": [0.1, [0.3, 0.7], true, "x"]}') == [0.1, 0.7]
    v2 = b'{"outputs": [{"name": "other", "data": [9]}, {"name": "predictions", "data": [0.2]}]}'
    assert scores_of(v2) == [0.2]
    assert scores_of(b"not json") == [] and scores_of(b"[1, 2]") == []


def test_canary_errors_reach_the_client_and_count(backend, pair):
    router, _, _ = pair
    broken = backend.start("m3", MODEL, "error:1.0")
    router.set_canary(broken, weight=50)
    with httpx.Client(base_url=router.url) as client:
        codes = [client.post(V1, json={"instances": [{"i": i}]}).status_code for i in range(20)]
    assert codes.count(500) == 10 and codes.count(200) == 10
    canary = router.take_windows()["canary"]
    assert (canary.requests, canary.errors, canary.scores) == (10, 10, [])
    # an upstream that goes away: connection errors become 502s, also counted
    old = router.rollback()
    router.drain(old)
    backend.stop(broken)
    dead = backend.start("m4", MODEL)
    router.set_canary(dead, weight=100)
    backend.stop(dead)
    resp = httpx.post(router.url + V1, json={"instances": [{"i": 1}]})
    assert resp.status_code == 502 and "upstream canary failed" in resp.text
    assert router.take_windows()["canary"].errors == 1


def test_shadow_gets_copies_the_client_sees_stable(pair):
    router, _, canary = pair
    router.set_mirror(canary, label="v2-shadow")
    with httpx.Client(base_url=router.url) as client:
        answers = [client.post(V1, json={"instances": [{"i": i}]}).json() for i in range(30)]
    assert [a["predictions"][0] for a in answers] == pytest.approx(
        [score({"i": i}) for i in range(30)]
    )
    old = router.set_mirror(None)
    assert router.drain(old)
    mirror = old.window
    assert mirror.requests == 30 and mirror.scores == pytest.approx(
        [1 - score({"i": i}) for i in range(30)]
    )


def test_control_errors(pair, backend):
    router, _, canary = pair
    with pytest.raises(RouterError, match="no canary to promote"):
        router.promote()
    with pytest.raises(RouterError, match="no canary"):
        router.set_weight(10)
    up = router.set_canary(canary)
    with pytest.raises(RouterError, match="already routed"):
        router.set_canary(canary)
    with pytest.raises(RouterError, match="0..100"):
        router.set_weight(101)
    with pytest.raises(RouterError, match="still routed"):
        router.drain(up)
    with pytest.raises(RouterError, match="not reachable"):
        router.set_mirror("http://127.0.0.1:9")  # nothing listens on the discard port


def test_zero_failed_requests_under_load_through_steps_promote_and_rollback(backend):
    v1 = backend.start("m1", MODEL)
    with Router(v1, stable_label="v1").start() as router, LoadClient(router.url) as load:
        time.sleep(0.3)
        v2 = backend.start("m2", MODEL)
        router.set_canary(v2, label="v2", weight=10)
        for weight in (25, 50, 75, 100):
            time.sleep(0.25)
            router.set_weight(weight)
        time.sleep(0.25)
        old = router.promote()
        assert router.drain(old) and old.in_flight == 0
        backend.stop(old.url)  # v1 is gone; nothing may fail
        v3 = backend.start("m3", MODEL)
        router.set_canary(v3, label="v3", weight=50)
        time.sleep(0.4)
        old = router.rollback()
        assert router.drain(old)
        backend.stop(v3)
        time.sleep(0.3)
        windows = router.take_windows()
    assert load.failures == {} and load.ok > 200
    assert router.routes.stable.label == "v2" and windows["stable"].requests > 0
    assert backend.stopped == [v1, v3]


def test_client_errors_are_counted_apart_and_pairs_hold_both_scores_of_a_row(backend):
    stable = backend.start("m1", MODEL)
    inverted = backend.start("m2", MODEL, "invert")
    other = backend.start("m3", "another-model")  # answers this model's path with 404
    with Router(stable, stable_label="v1").start() as router:
        router.set_pairing(True)
        router.set_canary(inverted, label="v2", weight=50)
        with httpx.Client(base_url=router.url) as client:
            for i in range(40):
                client.post(V1, json={"instances": [{"i": i}]})
        time.sleep(0.2)  # the pair partners' answers land in the background
        windows = router.take_windows()
        # stable's paired copies are not its traffic
        assert windows["stable"].requests == 20 and windows["canary"].requests == 20
        pairs = router.pairs()
        assert len(pairs) == 20
        assert all(c == pytest.approx(1 - s) for s, c in pairs)
        router.rollback()
        router.set_canary(other, label="v3", weight=50)
        with httpx.Client(base_url=router.url) as client:
            codes = [client.post(V1, json={"instances": [{"i": i}]}).status_code for i in range(40)]
        canary = router.take_windows()["canary"]
        assert codes.count(404) == 20
        assert (canary.requests, canary.errors, canary.client_errors) == (20, 0, 20)
        assert canary.answered_share == 0.0 and router.pairs() == []


def test_preflight_probes_a_candidate_with_the_requests_stable_answered(backend):
    from components.deploy.preflight import Incompatible, probe

    stable = backend.start("m1", MODEL)
    with Router(stable, stable_label="v1").start() as router:
        with httpx.Client(base_url=router.url) as client:
            for i in range(30):
                client.post(V1, json={"instances": [{"i": i}, {"i": i + 1}]})
        answered = router.answered_requests()
        assert len(answered) == 20 and answered[-1][0] == V1
        assert probe(backend.start("m2", MODEL), answered) == 20
        with pytest.raises(Incompatible, match="HTTP 404"):
            probe(backend.start("m3", "another-model"), answered)
        assert probe(backend.start("m4", MODEL, "error:1"), answered) == 20  # 5xx: the windows'
