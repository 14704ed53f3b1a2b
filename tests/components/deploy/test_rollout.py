"""The rollout controller (deploy/rollout.py) against scripted targets: config parsing, each
strategy's plan (which traffic moves, in what order), the window's decisions (wait, pass, roll
back, time out), failure paths (a candidate that never starts, a target that raises) and what a
rolled-back rollout reports the candidate answered (requests after the decision, before traffic
left it, count too — the clients saw them). Deterministic: no servers, a fake clock."""

from __future__ import annotations

import pytest

from components.common.config import load_pipeline_config
from components.deploy.analysis import Policy
from components.deploy.rollout import (
    MIN_LATENCY_SAMPLES,
    Candidate,
    CandidateFailed,
    Rollout,
    RolloutResult,
    WindowSpec,
)
from components.deploy.windows import Window
from tests.support.clock import FakeClock


def _window(requests: int, errors: int) -> Window:
    w = Window()
    for i in range(requests):
        w.record(1.0, error=i < errors, scores=None if i < errors else [0.5])
    return w


class ScriptedTarget:
    """A candidate that fails `errors` of `requests` in its window, then `late` more requests
    (`late_errors` failed) before the rollback's switch drained it (None: it cannot tell)."""

    supports_shadow = False

    def __init__(self, drained: tuple[int, int] | None, requests=300, errors=60) -> None:
        self.canary = _window(requests, errors)
        self.drained = drained
        self.calls: list[str] = []

    def start_candidate(self, candidate: Candidate) -> None:
        self.calls.append("start")

    def set_canary_traffic(self, percent: int) -> None:
        self.calls.append(f"traffic {percent}")

    def set_shadow(self, on: bool) -> None:
        raise AssertionError("no shadow on this target")

    def promote(self) -> None:
        self.calls.append("promote")

    def rollback(self) -> Window | None:
        self.calls.append("rollback")
        if self.drained is None:
            return None
        late, late_errors = self.drained
        return self.canary.merged(_window(late, late_errors))

    def open_window(self) -> None:
        pass

    def read_window(self) -> tuple[Window, Window]:
        return _window(1000, 0), self.canary


def _rollout(target: ScriptedTarget) -> Rollout:
    return Rollout(
        target,
        strategy="canary",
        steps=[10, 50],
        window=WindowSpec(seconds=0, min_requests=200, max_seconds=10, check_interval_s=0),
        policy=Policy(),
        sleep=lambda s: None,
        log=lambda m: None,
    )


def test_requests_answered_between_decision_and_switch_are_counted():
    target = ScriptedTarget(drained=(7, 5))
    result = _rollout(target).run(Candidate("m", "2"))
    assert result.outcome == "rolled_back" and "error" in result.reason
    assert target.calls == ["start", "traffic 10", "rollback"]
    assert (result.canary_requests, result.canary_errors) == (300 + 7, 60 + 5)


def test_a_target_that_cannot_tell_keeps_the_decisions_counts():
    result = _rollout(ScriptedTarget(drained=None)).run(Candidate("m", "2"))
    assert (result.canary_requests, result.canary_errors) == (300, 60)


def test_a_drained_window_never_lowers_the_counts():
    """A target whose drained window is behind the last read (a counter reset) adds nothing."""
    target = ScriptedTarget(drained=(0, 0))
    target.rollback = lambda: _window(10, 1)  # fewer than the decision saw
    result = _rollout(target).run(Candidate("m", "2"))
    assert (result.canary_requests, result.canary_errors) == (300, 60)


# ---------------------------------------------------------------- config and plans


def test_an_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'rolling'"):
        Rollout(PlannedTarget(), strategy="rolling")


def test_from_config_takes_strategy_steps_window_and_policy():
    cfg = load_pipeline_config().deployment.rollout.model_copy(
        update={"strategy": "blue_green", "steps": [25, 100]}
    )
    window = cfg.window.model_copy(update={"seconds": 3.0, "min_requests": 7})
    policy = cfg.policy.model_copy(update={"max_error_rate": 0.2})
    cfg = cfg.model_copy(update={"window": window, "policy": policy})
    rollout = Rollout.from_config(PlannedTarget(), cfg, sleep=lambda s: None)
    assert rollout.strategy == "blue_green" and rollout.steps == [25, 100]
    assert rollout.window == WindowSpec(3.0, 7, window.max_seconds, window.check_interval_s)
    assert rollout.policy.max_error_rate == 0.2
    assert rollout.policy.min_canary_requests == policy.min_canary_requests


def test_the_default_rollout():
    rollout = Rollout(PlannedTarget())
    assert (rollout.strategy, rollout.steps) == ("canary", [10, 50, 100])
    assert rollout.window == WindowSpec(60.0, 200, 600.0, 1.0) and rollout.policy == Policy()


def _healthy(requests: int) -> Window:
    return _window(requests, 0)


