"""The rollout controller: strategies over one `Target` interface.

- `canary`: the candidate takes each step's share of traffic (e.g. 10, 50, 100 %); each step is an
  analysis window (at least `window.seconds` and `window.min_requests` canary requests). The
  analysis runs every `check_interval_s`: a failing check rolls back at once, inside the window.
  After the last step passes, the candidate is promoted (it becomes stable; the old one drains and
  stops).
- `blue_green`: start green. Where the target can mirror (local router), green first gets a shadow
  window — a copy of every request, answers discarded, so a bad green is caught before any client
  sees it. Then all traffic switches at once (blue keeps running), one more window on live traffic,
  and green is promoted — or traffic switches back to blue on failure. A target without mirroring
  (KServe) skips the shadow window.
- `direct`: start the candidate, switch all traffic, stop the old one. No analysis.

The canary's scores are compared with every stable score since the rollout began, so the 100 %
step (stable answers nothing) is still compared with stable's distribution; latencies are compared
with stable's in the same window (load changes over time) — or, when stable answered too few
requests in it (the 100 % step), with stable's latest window that had enough.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

from components.deploy.analysis import Analysis, Policy, analyze
from components.deploy.windows import Window

MIN_LATENCY_SAMPLES = 50  # fewer stable latencies in a window: compare with stable's history


class CandidateFailed(RuntimeError):
    """The candidate never became ready (crashed, failed to load, timed out)."""


@dataclass(frozen=True)
class Candidate:
    """The model to roll out: `uri` is a local model directory or a storageUri; `version` names
    it (router label, KServe predictor name); `fault` is the model server's fault switch."""

    uri: str
    version: str
    fault: str | None = None


@dataclass(frozen=True)
class WindowSpec:
    seconds: float = 60.0
    min_requests: int = 200
    max_seconds: float = 600.0
    check_interval_s: float = 1.0

    @classmethod
    def from_config(cls, cfg) -> WindowSpec:
        """From `deployment.rollout.window` (config_sections.deployment.AnalysisWindow)."""
        return cls(cfg.seconds, cfg.min_requests, cfg.max_seconds, cfg.check_interval_s)


class Target(Protocol):
    """Where models serve: a local router with backends, or a KServe InferenceService."""

    supports_shadow: bool

    def start_candidate(self, candidate: Candidate) -> None:
        """Start the candidate beside stable, with no traffic; `CandidateFailed` if it never
        becomes ready."""

    def set_canary_traffic(self, percent: int) -> None: ...

    def set_shadow(self, on: bool) -> None:
        """Mirror every request to the candidate (answers discarded)."""

    def promote(self) -> None:
        """The candidate becomes stable; the old stable stops once drained."""

    def rollback(self) -> Window | None:
        """Remove the candidate; stable takes all traffic; the candidate stops once drained.
        Returns the candidate's window since `open_window` as it stood once drained (requests
        that reached it between the decision and the switch count too), or None if the target
        cannot tell."""

    def open_window(self) -> None:
        """Start counting a new analysis window."""

    def read_window(self) -> tuple[Window, Window]:
        """(stable, candidate) since `open_window` (the candidate's shadow traffic if mirrored)."""


@dataclass
class WindowReport:
    phase: str  # "canary", "shadow", "switched"
    percent: int  # the candidate's share of client traffic
    decision: str
    reasons: list[str]
    seconds: float
    stable: dict
    canary: dict
    metrics: dict


