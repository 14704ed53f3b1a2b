"""Run the model server: our own uvicorn on one socket (KServe's ModelServer binds 0.0.0.0:8080 and
[::]:8081 for gRPC, so two local servers collide). httptools + uvloop when installed,
no access log, one worker, gRPC off.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from components.serve.faults import Faults
from components.serve.model_source import LoadedModel, load_model_uri

if TYPE_CHECKING:  # pragma: no cover
    from components.serve.tabular_model import TabularModel

log = logging.getLogger("mlpipe.serve")

SWITCH_INTERVAL_S = 0.001


@dataclass
class ServeOptions:
    model: str  # a model dir or models:/<name>@<alias> | models:/<name>/<version>
    name: str
    host: str = "127.0.0.1"
    port: int = 8080
    request_log: str | None = None
    request_log_max_bytes: int = 100 * 1024 * 1024  # per file; rotated past it (request_log.py)
    request_log_backups: int = 5  # rotated files kept
    max_body_bytes: int = 32 * 1024 * 1024  # every route's request body (413 past it)
    faults: Faults = field(default_factory=Faults)
    fast_routes: bool = True
    max_batch: int = 10_000
    port_file: str | None = None  # written once the socket is bound (launch.py waits on it)
    follow_s: float = 0.0  # > 0 with a models:/<name>@<alias> model: follow the alias (follow.py)
    on_bound: Callable[[TabularModel, int], None] | None = None  # e.g. print the URLs
    model_sha256: str | None = None  # a model dir's expected manifest digest (model_integrity)


def _loop_and_http() -> tuple[str, str]:
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    return loop, http


class _Server:
    """uvicorn.Server that runs `on_exit` after a graceful shutdown, before uvicorn re-raises the
    SIGTERM/SIGINT it caught (which ends the process: a `finally` after run() never runs)."""

    def __new__(cls, config, on_exit=None):
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                with super().capture_signals():
                    try:
                        yield
                    finally:
                        if on_exit is not None:
                            on_exit()

        return Server(config)


def load(options: ServeOptions, download_dir: str | None = None) -> TabularModel:
    """The TabularModel, loaded and ready."""
    # checked before unpickling: the registry's manifest tag, else the dir's manifest
    loaded: LoadedModel = load_model_uri(
        options.model, download_dir, expected_sha256=options.model_sha256
    )
    from components.serve.tabular_model import TabularModel  # KServe: after a bad source failed

    model = TabularModel(options.name, loaded, options.faults, options.max_batch)
    model.load()
    return model


def serve(options: ServeOptions, model: TabularModel | None = None) -> None:
    """Load the model (unless given), bind, serve until SIGINT/SIGTERM; flush the request log at
    the end."""
    model = model or load(options)  # first: a bad model source fails before KServe's import
    import uvicorn

    from components.serve.app import ServingApp
    from components.serve.request_log import RequestLog

    request_log = (
        RequestLog(
            options.request_log,
            model.features,
            max_bytes=options.request_log_max_bytes,
            backups=options.request_log_backups,
        )
        if options.request_log
        else None
    )
    app = ServingApp(
        model,
        fast_routes=options.fast_routes,
        request_log=request_log,
        faults=options.faults,
        max_body_bytes=options.max_body_bytes,
    )
    sock = socket.socket(socket.AF_INET6 if ":" in options.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((options.host, options.port))
    sock.listen(2048)  # connections queue from now on (readiness probes are not refused)
    port = sock.getsockname()[1]
    # scoring threads hold the GIL in Python-level validation; a 1 ms switch interval (default
    # 5 ms) hands it back to the event loop sooner, so probes are not queued behind big batches
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    loop, http = _loop_and_http()
    config = uvicorn.Config(
        app,
        loop=loop,
        http=http,
        access_log=False,
        log_config=None,
        log_level="warning",
        lifespan="off",
        workers=1,
        timeout_keep_alive=65,
    )
    follower = None
    if options.follow_s > 0 and "@" in options.model:
        from components.serve.follow import AliasFollower

        name = options.model.split("@", 1)[0]
        follower = AliasFollower(
            options.model,
            lambda: app.model.version,
            lambda version: load(replace(options, model=f"{name}/{version}")),
            app.swap,
            options.follow_s,
        ).start()

    def on_exit() -> None:
        if follower is not None:
            follower.stop()
        if request_log is not None:
            request_log.close()

    server = _Server(config, on_exit=on_exit)
    log.warning(
        "serving %s (version %s, %s scorer%s, faults %s) on http://%s:%d [%s, %s]",
        options.name,
        model.version,
        model.scorer.kind,
        "" if options.fast_routes else ", KServe routes only",
        options.faults.describe(),
        options.host,
        port,
        loop,
        http,
    )
    if options.on_bound is not None:
        options.on_bound(model, port)
    if options.port_file:
        tmp = Path(options.port_file + ".tmp")
        tmp.write_text(str(port))
        tmp.replace(options.port_file)
    try:
        server.run(sockets=[sock])
    finally:
        if request_log is not None:
            request_log.close()
