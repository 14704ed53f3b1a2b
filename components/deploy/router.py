"""A weighted HTTP router on 127.0.0.1 in front of a stable and a canary model server.

An ASGI app under uvicorn (in a background thread with its own event loop) forwards every request
with httpx.AsyncClient (one keep-alive pool per upstream) and records, per upstream, a `Window`:
requests, errors (5xx and connection errors), client errors (4xx), answered requests (2xx with
scores), upstream latency and the scores it proxied
(`predictions` of a V1 response, the `predictions` output tensor of a V2 one).

Traffic split: deterministic. Request i of a routing table goes to the canary when
floor((i + 1) * w / 100) > floor(i * w / 100), so every 100 consecutive requests hold exactly w
canary requests, spread evenly. With a mirror, every request is also sent to the mirror in the
background; its answer is recorded and discarded (shadow traffic for blue-green).

Zero failed requests on a switch: the routing table is one immutable object replaced on the event
loop; a request picks its upstream and counts itself in flight in one step with no await between,
so it finishes on the upstream it started on. `drain()` waits until a replaced upstream has nothing
in flight; only then may its server be stopped.

Errors the canary returns reach the client as they are (and count as canary errors): the router
never retries on the other upstream, or a bad canary would be hidden from the analysis.

Control is in-process (`set_canary`, `set_weight`, `set_mirror`, `promote`, `rollback`,
`take_windows`, `drain`); `GET /-/router` answers the current table and counts.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import httpx
import uvicorn

from components.deploy.windows import Window

T = TypeVar("T")

# never forwarded: they describe one hop, not the request
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class RouterError(RuntimeError):
    """A control call that does not fit the router's state (e.g. promote without a canary)."""


@dataclass(eq=False)
class Upstream:
    """One model server behind the router."""

    label: str
    url: str
    in_flight: int = 0
    window: Window = field(default_factory=Window)
    window_started: float = field(default_factory=time.monotonic)
    client: httpx.AsyncClient | None = None
    # (stable score, this upstream's score) of rows both answered, while pairing (a canary's)
    pairs: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Routes:
    """The routing table; replaced as a whole, never changed in place."""

    stable: Upstream
    canary: Upstream | None = None
    weight: int = 0  # percent of requests to the canary
    mirror: Upstream | None = None
    pair: bool = False  # also send each canary request to stable; record both scores


def scores_of(body: bytes) -> list[float]:
    """The scores of a V1 (`predictions`) or V2 (output tensor `predictions`) response."""
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    values: Any = doc.get("predictions")
    if values is None:
        for out in doc.get("outputs") or []:
            if isinstance(out, dict) and out.get("name") == "predictions":
                values = out.get("data")
                break
    if not isinstance(values, list):
        return []
    flat: list[float] = []
    for v in values:
        if isinstance(v, list):  # [[p], ...] or [[p0, p1], ...]: P(label=1) is the last
            v = v[-1] if v else None
        if isinstance(v, int | float) and not isinstance(v, bool):
            flat.append(float(v))
    return flat


