"""Canary rollouts with the REAL model server (`ServeBackend` → `components.serve.launch`), real
LightGBM models and real requests: two models trained by the features and train stages on
different samples of 2015 ("stable" and a retrained "candidate"), continuous load from another
process sending real 2016 rows as V1 requests through the router.

- a good candidate is promoted through 10, 50, 100 % with no failed client request;
- the candidate with `invert` (scores 1 - p) and with `error:0.3` (30 % HTTP 500) is rolled back
  inside its first window; clients see no failure but the canary's own 500s. Their first step is
  20 %: the same first-window decision as at 10 %, reached twice as fast.
- a candidate trained without its three strongest features (another feature spec) is refused
  before any traffic: it answers the champion's requests with 400; with that pre-traffic probe off
  the same canary is rolled back by its 4xx rate in its first window;
- a candidate trained with those features blanked (the same spec, it learned nothing from them)
  is rolled back on its scores; one 80 ms slower (`latency:80`) on its p99;
- blue-green: an inverted green is caught in its shadow window (no client saw it); a good green
  is switched to at once, blue kept until the promotion; direct replaces without a failed
  request; a candidate that cannot start is rolled back with stable serving on.

One stable server serves the whole module (a server start costs 5-10 s of KServe imports on a
loaded 2-core machine): the bad candidates run first and leave it in place, then the good
canary, then the strategies that replace stable. Each test still holds if run alone or in
another order (it compares with whatever is stable). The router's own mechanics (weights,
mirroring, draining) are tested with a light stand-in upstream in test_router.py.
"""

from __future__ import annotations

import time

import pytest

from components.deploy.analysis import Policy
from components.deploy.backend import ServeBackend
from components.deploy.local_target import LocalTarget
from components.deploy.rollout import Candidate, Rollout, WindowSpec
from tests.components.deploy.conftest import LoadClient
from tests.components.deploy.real_models import (
    STRONGEST,
    stable_and_candidate,
    train_lightgbm,
    write_request_rows,
)

pytestmark = pytest.mark.integration

NAME = "acs-employment"
STEPS = [10, 50, 100]  # the default steps
BAD_STEPS = [20, 50, 100]
# The defaults' semantics with smaller windows (60 s / 200 requests would take minutes here).
# 100 canary scores against ~400-900 stable (first step 20 % / 10 %): the noise floors are KS
# 0.21-0.22 and PSI 0.31-0.35; the retrained candidate reads ~0.03 / ~0.02 offline, the inverted
# one ~0.22 / ~1.9 (PSI catches it with a wide margin; at 60 requests its PSI floor, 0.52, would
# be crossed only most of the time). Through the router on the loaded 2-core machine a good
# canary's p99 reads 15-50 ms, so the p99 limit is 50 and the stable ratio 2; `latency:80` is
# far past both.
WINDOW = WindowSpec(seconds=1.0, min_requests=100, max_seconds=60, check_interval_s=0.25)
POLICY = Policy(max_p99_ms=50, min_canary_requests=100, latency_stable_ratio=2.0)
# shadow windows compare two samples of one size (no stable history yet): the noise floors are
# higher, so they need more requests (the mirror sees all traffic)
BLUE_GREEN = {
    "strategy": "blue_green",
    "window": WindowSpec(seconds=1.0, min_requests=200, max_seconds=60, check_interval_s=0.25),
    "policy": Policy(max_p99_ms=50, min_canary_requests=200, latency_stable_ratio=2.0),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory, full_data):
    root = tmp_path_factory.mktemp("real-models")
    stable, candidate = stable_and_candidate(root, full_data)
    rows = write_request_rows(stable, root / "rows-2016.json", full_data)
    return stable, candidate, rows


@pytest.fixture(scope="module")
def serve_backend():
    with ServeBackend(timeout_s=180) as backend:  # KServe imports on a loaded 2-core machine
        yield backend


@pytest.fixture(scope="module")
def target(serve_backend, models):
    with LocalTarget.serve(serve_backend, str(models[0]), NAME, version="v1") as t:
        yield t


LOAD_THREADS = 2


def roll_out(target, rows, candidate, steps=STEPS):
    return roll_out_with(target, rows, candidate, steps=steps)


def roll_out_with(target, rows, candidate, **kwargs):
    kwargs = {"window": WINDOW, "policy": POLICY, **kwargs}
    with LoadClient(target.url, LOAD_THREADS, model=NAME, rows=rows) as load:
        time.sleep(0.5)  # load running before the candidate starts
        result = Rollout(target, **kwargs).run(candidate)
        time.sleep(0.3)  # traffic after the decision must not fail either
    return result, load


