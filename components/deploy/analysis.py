"""Canary analysis: compare the canary's window with stable's and decide.

A canary is rolled back for breakage, not for being a different model: a retrained model of equal
quality scores every row a little differently by construction, so a check that fails on "the
score distribution moved at all" rolls back every retrain (measured on the laptop: KS 0.10-0.16
between equal-quality retrains, verdicts flipping between identical re-runs). What decides:

- error rate: 5xx and connection errors over requests (`max_error_rate`);
- client errors: the canary's 4xx rate above stable's by more than `max_client_error_increase` —
  a candidate that refuses the requests stable answers (another feature set, a stricter schema)
  is broken for these clients even though it never answers 5xx. Compared with stable's rate:
  clients that send bad requests get 400 from both;
- answered share: the share of canary requests answered 2xx with scores, at least
  `min_answered_share` times stable's share (clients sending requests neither can answer are not
  the canary's fault);
- p99 latency of the canary upstream above `max_p99_ms` — when the canary is also slower than
  stable in the same period (its p50 or p90 above `latency_stable_ratio` times stable's): a
  canary is not blamed for a slow node both share. p50 and p90, not p99, for that comparison:
  the p99 of a hundred requests is one request, and one scheduler hiccup on a loaded node would
  roll a good canary back;
- PSI of the canary's score distribution against stable's (10 bins at stable's deciles): an
  effect size. Its limit is the larger of `max_psi` and what sampling noise reaches with
  probability `alpha` (0.001) at these sample sizes (n_eff * PSI is about chi-square with
  bins - 1 degrees of freedom): the limit never shrinks below `max_psi` however many requests
  the window holds, so a large window does not turn a harmless shift into a rollback. Measured
  (benchmarks/canary_verdicts.py, 2016 rows): retrains of equal quality 0.01-0.04; a model
  trained without its three strongest features 0.56; `invert` 1.3; a constant model 7.4.
- rank correlation of paired scores (when the target scores the same rows on both versions, the
  local router's pairing): Spearman's rho of canary vs stable below `min_rank_correlation`.
  Retrains read 0.8-0.9, an inverted model -1, a constant one 0 (no ranking at all); it catches
  breakage that keeps the score distribution (a model scoring the wrong rows high).

KS of the same two samples is reported, never decides: it is the largest CDF gap, and a retrain
that moves one point mass (all rows aged under 16 share one score) moves it by 0.1-0.17 while
ranking every row as well as before. The mean score is reported but never decides either:
inverting the scores barely moves it (0.506 vs 0.494 on the bundled model).

Decision: `continue` until the canary answered `min_canary_requests` (and while the window is still
open), `rollback` as soon as any check fails, `promote-step` when the window is complete and every
check passes. Every check is a deterministic function of the recorded requests (no sampling), so
the same requests give the same verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np

from components.deploy.windows import Window

Decision = Literal["continue", "promote-step", "rollback"]


@dataclass(frozen=True)
class Policy:
    max_error_rate: float = 0.01
    max_p99_ms: float = 10.0
    max_psi: float = 0.2
    min_canary_requests: int = 200
    max_client_error_increase: float = 0.01
    min_answered_share: float = 0.99
    min_rank_correlation: float = 0.5
    min_pairs: int = 50
    latency_stable_ratio: float = 1.5
    # significance of the PSI noise floor; strict because a window is tested again at
    # every check interval, and each look is another chance for noise to pass a limit
    alpha: float = 0.001
    psi_bins: int = 10

    @classmethod
    def from_config(cls, cfg) -> Policy:
        """From `deployment.rollout.policy` (components.common.config.RolloutPolicy)."""
        return cls(**cfg.model_dump())  # every field of the section is one of the policy's


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    passed: bool
    detail: str = ""

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.name} {self.value:.4g} (limit {self.limit:.4g}): {verdict}{detail}"


@dataclass(frozen=True)
class Analysis:
    decision: Decision
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def psi(expected: list[float] | np.ndarray, actual: list[float] | np.ndarray, bins: int = 10):
    """Population stability index of `actual` against `expected`, binned at `expected`'s quantiles
    (counts smoothed by half a request per bin so an empty bin of a small window is not
    infinite)."""
    exp = np.asarray(expected, dtype=float)
    act = np.asarray(actual, dtype=float)
    if exp.size == 0 or act.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(exp, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, exp, side="right"), minlength=edges.size + 1)
    a = np.bincount(np.searchsorted(edges, act, side="right"), minlength=edges.size + 1)
    e = (e + 0.5) / (exp.size + 0.5 * e.size)
    a = (a + 0.5) / (act.size + 0.5 * a.size)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    x = np.sort(np.asarray(a, dtype=float))
    y = np.sort(np.asarray(b, dtype=float))
    if x.size == 0 or y.size == 0:
        return float("nan")
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / x.size
    cdf_y = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(cdf_x - cdf_y)))


def rank_correlation(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); 0.0 when either side is constant (no ranking)."""
    x = _ranks(np.asarray(a, dtype=float))
    y = _ranks(np.asarray(b, dtype=float))
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.arange(values.size, dtype=float)
    # ties share their average rank
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def psi_critical(n: int, m: int, bins: int = 10, alpha: float = 0.01) -> float:
    """The PSI two samples of sizes n and m exceed with probability `alpha` when drawn from one
    distribution: PSI / (1/n + 1/m) is asymptotically chi-square with bins - 1 degrees of freedom
    (quantile by Wilson-Hilferty)."""
    if n == 0 or m == 0:
        return math.inf
    k = bins - 1
    z = NormalDist().inv_cdf(1 - alpha)
    chi2 = k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3
    return chi2 * (1 / n + 1 / m)


