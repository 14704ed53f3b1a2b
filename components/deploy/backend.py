"""The one seam between the rollout controller and the model server: a `Backend` starts a server
for a model and stops it. `ServeBackend` wires it to `components.serve.launch.start_server`
(imported on first use)."""

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
    """Model servers as subprocesses on 127.0.0.1 through `start_server`.

    `timeout_s`: how long a server may take to become ready (importing KServe alone takes 5-10 s
    on a loaded 2-core machine); `stop_timeout_s`: SIGTERM lets uvicorn drain, SIGKILL after it.
    A stopped server's output stays readable in `logs[url]` (why a canary failed). Use it as a
    context manager, or call `close()`, so that no server outlives a failed run."""

    def __init__(self, timeout_s: float = 60.0, stop_timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._running: dict[str, Any] = {}
        self.logs: dict[str, str] = {}

    @property
    def running(self) -> list[str]:
        """Base URLs of the servers started and not yet stopped."""
        return list(self._running)

    def start(self, model_dir: str, name: str, fault: str | None = None) -> str:
        from components.serve.launch import start_server

        server = start_server(model_dir, name, fault=fault, timeout=self.timeout_s)
        url = server.url.rstrip("/")
        self._running[url] = server
        return url

    def stop(self, url: str) -> None:
        server = self._running.pop(url.rstrip("/"), None)
        if server is not None:
            server.stop(self.stop_timeout_s)
            self.logs[server.url.rstrip("/")] = server.log()

    def close(self) -> None:
        """Stop every server still running."""
        for url in self.running:
            self.stop(url)

    def __enter__(self) -> ServeBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
