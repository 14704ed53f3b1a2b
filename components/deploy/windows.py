"""What the router (or a metrics source) saw of one upstream during one analysis window."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Window:
    """Requests, errors (5xx and connection errors), client errors (4xx), answered requests (2xx
    with scores), latencies and the scores one upstream answered. Mutable while a window is
    open."""

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    client_errors: int = 0
    # None: the source cannot tell (a metrics source without response bodies); every request that
    # is neither an error nor a client error then counts as answered
    answered: int | None = None

    def record(
        self,
        latency_ms: float,
        error: bool,
        scores: list[float] | None = None,
        *,
        client_error: bool = False,
    ) -> None:
        self.requests += 1
        self.errors += int(error)
        self.client_errors += int(client_error)
        if not error and not client_error and scores:
            self.answered = (self.answered or 0) + 1
        elif self.answered is None:
            self.answered = 0
        self.latencies_ms.append(latency_ms)
        if scores:
            self.scores.extend(scores)

    def merged(self, other: Window) -> Window:
        answered = (
            None
            if self.answered is None and other.answered is None
            else self.answered_requests + other.answered_requests
        )
        return Window(
            self.requests + other.requests,
            self.errors + other.errors,
            [*self.latencies_ms, *other.latencies_ms],
            [*self.scores, *other.scores],
            self.seconds + other.seconds,
            self.client_errors + other.client_errors,
            answered,
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def client_error_rate(self) -> float:
        return self.client_errors / self.requests if self.requests else 0.0

    @property
    def answered_requests(self) -> int:
        if self.answered is not None:
            return self.answered
        return self.requests - self.errors - self.client_errors

    @property
    def answered_share(self) -> float:
        """Share of requests answered 2xx with scores (1.0 without requests)."""
        return self.answered_requests / self.requests if self.requests else 1.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the latencies (0.0 without any)."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(q / 100 * len(ordered)))
        return ordered[rank - 1]

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    def summary(self) -> dict[str, float | int]:
        """The figures a report shows (no raw samples)."""
        mean = sum(self.scores) / len(self.scores) if self.scores else float("nan")
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "client_errors": self.client_errors,
            "answered": self.answered_requests,
            "p50_ms": round(self.percentile_ms(50), 3),
            "p99_ms": round(self.p99_ms, 3),
            "scores": len(self.scores),
            "mean_score": round(mean, 4),
            "seconds": round(self.seconds, 3),
        }
