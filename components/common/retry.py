"""The one retry policy (tenacity) of every call that may meet a passing failure: the ingest
sources' whole reads, the REST API's pages, the KFP API's reads and the alert webhook.

`attempts` tries in all; between two, `backoff_s` doubling each time, or the seconds of the
server's `Retry-After`, both capped at MAX_WAIT_S. Retried: an exception of the caller's `on` types
unless its `status` is an HTTP status outside RETRY_STATUSES, and a response whose `status_code`
is in RETRY_STATUSES (a bad request or a refused credential stays so: never retried). When the
attempts run out, the call gives what its last attempt gave: that response, or that exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import tenacity

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_WAIT_S = 30.0


def retrying(
    attempts: int,
    backoff_s: float,
    on: tuple[type[BaseException], ...],
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """Call `retrying(...)(fn, *args)`; its `.statistics["attempt_number"]` counts the tries."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(1, attempts)),
        wait=_wait(backoff_s),
        retry=tenacity.retry_if_exception(
            lambda e: isinstance(e, on) and getattr(e, "status", None) in (None, *RETRY_STATUSES)
        )
        | tenacity.retry_if_result(lambda r: getattr(r, "status_code", None) in RETRY_STATUSES),
        sleep=sleep,
        retry_error_callback=lambda state: state.outcome.result(),
    )


def _wait(backoff_s: float) -> Callable[[tenacity.RetryCallState], float]:
    doubling = tenacity.wait_exponential(multiplier=backoff_s, max=MAX_WAIT_S)

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        assert outcome is not None
        said = _retry_after(outcome.exception() if outcome.failed else outcome.result())
        return doubling(state) if said is None else said

    return wait


def _retry_after(answer: Any) -> float | None:
    """The `Retry-After` seconds of a response, or of an error raised from one."""
    for source in (answer, getattr(answer, "__cause__", None)):
        value = (getattr(source, "headers", None) or {}).get("Retry-After")
        if value:
            try:
                return min(MAX_WAIT_S, max(0.0, float(value)))
            except ValueError:
                return None  # an HTTP date: the doubling wait
    return None
