"""What a rolled-back rollout reports the candidate answered, against a scripted target: the
requests it answered (and failed) after the decision, before traffic left it, count too — the
clients saw them. Deterministic: no servers, no clock."""

from __future__ import annotations

from components.deploy.analysis import Policy
from components.deploy.rollout import Candidate, Rollout, WindowSpec
from components.deploy.windows import Window


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
