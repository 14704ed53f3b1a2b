"""The local target: model servers started through a `Backend`, behind the weighted `Router`.

Every switch happens in the router first; a replaced server is stopped only after the router has
drained it (nothing in flight), so no client request fails because of a switch."""

from __future__ import annotations

from components.deploy.backend import Backend
from components.deploy.rollout import Candidate, CandidateFailed
from components.deploy.router import Router
from components.deploy.windows import Window


class LocalTarget:
    supports_shadow = True

    def __init__(
        self, backend: Backend, router: Router, name: str, *, drain_timeout_s: float = 30.0
    ) -> None:
        self.backend = backend
        self.router = router
        self.name = name
        self.drain_timeout_s = drain_timeout_s
        self._candidate: Candidate | None = None
        self._candidate_url: str | None = None
        self._shadow = False

    @classmethod
    def serve(
        cls, backend: Backend, model_dir: str, name: str, *, version: str = "stable", **kwargs
    ) -> LocalTarget:
        """Start the stable server and a router in front of it."""
        url = backend.start(model_dir, name)
        try:
            router = Router(url, stable_label=version).start()
        except Exception:
            backend.stop(url)
            raise
        return cls(backend, router, name, **kwargs)

    @property
    def url(self) -> str:
        """Where clients send requests."""
        return self.router.url

    def stop(self) -> None:
        """Stop the router and every server behind it."""
        routes = self.router.routes
        self.router.stop()
        for up in (routes.stable, routes.canary, routes.mirror):
            if up is not None:
                self.backend.stop(up.url)
        if self._candidate_url:
            self.backend.stop(self._candidate_url)

    def __enter__(self) -> LocalTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ Target

    def start_candidate(self, candidate: Candidate) -> None:
        if self._candidate_url is not None:
            raise CandidateFailed(f"a candidate ({self._candidate.version}) is already running")
        try:
            url = self.backend.start(candidate.uri, self.name, candidate.fault)
        except Exception as exc:
            raise CandidateFailed(f"{type(exc).__name__}: {exc}") from exc
        self._candidate, self._candidate_url = candidate, url

    def set_canary_traffic(self, percent: int) -> None:
        if self._candidate_url is None:
            raise CandidateFailed("no candidate started")
        if self.router.routes.canary is None:
            self.router.set_canary(
                self._candidate_url, label=self._candidate.version, weight=percent
            )
        else:
            self.router.set_weight(percent)

    def set_shadow(self, on: bool) -> None:
        if on:
            if self._candidate_url is None:
                raise CandidateFailed("no candidate started")
            self.router.set_mirror(self._candidate_url, label=f"{self._candidate.version}-shadow")
        else:
            old = self.router.set_mirror(None)
            if old is not None:
                self.router.drain(old, self.drain_timeout_s)
        self._shadow = on

    def promote(self) -> None:
        if self.router.routes.canary is None:
            self.set_canary_traffic(100)
        old = self.router.promote()
        self.router.drain(old, self.drain_timeout_s)
        self.backend.stop(old.url)
        self._candidate = self._candidate_url = None

    def rollback(self) -> None:
        routes = self.router.routes
        if routes.mirror is not None:
            self.set_shadow(False)
        if routes.canary is not None:
            old = self.router.rollback()
            self.router.drain(old, self.drain_timeout_s)
        if self._candidate_url is not None:
            self.backend.stop(self._candidate_url)
        self._candidate = self._candidate_url = None

    def open_window(self) -> None:
        self.router.take_windows(reset=True)

    def read_window(self) -> tuple[Window, Window]:
        windows = self.router.take_windows(reset=False)
        candidate = windows.get("mirror" if self._shadow else "canary", Window())
        return windows["stable"], candidate
