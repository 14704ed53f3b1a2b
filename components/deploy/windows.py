"""What the router (or a metrics source) saw of one upstream during one analysis window."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Window:
    """Requests, errors (5xx and connection errors), latencies and the scores one upstream
    answered. Mutable while a window is open; `freeze()` gives the immutable view analysis uses."""

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, latency_ms: float, error: bool, scores: list[float] | None = None) -> None:
        self.requests += 1
        self.errors += int(error)
        self.latencies_ms.append(latency_ms)
        if scores:
            self.scores.extend(scores)

    def merged(self, other: Window) -> Window:
        return Window(
            self.requests + other.requests,
            self.errors + other.errors,
            [*self.latencies_ms, *other.latencies_ms],
            [*self.scores, *other.scores],
            self.seconds + other.seconds,
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

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
            "p50_ms": round(self.percentile_ms(50), 3),
            "p99_ms": round(self.p99_ms, 3),
            "scores": len(self.scores),
            "mean_score": round(mean, 4),
            "seconds": round(self.seconds, 3),
        }
