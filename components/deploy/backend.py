"""The one seam between the rollout controller and the model server: a `Backend` starts a server
for a model and stops it. `ServeBackend` wires it to `components.serve.launch.start_server`
(imported when first used: the serving code lives on another branch until it is merged)."""

from __future__ import annotations

from typing import Any, Protocol


class Backend(Protocol):
    def start(self, model_dir: str, name: str, fault: str | None = None) -> str:
        """Start a server for the model in `model_dir` served as `name`; return its base URL
        once it answers readiness. `fault`: the server's fault switch (tests, demos)."""
        ...

    def stop(self, url: str) -> None:
        """Stop the server started at `url` (idempotent)."""
        ...


class ServeBackend:
    """Model servers as subprocesses on 127.0.0.1 through `start_server`."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self._running: dict[str, Any] = {}

    def start(self, model_dir: str, name: str, fault: str | None = None) -> str:
        from components.serve.launch import start_server  # the serving module, once merged

        server = start_server(model_dir, name, fault=fault, timeout=self.timeout_s)
        self._running[server.url.rstrip("/")] = server
        return server.url.rstrip("/")

    def stop(self, url: str) -> None:
        server = self._running.pop(url.rstrip("/"), None)
        if server is not None:
            server.stop()