class PlannedTarget:
    """A target whose candidate answers `reads[phase]`'s windows, one per read (the last one
    repeats); every call is logged. The stable window always has 1000 healthy requests."""

    def __init__(self, reads=None, *, shadow=False, start_error=None, rollback_error=None):
        self.supports_shadow = shadow
        self.reads = reads or {}
        self.start_error, self.rollback_error = start_error, rollback_error
        self.calls: list[str] = []
        self.phase = "canary"
        self.read_count = 0

    def start_candidate(self, candidate: Candidate) -> None:
        self.calls.append(f"start {candidate.version}")
        if self.start_error is not None:
            raise self.start_error

    def set_canary_traffic(self, percent: int) -> None:
        self.calls.append(f"traffic {percent}")
        self.phase = "switched" if percent == 100 and "switched" in self.reads else "canary"

    def set_shadow(self, on: bool) -> None:
        self.calls.append(f"shadow {on}")
        if on:
            self.phase = "shadow"

    def promote(self) -> None:
        self.calls.append("promote")

    def rollback(self) -> Window | None:
        self.calls.append("rollback")
        if self.rollback_error is not None:
            raise self.rollback_error
        return None

    def open_window(self) -> None:
        self.calls.append("open")
        self.read_count = 0

    def read_window(self) -> tuple[Window, Window]:
        plan = self.reads.get(self.phase, [_healthy(300)])
        canary = plan[min(self.read_count, len(plan) - 1)]
        self.read_count += 1
        return _healthy(1000), canary


def _run(target, strategy="canary", steps=(10, 50, 100), clock=None, **window):
    spec = {"seconds": 0, "min_requests": 200, "max_seconds": 10, "check_interval_s": 1, **window}
    clock = clock or FakeClock()
    logs: list[str] = []
    rollout = Rollout(
        target,
        strategy=strategy,
        steps=steps,
        window=WindowSpec(**spec),
        clock=clock,
        sleep=clock.sleep,
        log=logs.append,
    )
    return rollout.run(Candidate("/models/2", "2")), logs


def test_canary_moves_through_every_step_then_promotes():
    target = PlannedTarget()
    result, logs = _run(target)
    assert result.outcome == "promoted" and result.reason == "all 3 steps passed"
    assert result.steps == [10, 50, 100]
    assert [c for c in target.calls if c.startswith(("traffic", "promote", "rollback"))] == [
        "traffic 10",
        "traffic 50",
        "traffic 100",
        "promote",
    ]
    assert [(w.phase, w.percent, w.decision) for w in result.windows] == [
        ("canary", 10, "promote-step"),
        ("canary", 50, "promote-step"),
        ("canary", 100, "promote-step"),
    ]
    assert result.canary_requests == 900 and result.canary_errors == 0
    assert result.shadow_requests == 0
    assert "rollout canary: promoted" in logs[-1]


def test_a_canary_failing_at_a_later_step_rolls_back_there():
    target = PlannedTarget()
    result, _ = _run(target, steps=(10, 50))
    assert result.outcome == "promoted"
    bad = PlannedTarget()
    bad.set_canary_traffic = lambda p: (
        bad.calls.append(f"traffic {p}"),
        setattr(bad, "reads", {"canary": [_window(300, 60 if p == 50 else 0)]}),
    )
    result, _ = _run(bad, steps=(10, 50, 100))
    assert result.outcome == "rolled_back" and result.reason.startswith("canary at 50%: error")
    assert result.steps == [10, 50]
    assert "promote" not in bad.calls and bad.calls[-1] == "rollback"


def test_a_window_waits_for_its_requests_then_decides():
    """Too few canary requests: the window goes on (checked every interval) until enough came."""
    target = PlannedTarget({"canary": [_healthy(50), _healthy(150), _healthy(250)]})
    clock = FakeClock()
    result, _ = _run(target, steps=(100,), clock=clock, check_interval_s=2)
    assert result.outcome == "promoted"
    assert target.read_count == 3 and result.windows[0].seconds == 6
    assert result.canary_requests == 250


def test_a_window_is_open_at_least_its_seconds():
    target = PlannedTarget()
    result, _ = _run(target, steps=(100,), seconds=5, check_interval_s=1)
    assert result.outcome == "promoted" and target.read_count == 5


def test_a_window_that_never_gathers_its_requests_fails_at_max_seconds():
    target = PlannedTarget({"canary": [_healthy(20)]})
    result, _ = _run(target, steps=(10, 100), max_seconds=4, check_interval_s=1)
    assert result.outcome == "rolled_back"
    assert "window not complete after max_seconds 4: 20 canary requests (need 200)" in (
        result.reason
    )
    assert result.windows[0].decision == "rollback" and result.windows[0].seconds == 4
    assert "traffic 100" not in target.calls


