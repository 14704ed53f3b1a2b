"""Crash injection: the process dies at the n-th write, whether the write goes to MLflow (the
registry) or to the Kubernetes API (an InferenceService). One `Crash` counts the writes of every
client wrapped with it, so kill point n is the n-th write in the order the process makes them.
After the kill the process is dead: every later write through it dies too (a `finally` or an
`except BaseException` cleanup of the dying process reaches nothing)."""

from __future__ import annotations

from typing import Any

MLFLOW_WRITES = ("set_", "delete_", "create_", "update_")
K8S_WRITES = ("create", "patch", "patch_status", "replace", "delete")


class Killed(BaseException):
    """The process dies here (BaseException, like SystemExit: no `except Exception` stops it)."""


class Crash:
    """Counts writes; the `at`-th one (1-based; 0: none) and every later one raise Killed."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.writes: list[tuple[str, Any]] = []

    @property
    def dead(self) -> bool:
        return 0 < self.at <= len(self.writes)

    def write(self, what: str, args: Any) -> None:
        if self.dead:
            raise Killed(f"{what} after the crash")
        self.writes.append((what, args))
        if self.dead:
            raise Killed(what)


class CrashingClient:
    """An MlflowClient whose `crash_at`-th write call dies before it reaches the store (an int,
    or a `Crash` shared with other clients)."""

    def __init__(self, crash_at: int | Crash, inner: Any = None) -> None:
        import mlflow

        self.crash = crash_at if isinstance(crash_at, Crash) else Crash(crash_at)
        self.inner = inner if inner is not None else mlflow.MlflowClient()

    @property
    def writes(self) -> list[tuple[str, Any]]:
        return self.crash.writes

    def __getattr__(self, attr):
        method = getattr(self.inner, attr)
        if not attr.startswith(MLFLOW_WRITES):
            return method

        def write(*args, **kwargs):
            self.crash.write(attr, args[1:3])
            return method(*args, **kwargs)

        return write


class CrashingAdapter:
    """A Kubernetes adapter (the stand-in) whose writes count on `crash`: the one it dies at
    never reaches the API server. Reads pass through."""

    def __init__(self, inner: Any, crash: Crash) -> None:
        self.inner, self.crash = inner, crash

    def __getattr__(self, attr):
        method = getattr(self.inner, attr)
        if attr not in K8S_WRITES:
            return method

        def write(*args, **kwargs):
            self.crash.write(f"k8s {attr}", args[3:5])
            return method(*args, **kwargs)

        return write
