"""Canary analysis on synthetic windows: the inverted-score case (mean barely moves, PSI does), a
retrain that moves KS but not PSI nor the ranking (promoted), client errors and answered share,
paired rank correlation, too few requests, errors, latency, noise floors."""

from __future__ import annotations

import numpy as np
import pytest

from components.deploy.analysis import (
    Policy,
    analyze,
    ks_statistic,
    psi,
    psi_critical,
    rank_correlation,
)
from components.deploy.windows import Window

POLICY = Policy(max_error_rate=0.01, max_p99_ms=10, max_psi=0.2, min_canary_requests=200)


def scores(n: int, seed: int) -> np.ndarray:
    """Skewed like a classifier's scores: half low and spread, half high and tight."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.5, rng.beta(0.8, 6, n), 1 - rng.beta(4, 30, n))


def window(n: int, seed: int, *, invert=False, errors=0, latency_ms=2.0, spread=1.0) -> Window:
    s = scores(n - errors, seed)
    lat = list(np.random.default_rng(seed + 1).gamma(4, latency_ms / 4 * spread, n) + 0.0)
    return Window(n, errors, lat, list(1 - s if invert else s))


def test_inverted_scores_roll_back_on_psi_while_the_mean_barely_moves():
    stable, canary = window(5000, 1), window(1000, 2, invert=True)
    result = analyze(stable, canary, POLICY)
    assert abs(result.metrics["canary_mean_score"] - result.metrics["stable_mean_score"]) < 0.02
    assert result.decision == "rollback"
    assert {c.name for c in result.failed} == {"psi"}
    assert result.metrics["ks"] > 0.1 and result.metrics["psi"] > 0.2
    assert any(r.startswith("psi ") and "limit 0.2" in r for r in result.reasons)


def test_ks_is_reported_but_a_retrain_moving_a_point_mass_is_promoted():
    # the laptop's case: a retrain ties the rows aged under 16 at another score. KS reads the
    # point mass's move (~0.17), PSI barely sees it, and the rows rank as they did
    rng = np.random.default_rng(5)
    base = scores(4000, 3)
    base[:700] = 0.02407
    retrained = np.clip(base + rng.normal(0, 0.02, base.size), 0, 1)
    retrained[:700] = 0.02439
    order = rng.permutation(base.size)
    stable = Window(3000, 0, [2.0] * 3000, list(base[order[:3000]]))
    canary = Window(1000, 0, [2.0] * 1000, list(retrained[order[3000:]]))
    pairs = list(zip(base[order[3000:]], retrained[order[3000:]], strict=True))
    result = analyze(stable, canary, POLICY, pairs=pairs)
    assert result.metrics["ks"] > 0.1  # the old check's limit: it rolled this back
    assert result.decision == "promote-step", result.reasons
    assert any(r.startswith("ks ") and "not a check" in r for r in result.reasons)


def test_client_errors_above_stable_roll_back_and_equal_ones_do_not():
    # a candidate that refuses a quarter of the requests stable answers: 400s, no 5xx
    stable = Window(2000, 0, [2.0] * 2000, list(scores(1960, 1)), client_errors=40)
    canary = Window(400, 0, [2.0] * 400, list(scores(300, 2)), client_errors=100)
    result = analyze(stable, canary, POLICY)
    assert result.decision == "rollback"
    assert {c.name for c in result.failed} == {"client_error_increase", "answered_share"}
    assert "4xx 0.25 vs stable 0.02" in str(result.failed[0])
    # clients sending bad requests get 400 from both: not the canary's fault
    canary = Window(400, 0, [2.0] * 400, list(scores(392, 2)), client_errors=8)
    assert analyze(stable, canary, POLICY).decision == "promote-step"


def test_most_canary_requests_must_return_scores():
    # 200 OK without scores (an empty or malformed answer) counts as not answered
    canary = Window(400, 0, [2.0] * 400, list(scores(300, 2)), answered=300)
    result = analyze(window(2000, 1), canary, POLICY)
    assert [c.name for c in result.failed] == ["answered_share"]
    assert "300 of 400 answered" in result.reasons[0]
    # stable answers everything: the canary must answer 99 % itself
    limit = next(c.limit for c in result.checks if c.name == "answered_share")
    assert limit == pytest.approx(0.99)
    edge = Window(400, 0, [2.0] * 400, list(scores(395, 2)), answered=395)
    assert analyze(window(2000, 1), edge, POLICY).decision == "rollback"


def _pairs(n: int, seed: int, noise: float, flip=False, constant=False):
    rng = np.random.default_rng(seed)
    a = scores(n, seed)
    b = np.clip(a + rng.normal(0, noise, n), 0, 1)
    b = 1 - b if flip else b
    b = np.full(n, 0.4) if constant else b
    return list(zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("case", "kwargs", "decision"),
    [
        ("retrain", {"noise": 0.1}, "promote-step"),
        ("inverted", {"noise": 0.1, "flip": True}, "rollback"),
        ("constant", {"noise": 0.1, "constant": True}, "rollback"),
    ],
)
def test_rank_correlation_of_paired_scores(case, kwargs, decision):
    # the canary's own distribution is left like stable's: only the pairs tell the cases apart
    pairs = _pairs(1000, 4, **kwargs)
    result = analyze(window(5000, 1), window(1000, 2), POLICY, pairs=pairs)
    assert result.decision == decision, (case, result.reasons)
    if decision == "rollback":
        assert [c.name for c in result.failed] == ["rank_correlation"]
    assert result.metrics["pairs"] == 1000


def test_rank_correlation_needs_min_pairs():
    pairs = _pairs(30, 4, noise=0.1, flip=True)
    result = analyze(window(5000, 1), window(1000, 2), POLICY, pairs=pairs)
    assert result.decision == "promote-step"
    assert any("30 pairs < 50" in r for r in result.reasons)


def test_the_same_requests_give_the_same_verdict():
    stable, canary = window(3000, 1), window(500, 2)
    pairs = _pairs(500, 4, noise=0.1)
    first = analyze(stable, canary, POLICY, pairs=pairs)
    again = analyze(stable, canary, POLICY, pairs=list(reversed(pairs)))
    assert (first.decision, first.reasons, first.metrics) == (
        again.decision,
        again.reasons,
        again.metrics,
    )


def test_too_few_canary_requests_decide_nothing_even_if_bad():
    result = analyze(window(5000, 1), window(50, 2, invert=True, errors=25), POLICY)
    assert result.decision == "continue"
    assert result.reasons == ["too few canary requests: 50 < min_canary_requests 200"]
    assert result.checks == []


def test_good_canary_is_promoted_only_when_the_window_is_complete():
    stable, canary = window(5000, 1), window(1000, 2)
    assert analyze(stable, canary, POLICY).decision == "promote-step"
    early = analyze(stable, canary, POLICY, window_complete=False)
    assert early.decision == "continue" and early.failed == []


def test_error_rate_over_the_limit_rolls_back_with_value_and_limit():
    result = analyze(window(5000, 1), window(1000, 2, errors=300), POLICY)
    assert result.decision == "rollback"
    # 5xx are not answers either
    assert [c.name for c in result.failed] == ["error_rate", "answered_share"]
    assert result.reasons[0] == "error_rate 0.3 (limit 0.01): FAILED"


def test_added_latency_rolls_back_but_a_slow_node_is_not_the_canary_fault():
    slow_canary = window(1000, 2, latency_ms=22)
    result = analyze(window(5000, 1), slow_canary, POLICY)
    assert [c.name for c in result.failed] == ["p99_ms"]
    assert "limit 10" in result.reasons[0] and "vs stable" in result.reasons[0]
    # everything is slow (stable too): the canary is no worse than 1.5 x stable's p50 and p90
    slow_stable = window(5000, 1, latency_ms=22)
    result = analyze(slow_stable, window(1000, 2, latency_ms=22), POLICY)
    assert result.decision == "promote-step"
    assert "stable is as slow" in str(next(c for c in result.checks if c.name == "p99_ms"))


def test_added_latency_is_caught_by_the_median_when_a_loaded_node_has_a_long_tail():
    # stable's tail is long (load spikes) so the canary's p99 is not 1.5x it; its median is
    stable = Window(2000, 0, [5.0] * 1960 + [60.0] * 40, [])
    canary = Window(200, 0, [25.0] * 196 + [70.0] * 4, [])
    assert stable.p99_ms == 60.0 and canary.p99_ms == 70.0
    result = analyze(stable, canary, POLICY)
    assert result.decision == "rollback" and "p50 25 ms vs stable 5" in result.reasons[0]


def test_one_slow_request_of_a_good_canary_is_not_a_regression():
    # a loaded node: two hiccups make the canary's p99 (of 100), its body matches stable's
    stable = Window(1000, 0, [8.0] * 980 + [30.0] * 20, [])
    canary = Window(100, 0, [8.0] * 98 + [100.0] * 2, [])
    assert canary.p99_ms == 100.0 > 1.5 * stable.p99_ms
    assert analyze(stable, canary, Policy(min_canary_requests=100)).decision == "promote-step"


def test_small_windows_are_judged_against_the_noise_floor():
    # 300 vs 60 samples of one distribution: KS and PSI exceed 0.1 / 0.2 by chance alone
    policy = Policy(min_canary_requests=50)
    limits = {c.name: c.limit for c in analyze(window(300, 11), window(60, 12), policy).checks}
    assert limits["psi"] > 0.4
    # the floor is no excuse for a real shift
    assert analyze(window(300, 11), window(60, 12, invert=True), policy).decision == "rollback"
    # and vanishes with large windows, where the effect size decides: the limit never shrinks
    # below max_psi however many requests a window holds
    limits = {c.name: c.limit for c in analyze(window(20000, 1), window(5000, 2), policy).checks}
    assert limits["psi"] == 0.2


def test_without_scores_the_distribution_is_not_compared_and_says_so():
    stable = Window(500, 0, [1.0] * 500, [])
    canary = Window(300, 0, [1.0] * 300, [])
    result = analyze(stable, canary, POLICY)
    assert result.decision == "promote-step"
    assert "score distribution not compared" in result.reasons[-1]


def test_statistics():
    a = scores(4000, 3)
    assert ks_statistic(a, a) == 0.0
    assert psi(a, a) == pytest.approx(0.0, abs=1e-9)
    assert ks_statistic([0.1, 0.2], [0.8, 0.9]) == 1.0
    assert psi(a, 1 - a) > 0.5
    # chi-square(9) 0.99 quantile = 21.666
    assert psi_critical(1000, 1000) == pytest.approx(21.666 * 2 / 1000, rel=0.01)
    assert np.isnan(psi([], a)) and np.isnan(ks_statistic(a, []))
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, 1 - a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.full(a.size, 0.3)) == 0.0
    assert rank_correlation([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)


def test_policy_from_config():
    from components.common.config import load_pipeline_config

    policy = Policy.from_config(load_pipeline_config().deployment.rollout.policy)
    assert policy.min_canary_requests == 200
    assert policy.min_answered_share == 0.99 and policy.max_client_error_increase == 0.01
    assert policy.min_rank_correlation == 0.5