@pytest.mark.parametrize(
    ("fault", "failed_checks"),
    [("invert", ("psi", "rank_correlation")), ("error:0.3", ("error_rate",))],
)
def test_bad_canary_is_rolled_back_in_its_first_window(
    target, serve_backend, models, fault, failed_checks
):
    stable = target.router.routes.stable
    candidate = Candidate(str(models[1]), f"bad-{fault}", fault)
    result, load = roll_out(target, models[2], candidate, BAD_STEPS)
    print(
        f"\n{fault}: {result.outcome} after {result.seconds:.1f} s; the bad canary answered "
        f"{result.canary_requests} client requests ({result.canary_errors} of them 500) of "
        f"{load.ok + load.failed}; {result.reason}"
    )
    assert result.outcome == "rolled_back", result.reason
    assert result.steps == [20] and len(result.windows) == 1
    window = result.windows[0]
    assert window.decision == "rollback" and window.seconds < WINDOW.max_seconds
    assert any(f"{check} " in result.reason for check in failed_checks), result.reason
    # how many requests the bad canary answered, in the result: the decision window's and any
    # that reached it between the decision and the switch
    assert result.canary_requests >= window.canary["requests"] >= POLICY.min_canary_requests
    assert result.canary_requests < 0.3 * (load.ok + load.failed)  # ~20 % of the window's
    # clients saw exactly the canary's own 500s and nothing else: starting it, routing 20 % to
    # it and taking it out again cost no request
    assert set(load.failures) <= {"HTTP 500"} and load.ok > 300
    seen = load.failures.get("HTTP 500", 0)
    assert seen == result.canary_errors
    assert (seen > 0) == (result.canary_errors > 0) == fault.startswith("error")
    if fault.startswith("error"):
        # each request the canary answers is a 500 with the fault's probability: its share is
        # binomial, so the bound is its spread on this many requests (4 sd: ~1 in 16,000 runs
        # outside), not a fixed margin that a short window's noise can cross
        rate, n = float(fault.split(":")[1]), result.canary_requests
        spread = 4 * (rate * (1 - rate) / n) ** 0.5
        assert abs(seen / n - rate) <= spread, f"{seen} of {n} answered 500, expected ~{rate:.0%}"
    # stable serves on alone; the canary's server is stopped
    assert target.router.routes.stable is stable and target.router.routes.canary is None
    assert serve_backend.running == [stable.url]


@pytest.fixture(scope="module")
def without_strongest(tmp_path_factory, full_data):
    """(dropped, blanked): trained without the three strongest features, and with them set to
    one value (the same feature spec)."""
    root = tmp_path_factory.mktemp("without-strongest")
    return (
        train_lightgbm(root / "drop", 1, 11, full_data, drop=STRONGEST),
        train_lightgbm(root / "blank", 1, 11, full_data, blank=STRONGEST),
    )


def test_a_candidate_with_another_feature_set_is_refused_before_any_traffic(
    target, serve_backend, models, without_strongest
):
    stable = target.router.routes.stable
    candidate = Candidate(str(without_strongest[0]), "other-features")
    result, load = roll_out(target, models[2], candidate, BAD_STEPS)
    print(f"\nanother feature set: {result.outcome}; {result.reason}")
    assert result.outcome == "rolled_back"
    assert "refused before any traffic" in result.reason and "HTTP 400" in result.reason
    assert result.steps == [] and result.windows == [] and result.canary_requests == 0
    assert load.failures == {} and load.ok > 0
    assert target.router.routes.stable is stable and serve_backend.running == [stable.url]


def test_a_canary_answering_400_is_rolled_back_on_its_client_error_rate(
    target, serve_backend, models, without_strongest
):
    # the pre-traffic probe off: the traffic checks must catch it on their own
    stable = target.router.routes.stable
    target.preflight = False
    try:
        candidate = Candidate(str(without_strongest[0]), "other-features-400")
        result, load = roll_out(target, models[2], candidate, BAD_STEPS)
    finally:
        target.preflight = True
    print(f"\n400 canary: {result.outcome} after {result.seconds:.1f} s; {result.reason}")
    assert result.outcome == "rolled_back" and result.steps == [20]
    assert "client_error_increase" in result.reason and "answered_share" in result.reason
    assert result.canary_errors == 0  # no 5xx at all: the old error check promoted it
    assert set(load.failures) == {"HTTP 400"}
    assert load.failures["HTTP 400"] <= result.canary_requests + LOAD_THREADS
    assert target.router.routes.stable is stable and serve_backend.running == [stable.url]