@dataclass
class RolloutResult:
    strategy: str
    outcome: Literal["promoted", "rolled_back"]
    reason: str
    steps: list[int] = field(default_factory=list)  # traffic percents the candidate reached
    windows: list[WindowReport] = field(default_factory=list)
    canary_requests: int = 0  # client requests the candidate answered (all windows)
    canary_errors: int = 0
    shadow_requests: int = 0  # mirrored requests it answered (no client saw them)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Rollout:
    """Runs one strategy against one target. `clock` and `sleep` are injectable (tests of the
    KServe flow run on a fake clock)."""

    def __init__(
        self,
        target: Target,
        *,
        strategy: str = "canary",
        steps: list[int] | tuple[int, ...] = (10, 50, 100),
        window: WindowSpec | None = None,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        if strategy not in ("canary", "blue_green", "direct"):
            raise ValueError(f"unknown strategy {strategy!r} (canary | blue_green | direct)")
        self.target = target
        self.strategy = strategy
        self.steps = list(steps)
        self.window = window or WindowSpec()
        self.policy = policy or Policy()
        self.clock = clock
        self.sleep = sleep
        self.log = log
        self._baseline = Window()
        self._last_canary = Window()
        self._recent_latencies: list[float] = []

    @classmethod
    def from_config(cls, target: Target, rollout_cfg, **kwargs) -> Rollout:
        """From `deployment.rollout` (config_sections.deployment.RolloutConfig)."""
        return cls(
            target,
            strategy=rollout_cfg.strategy,
            steps=rollout_cfg.steps,
            window=WindowSpec.from_config(rollout_cfg.window),
            policy=Policy.from_config(rollout_cfg.policy),
            **kwargs,
        )

    def run(self, candidate: Candidate) -> RolloutResult:
        started = self.clock()
        self._baseline = Window()  # stable's history: this rollout's only
        self._last_canary = Window()  # the candidate's live window as counted at the decision
        self._recent_latencies: list[float] = []
        result = RolloutResult(self.strategy, "rolled_back", "")
        try:
            self.target.start_candidate(candidate)
        except CandidateFailed as exc:
            result.reason = f"candidate {candidate.version} failed to start: {exc}"
            self._safe_rollback(result)
            result.seconds = self.clock() - started
            return result
        try:
            {"canary": self._canary, "blue_green": self._blue_green, "direct": self._direct}[
                self.strategy
            ](result)
        except BaseException:
            self._safe_rollback(result)  # never leave a half-rolled-out candidate behind
            raise
        result.seconds = self.clock() - started
        self.log(f"rollout {self.strategy}: {result.outcome} ({result.reason})")
        return result

    # ------------------------------------------------------------ strategies

    def _canary(self, result: RolloutResult) -> None:
        for percent in self.steps:
            self.target.set_canary_traffic(percent)
            result.steps.append(percent)
            report = self._window("canary", percent, result)
            if report.decision == "rollback":
                self._rollback(result, f"canary at {percent}%: {'; '.join(report.reasons)}")
                return
        self._promote(result, f"all {len(self.steps)} steps passed")

    def _blue_green(self, result: RolloutResult) -> None:
        if self.target.supports_shadow:
            self.target.set_shadow(True)
            report = self._window("shadow", 0, result)
            self.target.set_shadow(False)
            if report.decision == "rollback":
                self._rollback(result, f"shadow window: {'; '.join(report.reasons)}")
                return
        self.target.set_canary_traffic(100)  # the switch, at once; blue keeps running
        result.steps.append(100)
        report = self._window("switched", 100, result)
        if report.decision == "rollback":
            self._rollback(result, f"after the switch: {'; '.join(report.reasons)}")
            return
        shadowed = "its shadow and live windows" if self.target.supports_shadow else "its window"
        self._promote(result, f"green passed {shadowed}")

    def _direct(self, result: RolloutResult) -> None:
        self.target.set_canary_traffic(100)
        result.steps.append(100)
        self._promote(result, "direct replacement (no analysis)")

    # ------------------------------------------------------------ parts

    def _window(self, phase: str, percent: int, result: RolloutResult) -> WindowReport:
        spec = self.window
        self.target.open_window()
        start = self.clock()
        while True:
            self.sleep(spec.check_interval_s)
            stable, canary = self.target.read_window()
            elapsed = self.clock() - start
            complete = elapsed >= spec.seconds and canary.requests >= spec.min_requests
            analysis = analyze(
                self._reference(stable),
                canary,
                self.policy,
                window_complete=complete,
                pairs=self._pairs() if phase != "shadow" else None,
            )
            if analysis.decision == "continue" and elapsed >= spec.max_seconds:
                analysis = Analysis(
                    "rollback",
                    [
                        f"window not complete after max_seconds {spec.max_seconds:g}: "
                        f"{canary.requests} canary requests (need {spec.min_requests}); "
                        + "; ".join(analysis.reasons)
                    ],
                    analysis.checks,
                    analysis.metrics,
                )
            if analysis.decision != "continue":
                break
        self._baseline = self._baseline.merged(stable)
        if len(stable.latencies_ms) >= MIN_LATENCY_SAMPLES:
            self._recent_latencies = list(stable.latencies_ms)
        if phase == "shadow":
            result.shadow_requests += canary.requests
        else:
            result.canary_requests += canary.requests
            result.canary_errors += canary.errors
            self._last_canary = canary
        report = WindowReport(
            phase,
            percent,
            analysis.decision,
            analysis.reasons,
            round(elapsed, 3),
            stable.summary(),
            canary.summary(),
            {k: round(float(v), 6) for k, v in analysis.metrics.items()},
        )
        result.windows.append(report)
        self.log(
            f"{phase} {percent}%: {analysis.decision} after {elapsed:.1f}s: {analysis.reasons}"
        )
        return report

    def _pairs(self) -> list[tuple[float, float]]:
        """Both versions' scores of the same rows, from a target that pairs (the local router)."""
        read = getattr(self.target, "read_pairs", None)
        return read() if read is not None else []

    def _reference(self, stable: Window) -> Window:
        """What the canary is compared with: stable's scores since the rollout began (the 100 %
        step has no stable traffic of its own), but stable's latencies of this window only —
        load changes over minutes, and latency must be compared in the same period. When stable
        answered too few requests in this window for percentiles (the 100 % step), its latest
        window that had enough stands in (the closest in time)."""
        latencies = stable.latencies_ms
        if len(latencies) < MIN_LATENCY_SAMPLES:
            latencies = [*self._recent_latencies, *latencies]
        return Window(
            stable.requests,
            stable.errors,
            list(latencies),
            [*self._baseline.scores, *stable.scores],
            stable.seconds,
            stable.client_errors,
            stable.answered,
        )

    def _promote(self, result: RolloutResult, reason: str) -> None:
        self.target.promote()
        result.outcome, result.reason = "promoted", reason

    def _rollback(self, result: RolloutResult, reason: str) -> None:
        drained = self.target.rollback()
        if drained is not None:  # answered after the decision, before traffic left it
            result.canary_requests += max(0, drained.requests - self._last_canary.requests)
            result.canary_errors += max(0, drained.errors - self._last_canary.errors)
        result.outcome, result.reason = "rolled_back", reason

    def _safe_rollback(self, result: RolloutResult) -> None:
        try:
            self.target.rollback()
        except Exception as exc:  # the original failure matters more
            self.log(f"rollback after a failure failed too: {exc}")
        result.outcome = "rolled_back"
