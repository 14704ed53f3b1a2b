"""The local target: model servers started through a `Backend`, behind the weighted `Router`.

Every switch happens in the router first; a replaced server is stopped only after the router has
drained it (nothing in flight), so no client request fails because of a switch.

Mirroring serves two windows: the blue-green shadow window (the candidate gets copies) and the
100 % step (stable gets copies, so the canary's latency and scores are compared with stable's in
the same period; stable's answers are discarded and cost no client anything).

Before any traffic the candidate must score the last requests stable answered (`preflight`): a
candidate with another feature set is refused there. While it takes canary traffic the router
pairs its requests with stable (each canary row scored by both) for the paired checks."""

from __future__ import annotations

import httpx

from components.deploy.backend import Backend
from components.deploy.preflight import Incompatible, probe
from components.deploy.rollout import Candidate, CandidateFailed
from components.deploy.router import Router
from components.deploy.windows import Window


class LocalTarget:
    supports_shadow = True

    def __init__(
        self,
        backend: Backend,
        router: Router,
        name: str,
        *,
        drain_timeout_s: float = 30.0,
        preflight: bool = True,
        pairing: bool = True,
    ) -> None:
        self.backend = backend
        self.preflight = preflight  # probe the candidate with stable's requests before traffic
        self.pairing = pairing
        self.router = router
        self.name = name
        self.drain_timeout_s = drain_timeout_s
        self._candidate: Candidate | None = None
        self._candidate_url: str | None = None
        self._mirror: str | None = None  # who gets copies: the candidate (shadow) or stable

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
        if self.preflight:
            try:
                probe(url, self.router.answered_requests())
            except (Incompatible, OSError, httpx.HTTPError) as exc:
                raise CandidateFailed(f"refused before any traffic: {exc}") from exc

    def set_canary_traffic(self, percent: int) -> None:
        if self._candidate_url is None:
            raise CandidateFailed("no candidate started")
        if self.router.routes.canary is None:
            self.router.set_pairing(self.pairing)
            self.router.set_canary(
                self._candidate_url, label=self._candidate.version, weight=percent
            )
        else:
            self.router.set_weight(percent)
        if percent == 100 and self._mirror is None:
            # stable gets no traffic now, so nothing to compare the canary's latency with in the
            # same period (load drifts within seconds): mirror the requests to stable instead
            stable = self.router.routes.stable
            self.router.set_mirror(stable.url, label=f"{stable.label}-reference")
            self._mirror = "stable"

    def set_shadow(self, on: bool) -> None:
        if on:
            if self._candidate_url is None:
                raise CandidateFailed("no candidate started")
            self.router.set_mirror(self._candidate_url, label=f"{self._candidate.version}-shadow")
            self._mirror = "candidate"
        else:
            self._stop_mirror()

    def _stop_mirror(self) -> None:
        old = self.router.set_mirror(None)
        if old is not None:
            self.router.drain(old, self.drain_timeout_s)
        self._mirror = None

    def promote(self) -> None:
        if self.router.routes.canary is None:
            self.set_canary_traffic(100)
        self._stop_mirror()
        old = self.router.promote()
        self.router.drain(old, self.drain_timeout_s)
        self.backend.stop(old.url)
        self._candidate = self._candidate_url = None

    def rollback(self) -> Window | None:
        routes = self.router.routes
        drained = None
        if routes.mirror is not None:
            self._stop_mirror()
        if routes.canary is not None:
            old = self.router.rollback()
            self.router.drain(old, self.drain_timeout_s)
            drained = old.window.merged(Window())  # nothing in flight: its final count
        if self._candidate_url is not None:
            self.backend.stop(self._candidate_url)
        self._candidate = self._candidate_url = None
        return drained

    def read_pairs(self) -> list[tuple[float, float]]:
        """(stable, candidate) scores of the canary rows both answered (since traffic began)."""
        return self.router.pairs()

    def open_window(self) -> None:
        self.router.take_windows(reset=True)

    def read_window(self) -> tuple[Window, Window]:
        windows = self.router.take_windows(reset=False)
        if self._mirror == "candidate":  # shadow window: clients only see stable
            return windows["stable"], windows.get("mirror", Window())
        if self._mirror == "stable":  # 100 % step: stable answers copies, in the same period
            return windows.get("mirror", Window()), windows.get("canary", Window())
        return windows["stable"], windows.get("canary", Window())