class Router:
    """The router. `start()` binds 127.0.0.1 (port 0: any free one) and returns; `url` is where
    clients send requests. Control calls are thread-safe: each runs on the router's loop."""

    def __init__(
        self,
        stable_url: str,
        *,
        stable_label: str = "stable",
        port: int = 0,
        timeout_s: float = 30.0,
        max_connections: int = 128,
        warm_path: str | None = "/v2/health/ready",
    ) -> None:
        self._warm_path = warm_path
        self._counter = 0  # requests routed under the current table
        self._port = port
        self._timeout = timeout_s
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._routes = Routes(self._upstream(stable_label, stable_url))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        # the last requests stable answered 2xx: a candidate must answer them too
        self._answered: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=20)
        self.url = ""

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout_s: float = 10.0) -> Router:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets of that proto, and
        # without it the response's header and body writes stall 40 ms on delayed ACKs
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            interface="asgi3",
            timeout_keep_alive=30,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        ready = threading.Event()

        def run() -> None:
            factory = config.get_loop_factory()  # uvloop when installed, as uvicorn.run does
            loop = factory() if factory is not None else asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            ready.set()
            try:
                # the resolver's executor thread starts on first use: start it now, not mid-request
                loop.run_until_complete(loop.getaddrinfo("127.0.0.1", 80))
                loop.run_until_complete(self._server.serve(sockets=[sock]))
                loop.run_until_complete(self._close_clients())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="router", daemon=True)
        self._thread.start()
        ready.wait(timeout_s)
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RouterError(f"the router did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Router:
        return self.start() if not self.url else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_loop(self, fn: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Run `fn` on the router's loop (between requests, never during one's routing step)."""
        if self._loop is None:
            return fn()
        future: Future[T] = Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return future.result(timeout_s)

    # ------------------------------------------------------------ control

    @property
    def routes(self) -> Routes:
        return self._routes

    def _swap(self, routes: Routes) -> None:
        self._routes = routes
        self._counter = 0

    def set_canary(self, url: str, *, label: str = "canary", weight: int = 0) -> Upstream:
        """Put a canary behind the router (replacing none: roll back or promote first)."""
        up = self._upstream(label, url)
        self._warm(up)

        def change() -> Upstream:
            if self._routes.canary is not None:
                raise RouterError(f"a canary ({self._routes.canary.label}) is already routed")
            self._swap(replace(self._routes, canary=up, weight=_percent(weight)))
            return up

        return self._on_loop(change)

    def set_weight(self, percent: int) -> None:
        def change() -> None:
            if self._routes.canary is None and percent:
                raise RouterError("no canary to send traffic to")
            self._swap(replace(self._routes, weight=_percent(percent)))

        self._on_loop(change)

    def set_mirror(self, url: str | None, *, label: str = "shadow") -> Upstream | None:
        """Copy every request to `url` (None: stop mirroring; returns the old mirror to drain)."""

        new = self._upstream(label, url) if url else None
        if new is not None:
            self._warm(new)

        def change() -> Upstream | None:
            old = self._routes.mirror
            self._swap(replace(self._routes, mirror=new))
            return new if url else old

        return self._on_loop(change)

    def set_pairing(self, on: bool) -> None:
        """Send every canary request to stable too (its answer discarded, not counted in stable's
        window) and keep both scores of each row: paired measures compare the two versions on
        the same rows. When stable already gets a mirrored copy, that copy is used."""

        def change() -> None:
            self._swap(replace(self._routes, pair=on))

        self._on_loop(change)

    def answered_requests(self) -> list[tuple[str, bytes]]:
        """(path, body) of the last POSTs stable answered 2xx (clients' requests, as sent)."""
        return self._on_loop(lambda: list(self._answered))

    def pairs(self) -> list[tuple[float, float]]:
        """(stable, canary) scores of the rows both answered since the canary was set."""
        return self._on_loop(lambda: list(self._routes.canary.pairs) if self._routes.canary else [])

    def promote(self) -> Upstream:
        """The canary becomes stable (all traffic); returns the old stable upstream to drain."""

        def change() -> Upstream:
            routes = self._routes
            if routes.canary is None:
                raise RouterError("no canary to promote")
            self._swap(Routes(routes.canary, None, 0, routes.mirror, routes.pair))
            return routes.stable

        return self._on_loop(change)

    def rollback(self) -> Upstream:
        """Remove the canary (stable takes all traffic); returns it to drain."""

        def change() -> Upstream:
            routes = self._routes
            if routes.canary is None:
                raise RouterError("no canary to roll back")
            self._swap(Routes(routes.stable, None, 0, routes.mirror, routes.pair))
            return routes.canary

        return self._on_loop(change)

    def take_windows(self, reset: bool = True) -> dict[str, Window]:
        """The window of each routed upstream by role (stable, canary, mirror) since the last
        reset; `reset` opens new ones."""

        def take() -> dict[str, Window]:
            now = time.monotonic()
            out = {}
            routes = self._routes
            for role in ("stable", "canary", "mirror"):
                up = getattr(routes, role)
                if up is None:
                    continue
                win = up.window if reset else up.window.merged(Window())
                win.seconds = now - up.window_started
                out[role] = win
                if reset:
                    up.window, up.window_started = Window(), now
            return out

        return self._on_loop(take)

    def drain(self, upstream: Upstream, timeout_s: float = 30.0) -> bool:
        """Wait until `upstream` (no longer routed) has nothing in flight; close its pool.
        False if requests were still in flight after `timeout_s`."""
        routes = self._routes
        if upstream in (routes.stable, routes.canary, routes.mirror):
            raise RouterError(f"{upstream.label} is still routed; swap it out before draining")
        deadline = time.monotonic() + timeout_s
        while upstream.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        drained = upstream.in_flight == 0
        client = upstream.client
        if client is not None and self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(client.aclose(), self._loop).result(timeout_s)
            upstream.client = None
        return drained

    # ------------------------------------------------------------ the proxy

    def _upstream(self, label: str, url: str) -> Upstream:
        # the client is built here, in the caller's thread: building one (its SSL context) takes
        # tens of ms, which on the loop would stall every request in flight
        client = httpx.AsyncClient(base_url=url, timeout=self._timeout, limits=self._limits)
        return Upstream(label, url.rstrip("/"), client=client)

    def _warm(self, up: Upstream, connections: int = 4) -> None:
        """Open `connections` pooled connections to a new upstream (readiness requests) before it
        gets traffic: a first request pays for connecting, which would count against a canary's
        latency. An upstream that does not answer ready is refused."""
        if self._loop is None or not self._warm_path:
            return

        async def warm() -> list[httpx.Response]:
            client = self._client(up)
            return await asyncio.gather(*(client.get(self._warm_path) for _ in range(connections)))

        try:
            answers = asyncio.run_coroutine_threadsafe(warm(), self._loop).result(self._timeout)
        except httpx.HTTPError as exc:
            raise RouterError(f"{up.label} at {up.url} is not reachable: {exc!r}") from exc
        bad = [r.status_code for r in answers if r.status_code != 200]
        if bad:
            raise RouterError(f"{up.label} at {up.url} is not ready: HTTP {bad[0]}")

    def _client(self, up: Upstream) -> httpx.AsyncClient:
        if up.client is None:
            up.client = httpx.AsyncClient(
                base_url=up.url, timeout=self._timeout, limits=self._limits
            )
        return up.client

    async def _close_clients(self) -> None:
        routes = self._routes
        for up in (routes.stable, routes.canary, routes.mirror):
            if up is not None and up.client is not None:
                await up.client.aclose()

    def _pick(self) -> tuple[Upstream, Upstream | None, Upstream | None]:
        """The upstream for the next request, the mirror and the pairing partner (stable, for a
        canary request while pairing, unless the mirror is stable), counted in flight at once."""
        routes = self._routes
        i = self._counter
        self._counter += 1
        up = routes.stable
        if routes.canary is not None and (i + 1) * routes.weight // 100 > i * routes.weight // 100:
            up = routes.canary
        up.in_flight += 1
        if routes.mirror is not None:
            routes.mirror.in_flight += 1
        partner = None
        if routes.pair and up is routes.canary:
            if routes.mirror is not None and routes.mirror.url == routes.stable.url:
                partner = routes.mirror
            else:
                partner = routes.stable
                partner.in_flight += 1
        return up, routes.mirror, partner

    async def _forward(
        self, up: Upstream, method: str, path: str, headers: list, body: bytes, record: bool = True
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        started = time.perf_counter()
        try:
            resp = await self._client(up).request(method, path, headers=headers, content=body)
        except httpx.HTTPError as exc:
            if record:
                up.window.record((time.perf_counter() - started) * 1000, True)
            detail = json.dumps({"error": f"upstream {up.label} failed: {type(exc).__name__}"})
            return 502, [("content-type", "application/json")], detail.encode()
        finally:
            up.in_flight -= 1
        latency = (time.perf_counter() - started) * 1000
        content = resp.content
        ok = resp.status_code < 500
        if not record:
            return resp.status_code, [], content
        up.window.record(
            latency,
            not ok,
            scores_of(content) if resp.status_code < 300 else None,
            client_error=400 <= resp.status_code < 500,
        )
        out_headers = [(k, v) for k, v in resp.headers.items() if k.lower() not in _HOP_HEADERS]
        return resp.status_code, out_headers, content

    async def _app(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"] + (
            f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        )
        if scope["path"] == "/-/router":
            status, headers, content = 200, [("content-type", "application/json")], self._status()
        else:
            fwd = [
                (k.decode(), v.decode())
                for k, v in scope["headers"]
                if k.decode().lower() not in _HOP_HEADERS
            ]
            # no await before this: the table cannot change under it
            up, mirror, partner = self._pick()
            method = scope["method"]
            paired: asyncio.Task | None = None
            if mirror is not None:
                task = self._spawn(self._forward(mirror, method, path, fwd, body))
                paired = task if partner is mirror else None
            if partner is not None and partner is not mirror:
                paired = self._spawn(self._forward(partner, method, path, fwd, body, False))
            status, headers, content = await self._forward(up, method, path, fwd, body)
            if up is self._routes.stable and status < 300 and method == "POST":
                self._answered.append((path, body))
            if paired is not None:
                self._spawn(self._record_pair(up, status, content, paired))
        raw = [(k.encode(), v.encode()) for k, v in headers]
        raw.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _record_pair(up: Upstream, status: int, content: bytes, partner: asyncio.Task):
        """Keep (stable, canary) scores of one row when both answered it with as many scores."""
        p_status, _, p_content = await partner
        if status >= 300 or p_status >= 300:
            return
        mine, theirs = scores_of(content), scores_of(p_content)
        if mine and len(mine) == len(theirs):
            up.pairs.extend(zip(theirs, mine, strict=True))

    def _status(self) -> bytes:
        routes = self._routes
        doc: dict[str, Any] = {"weight": routes.weight}
        for role in ("stable", "canary", "mirror"):
            up = getattr(routes, role)
            if up is not None:
                doc[role] = {
                    "label": up.label,
                    "url": up.url,
                    "in_flight": up.in_flight,
                    "window": up.window.summary(),
                }
        return json.dumps(doc).encode()


def _percent(value: int) -> int:
    if not 0 <= int(value) <= 100:
        raise RouterError(f"a weight is a percent in 0..100, got {value}")
    return int(value)