def test_blue_green_shadows_then_switches_then_promotes():
    target = PlannedTarget({"shadow": [_healthy(400)], "switched": [_healthy(300)]}, shadow=True)
    result, _ = _run(target, strategy="blue_green")
    assert result.outcome == "promoted"
    assert result.reason == "green passed its shadow and live windows"
    moves = [c for c in target.calls if not c.startswith(("open", "start"))]
    assert moves == ["shadow True", "shadow False", "traffic 100", "promote"]
    assert [(w.phase, w.percent) for w in result.windows] == [("shadow", 0), ("switched", 100)]
    # mirrored requests no client saw are counted apart from the live ones
    assert (result.shadow_requests, result.canary_requests) == (400, 300)
    assert result.steps == [100]


def test_a_bad_green_is_caught_in_its_shadow_before_any_client_sees_it():
    target = PlannedTarget({"shadow": [_window(300, 90)]}, shadow=True)
    result, _ = _run(target, strategy="blue_green")
    assert result.outcome == "rolled_back" and result.reason.startswith("shadow window: error")
    assert "traffic 100" not in target.calls and result.steps == []
    assert target.calls[-4:] == ["shadow True", "open", "shadow False", "rollback"]
    assert result.canary_requests == 0 and result.shadow_requests == 300


def test_blue_green_without_mirroring_switches_then_switches_back_on_failure():
    target = PlannedTarget({"switched": [_window(300, 30)]}, shadow=False)
    result, _ = _run(target, strategy="blue_green")
    assert result.outcome == "rolled_back" and result.reason.startswith("after the switch: error")
    assert not any(c.startswith("shadow") for c in target.calls)
    assert target.calls[-1] == "rollback" and result.canary_errors == 30
    ok = PlannedTarget(shadow=False)
    result, _ = _run(ok, strategy="blue_green")
    assert result.outcome == "promoted" and result.reason == "green passed its window"


def test_direct_switches_and_promotes_without_analysis():
    target = PlannedTarget({"canary": [_window(300, 300)]})  # it would fail any analysis
    result, _ = _run(target, strategy="direct")
    assert result.outcome == "promoted" and result.windows == []
    assert target.calls == ["start 2", "traffic 100", "promote"]
    assert result.to_dict()["steps"] == [100]


def test_a_candidate_that_never_starts_is_rolled_back_without_traffic():
    target = PlannedTarget(start_error=CandidateFailed("exit code 3"))
    result, _ = _run(target)
    assert result.outcome == "rolled_back"
    assert result.reason == "candidate 2 failed to start: exit code 3"
    assert target.calls == ["start 2", "rollback"] and result.windows == []


def test_a_rollback_that_fails_after_a_failed_start_is_logged_not_raised():
    target = PlannedTarget(start_error=CandidateFailed("oom"), rollback_error=OSError("gone"))
    result, logs = _run(target)
    assert result.outcome == "rolled_back" and "oom" in result.reason
    assert any("rollback after a failure failed too: gone" in m for m in logs)


def test_any_other_start_error_propagates():
    """Only CandidateFailed is a candidate's fault: anything else is the deploy's own error."""
    target = PlannedTarget(start_error=RuntimeError("api down"))
    with pytest.raises(RuntimeError, match="api down"):
        _run(target)


def test_an_error_mid_rollout_rolls_back_then_raises():
    target = PlannedTarget()

    def broken(percent: int) -> None:
        target.calls.append(f"traffic {percent}")
        if percent == 50:
            raise ConnectionError("router gone")

    target.set_canary_traffic = broken
    with pytest.raises(ConnectionError, match="router gone"):
        _run(target)
    assert target.calls[-1] == "rollback" and "promote" not in target.calls


def test_the_100_percent_step_is_compared_with_stables_earlier_scores_and_latencies():
    """At 100 % stable answers nothing: its scores since the rollout began and its latest window
    with enough latencies stand in (else the step could not be analysed)."""
    slow = Window()
    for _ in range(300):
        slow.record(40.0, False, [0.5])  # far over max_p99_ms, as slow as stable was

    class Target(PlannedTarget):
        def read_window(self):
            _, canary = super().read_window()
            if self.calls[-2] == "traffic 100":  # stable has no traffic of its own
                return Window(), canary
            stable = Window()
            for _ in range(MIN_LATENCY_SAMPLES):
                stable.record(40.0, False, [0.5])
            return stable, canary

    target = Target({"canary": [slow]})
    result, _ = _run(target, steps=(50, 100))
    assert result.outcome == "promoted", result.reason
    last = result.windows[-1]
    assert last.metrics["stable_p50_ms"] == 40.0 and "psi" in last.metrics  # scores compared


def test_result_to_dict_is_plain_data():
    result = RolloutResult("canary", "promoted", "ok", steps=[10])
    assert result.to_dict() == {
        "strategy": "canary",
        "outcome": "promoted",
        "reason": "ok",
        "steps": [10],
        "windows": [],
        "canary_requests": 0,
        "canary_errors": 0,
        "shadow_requests": 0,
        "seconds": 0.0,
    }