def test_a_candidate_that_learned_nothing_from_its_strongest_features_is_rolled_back(
    target, serve_backend, models, without_strongest
):
    stable = target.router.routes.stable
    candidate = Candidate(str(without_strongest[1]), "blanked")
    result, load = roll_out(target, models[2], candidate, BAD_STEPS)
    print(
        f"\nblanked: {result.outcome} at {result.steps} after {result.seconds:.1f} s; "
        f"{result.reason}"
    )
    assert result.outcome == "rolled_back", result.reason
    assert "psi " in result.reason
    assert load.failures == {}
    assert target.router.routes.stable is stable and serve_backend.running == [stable.url]


def test_a_slow_canary_is_rolled_back_on_its_latency(target, serve_backend, models):
    # 80 ms a request: over the p99 limit (50) and far over twice stable's median
    stable = target.router.routes.stable
    candidate = Candidate(str(models[1]), "slow", "latency:80")
    result, load = roll_out(target, models[2], candidate, BAD_STEPS)
    print(f"\nlatency:80: {result.outcome} after {result.seconds:.1f} s; {result.reason}")
    assert result.outcome == "rolled_back" and result.steps == [20], result.reason
    assert "p99_ms " in result.reason and result.canary_errors == 0
    assert load.failures == {}
    assert target.router.routes.stable is stable and serve_backend.running == [stable.url]


def test_blue_green_catches_a_bad_green_in_its_shadow_window(target, serve_backend, models):
    stable = target.router.routes.stable
    candidate = Candidate(str(models[1]), "bad-green", "invert")
    result, load = roll_out_with(target, models[2], candidate, **BLUE_GREEN)
    print(f"\nblue-green, inverted green: {result.outcome}; {result.reason}")
    assert result.outcome == "rolled_back" and "shadow window" in result.reason
    assert result.canary_requests == 0  # no client ever saw green's answers
    assert result.shadow_requests >= BLUE_GREEN["window"].min_requests
    assert load.failures == {}
    assert target.router.routes.mirror is None and target.router.routes.stable is stable
    assert serve_backend.running == [stable.url]


def test_a_candidate_that_cannot_start_is_rolled_back_and_stable_keeps_serving(
    target, serve_backend, models
):
    stable = target.router.routes.stable
    candidate = Candidate(str(models[1]), "broken", "no-such-fault")
    result, load = roll_out(target, models[2], candidate, BAD_STEPS)
    assert result.outcome == "rolled_back" and "failed to start" in result.reason
    assert result.steps == [] and load.failures == {} and load.ok > 0
    assert target.router.routes.stable is stable and serve_backend.running == [stable.url]


def test_good_candidate_is_promoted_through_every_step_with_zero_failed_requests(
    target, serve_backend, models
):
    old = target.router.routes.stable
    result, load = roll_out(target, models[2], Candidate(str(models[1]), "v2"))
    print(
        f"\ngood: {result.outcome} after {result.seconds:.1f} s; the canary answered "
        f"{result.canary_requests} client requests of {load.ok + load.failed}; "
        + "; ".join(
            f"{w.percent}%: psi {w.metrics['psi']} ks {w.metrics['ks']} "
            f"rho {w.metrics.get('rank_correlation')}"
            for w in result.windows
        )
    )
    assert result.outcome == "promoted", result.reason
    assert result.steps == STEPS
    assert [w.decision for w in result.windows] == ["promote-step"] * 3
    assert all(w.canary["requests"] >= WINDOW.min_requests for w in result.windows)
    assert result.canary_errors == 0
    assert load.failures == {} and load.ok > 1000
    new = target.router.routes.stable
    assert new.label == "v2" and target.router.routes.canary is None
    # the old server drained, then stopped; only the promoted one runs
    assert serve_backend.running == [new.url] and old.url in serve_backend.logs


# after the good candidate: the strategies that replace stable (each promotes a retrain)


def test_blue_green_switches_at_once_and_keeps_blue_until_promoted(target, serve_backend, models):
    blue = target.router.routes.stable
    result, load = roll_out_with(
        target, models[2], Candidate(str(models[0]), "green"), **BLUE_GREEN
    )
    print(f"\nblue-green: {result.outcome} after {result.seconds:.1f} s; {result.reason}")
    assert result.outcome == "promoted", result.reason
    assert [(w.phase, w.percent) for w in result.windows] == [("shadow", 0), ("switched", 100)]
    assert result.steps == [100] and load.failures == {}
    green = target.router.routes.stable
    assert green.label == "green" and serve_backend.running == [green.url]
    assert blue.url in serve_backend.logs  # blue ran until the promotion, then drained


def test_direct_replaces_without_failed_requests(target, serve_backend, models):
    result, load = roll_out_with(
        target, models[2], Candidate(str(models[1]), "direct"), strategy="direct"
    )
    assert (result.outcome, result.windows, load.failures) == ("promoted", [], {})
    new = target.router.routes.stable
    assert new.label == "direct" and serve_backend.running == [new.url]