def _latency_check(stable: Window, canary: Window, policy: Policy) -> Check:
    ratio = policy.latency_stable_ratio
    c50, s50 = canary.percentile_ms(50), stable.percentile_ms(50)
    c90, s90 = canary.percentile_ms(90), stable.percentile_ms(90)
    slower = not stable.latencies_ms or c50 > ratio * s50 or c90 > ratio * s90
    passed = canary.p99_ms <= policy.max_p99_ms or not slower
    versus = f"p50 {c50:.3g} ms vs stable {s50:.3g}, p90 {c90:.3g} vs {s90:.3g}"
    if canary.p99_ms <= policy.max_p99_ms:
        detail = ""
    elif slower:
        detail = versus
    else:
        detail = f"stable is as slow: {versus}"
    return Check("p99_ms", canary.p99_ms, policy.max_p99_ms, passed, detail)


def analyze(
    stable: Window,
    canary: Window,
    policy: Policy,
    *,
    window_complete: bool = True,
    pairs: list[tuple[float, float]] | None = None,
) -> Analysis:
    """The decision for the canary's window against stable's (see the module docstring).
    `pairs`: (stable score, canary score) of rows both versions scored, when the target has
    them."""
    pairs = pairs or []
    metrics: dict[str, float] = {
        "canary_requests": canary.requests,
        "stable_requests": stable.requests,
        "canary_error_rate": canary.error_rate,
        "stable_error_rate": stable.error_rate,
        "canary_p50_ms": canary.percentile_ms(50),
        "stable_p50_ms": stable.percentile_ms(50),
        "canary_p99_ms": canary.p99_ms,
        "stable_p99_ms": stable.p99_ms,
    }
    if canary.scores:
        metrics["canary_mean_score"] = float(np.mean(canary.scores))
    if stable.scores:
        metrics["stable_mean_score"] = float(np.mean(stable.scores))
    if canary.requests < policy.min_canary_requests:
        reason = (
            f"too few canary requests: {canary.requests} < min_canary_requests "
            f"{policy.min_canary_requests}"
        )
        return Analysis("continue", [reason], [], metrics)

    increase = canary.client_error_rate - stable.client_error_rate
    # relative to stable's share: when clients send requests stable cannot answer either, the
    # canary is not held to a share no server could reach
    answered_floor = policy.min_answered_share * (stable.answered_share if stable.requests else 1)
    checks = [
        Check("error_rate", canary.error_rate, policy.max_error_rate,
              canary.error_rate <= policy.max_error_rate),
        Check("client_error_increase", increase, policy.max_client_error_increase,
              increase <= policy.max_client_error_increase,
              f"4xx {canary.client_error_rate:.3g} vs stable {stable.client_error_rate:.3g}"),
        Check("answered_share", canary.answered_share, answered_floor,
              canary.answered_share >= answered_floor,
              f"{canary.answered_requests} of {canary.requests} answered with scores"),
    ]  # fmt: skip
    checks.append(_latency_check(stable, canary, policy))
    notes: list[str] = []
    if canary.scores and stable.scores:
        n, m = len(stable.scores), len(canary.scores)
        value = psi(stable.scores, canary.scores, policy.psi_bins)
        limit = max(policy.max_psi, psi_critical(n, m, policy.psi_bins, policy.alpha))
        checks.append(Check("psi", value, limit, value <= limit))
        ks = ks_statistic(stable.scores, canary.scores)
        metrics.update(psi=value, ks=ks)
        notes.append(f"ks {ks:.4g} (reported, not a check)")
    else:
        notes.append(
            f"score distribution not compared: {len(stable.scores)} stable and "
            f"{len(canary.scores)} canary scores"
        )
    if len(pairs) >= policy.min_pairs:
        rho = rank_correlation([p[0] for p in pairs], [p[1] for p in pairs])
        checks.append(
            Check("rank_correlation", rho, policy.min_rank_correlation,
                  rho >= policy.min_rank_correlation, f"{len(pairs)} rows scored by both")
        )  # fmt: skip
        metrics["rank_correlation"] = rho
        metrics["pairs"] = len(pairs)
    elif pairs:
        notes.append(f"rank correlation not checked: {len(pairs)} pairs < {policy.min_pairs}")

    failed = [c for c in checks if not c.passed]
    if failed:
        return Analysis("rollback", [str(c) for c in failed] + notes, checks, metrics)
    if not window_complete:
        return Analysis("continue", ["all checks pass; window still open", *notes], checks, metrics)
    return Analysis("promote-step", ["all checks pass", *notes], checks, metrics)
