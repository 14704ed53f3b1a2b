"""The model server's ASGI application: lean hot routes in front of KServe's FastAPI app.

KServe's app (its own V1/V2 routers, health, metadata and /metrics handlers, registered around a
`TabularModel` in a KServe `ModelRepository`) serves every route. In front of it sits a small ASGI
callable that answers the two hot paths for this model itself —
`POST /v1/models/<name>:predict` and `POST /v2/models/<name>/infer` — with one orjson decode, the
spec validation, the numpy scorer and one orjson encode: no FastAPI routing, dependency
injection, pydantic request models or KServe's per-request preprocess/postprocess machinery —
and the server's two health probes, with KServe's own answers.
Everything else (and both hot paths with `fast_routes=False`) goes to KServe's app unchanged.
The front also times every request for Prometheus, applies the error/latency faults and writes
the request log.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
import uuid
from typing import Any

import numpy as np
import orjson

from components.serve._kserve import kserve  # noqa: F401  (argv-safe import first)
from components.serve.faults import Faults
from components.serve.metrics import ServerMetrics, endpoint_of
from components.serve.request_log import RequestLog
from components.serve.tabular_model import OFFLOAD_ROWS, TabularModel, rows_of, run_scoring
from components.serve.validation import RequestError

log = logging.getLogger(__name__)

# a body larger than this is decoded in the scoring thread with its validation and scoring:
# orjson holds the GIL either way, but on the loop every queued decode would delay a probe in
# turn, while the thread holds it for one decode at most before the loop gets it back
OFFLOAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024  # every route's request body (`--max-body-bytes`)
JSON_HEADERS = [(b"content-type", b"application/json")]
# the server's health answers, as KServe's V2 endpoints give them for a predictor (its
# DataPlane.ready() is True without a predictor host): answered in front, so a probe costs no
# routing and waits on the GIL once, not behind FastAPI's middleware stack
HEALTH = {"/v2/health/live": b'{"live":true}', "/v2/health/ready": b'{"ready":true}'}


def build_kserve_app(model: TabularModel):
    """KServe's FastAPI app for `model`: V1 + V2 routes, health, metadata, /metrics."""
    from fastapi import APIRouter, FastAPI
    from fastapi.responses import ORJSONResponse
    from kserve import errors
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import metrics_handler
    from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
    from kserve.protocol.rest.v2_endpoints import register_v2_endpoints

    repository = ModelRepository()
    repository.update(model)
    dataplane = DataPlane(model_registry=repository)
    extension = ModelRepositoryExtension(model_registry=repository)
    app = FastAPI(
        title="mlpipe model server (KServe)",
        docs_url=None,
        redoc_url=None,
        default_response_class=ORJSONResponse,
    )
    root = APIRouter()
    root.add_api_route("/", dataplane.live)
    root.add_api_route("/metrics", metrics_handler, methods=["GET"])
    app.include_router(root)
    register_v1_endpoints(app, dataplane, extension)
    register_v2_endpoints(app, dataplane, extension)
    # KServe's own exception → status mapping (InvalidInput → 400, ModelNotFound → 404, ...)
    for exc, handler in [
        (errors.InvalidInput, errors.invalid_input_handler),
        (errors.InferenceError, errors.inference_error_handler),
        (errors.ModelNotFound, _model_not_found_handler),
        (errors.ModelNotReady, errors.model_not_ready_handler),
        (NotImplementedError, errors.not_implemented_error_handler),
        (errors.UnsupportedProtocol, errors.unsupported_protocol_error_handler),
        (errors.ServerNotLive, errors.server_not_live_handler),
        (errors.ServerNotReady, errors.server_not_ready_handler),
        (Exception, _generic_exception_handler),
    ]:
        app.add_exception_handler(exc, handler)
    return app


async def _model_not_found_handler(request, exc: Exception):
    """404 for a model name this server does not serve: the client's mistake, so one line at
    INFO, not KServe's ERROR with a traceback (a probe for a wrong name would fill the log)."""
    from fastapi.responses import JSONResponse

    log.info("404 %s: %s", request.url.path, exc)
    return JSONResponse(status_code=404, content={"error": str(exc)})


async def _generic_exception_handler(request, exc: Exception):
    """KServe's handler answers the exception's text; this one logs it with the traceback and
    answers a generic 500 with the request id."""
    from fastapi.responses import Response

    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    log.error("request %s failed (request id %s)", request.url.path, request_id, exc_info=exc)
    headers = {"x-request-id": request_id}
    return Response(_internal_error(request_id), 500, headers, "application/json")


class ServingApp:
    """The ASGI app uvicorn runs (see the module docstring)."""

    def __init__(
        self,
        model: TabularModel,
        *,
        fast_routes: bool = True,
        request_log: RequestLog | None = None,
        faults: Faults | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.model = model
        self.kserve_app = build_kserve_app(model)
        self.fast_routes = fast_routes
        self.request_log = request_log
        self.faults = faults or model.faults
        self._rng = self.faults.rng()
        self.max_body_bytes = max_body_bytes
        self.metrics = ServerMetrics(model.name, version=str(model.version))
        model.score_observer = self.metrics.observe_scores  # every path that scores, KServe's too
        self.v1_path = f"/v1/models/{model.name}:predict"
        self.v2_path = f"/v2/models/{model.name}/infer"
        # the Open Inference Protocol's versioned path, for the version this server holds
        self.v2_version_path = f"/v2/models/{model.name}/versions/{model.version}/infer"
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}-{int(time.time()):x}-"

    def swap(self, model: TabularModel) -> None:
        """Serve `model` from now on (`mlpipe serve` following an alias that moved). Requests
        already running finish on the model they started with."""
        kserve_app = build_kserve_app(model)
        model.score_observer = self.metrics.observe_scores
        self.metrics.new_version(str(model.version))
        self.v2_version_path = f"/v2/models/{model.name}/versions/{model.version}/infer"
        self.kserve_app, self.model = kserve_app, model

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.kserve_app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        if (health := HEALTH.get(path)) is not None and scope["method"] == "GET":
            await _respond(send, 200, health)
            self.metrics.observe("health", 200, time.perf_counter() - start, 0)
            return
        hot = scope["method"] == "POST" and (
            path == self.v1_path or path == self.v2_path or path == self.v2_version_path
        )
        endpoint = ("v1_predict" if path == self.v1_path else "v2_infer") if hot else None
        if _declared_length(scope) > self.max_body_bytes:  # answered before reading the body
            await _respond(send, 413, self._too_large(), _header(scope, b"x-request-id"))
            self.metrics.observe(endpoint or endpoint_of(path), 413, time.perf_counter() - start, 0)
            return
        if hot and self.fast_routes:
            status, rows = await self._predict(scope, receive, send, endpoint, start)
        else:
            endpoint = endpoint or endpoint_of(path)
            if hot and (fault := await self._fault()) is not None:
                await _respond(send, 500, fault)
                status, rows = 500, 0
            else:
                status, rows = await self._delegate(scope, receive, send)
        self.metrics.observe(endpoint, status, time.perf_counter() - start, rows)

    def _too_large(self) -> bytes:
        return orjson.dumps({"error": f"request body exceeds {self.max_body_bytes} bytes"})

    async def _delegate(self, scope: dict, receive, send) -> tuple[int, int]:
        """KServe's app answers; its body is counted as it arrives (past the limit: 413 from
        here, the app is told the client left and whatever it answers is dropped), and an
        exception it lets out becomes a generic 500."""
        seen = [0]  # the status sent (0: nothing yet)
        received = [0]
        cut = [False]

        async def bounded_receive() -> dict:
            if cut[0]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_body_bytes:
                    cut[0] = True
                    if not seen[0]:
                        seen[0] = 413
                        await _respond(
                            send, 413, self._too_large(), _header(scope, b"x-request-id")
                        )
                    return {"type": "http.disconnect"}
            return message

        async def capture(message: dict) -> None:
            if cut[0]:
                return  # we answered 413 already
            if message["type"] == "http.response.start":
                seen[0] = message["status"]
            await send(message)

        try:
            await self.kserve_app(scope, bounded_receive, capture)
        except Exception:  # Starlette re-raises after its handler answered: logged there
            if cut[0]:
                return 413, 0
            if not seen[0]:
                request_id = self._request_id(scope)
                log.exception("%s %s failed (request id %s)", scope["method"], scope["path"],
                              request_id)  # fmt: skip
                seen[0] = 500
                await _respond(send, 500, _internal_error(request_id), request_id)
        return seen[0] or 500, 0

    def _request_id(self, scope: dict) -> str:
        return _header(scope, b"x-request-id") or f"{self._id_prefix}{next(self._ids)}"

    async def _fault(self) -> bytes | None:
        """The error/latency faults of one predict request: an error body, or None."""
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        if self.faults.error_rate and self._rng.random() < self.faults.error_rate:
            return b'{"error":"injected fault: error"}'
        return None

    async def _predict(self, scope, receive, send, endpoint: str, start: float) -> tuple[int, int]:
        request_id = self._request_id(scope)
        protocol = endpoint[:2]
        raw = scores = None
        error = None
        try:
            body = await _read_body(receive, self.max_body_bytes)
            if self.faults.active and (fault := await self._fault()) is not None:
                status, payload, error = 500, fault, "injected fault: error"
            else:
                json_length = _header(scope, BINARY_HEADER) if protocol == "v2" else None
                model = self.model
                infer = (
                    model.infer_v1
                    if protocol == "v1"
                    else functools.partial(model.infer_v2, request_id=request_id)
                )
                # a big body is decoded in the scoring thread too (OFFLOAD_BYTES); a small one
                # here, and its rows tell whether validation and scoring move to the thread
                parsed = None if len(body) > OFFLOAD_BYTES else _parse(body, json_length)
                offload = parsed is None or rows_of(parsed) > OFFLOAD_ROWS
                payload, raw, scores = await run_scoring(
                    offload, functools.partial(_answer, infer, body, json_length, parsed)
                )
                status = 200
        except RequestError as exc:
            status, payload, error = exc.status, orjson.dumps(exc.to_json()), str(exc)
        except Exception as exc:  # a bug, not the client's fault: a generic 500, keep serving
            log.exception("predict failed (request id %s)", request_id)
            status, payload = 500, _internal_error(request_id)
            error = f"internal error: {type(exc).__name__}"  # server-side log only
        await _respond(send, status, payload, request_id)
        if self.request_log is not None:
            self.request_log.write(
                model=self.model.name,
                model_version=self.model.version,
                request_id=request_id,
                protocol=protocol,
                status=status,
                latency_ms=(time.perf_counter() - start) * 1000,
                raw=raw,
                scores=scores,
                error=error,
            )
        return status, 0 if scores is None else len(scores)


def _answer(infer, body: bytes, json_length: str | None, parsed: Any) -> tuple[bytes, Any, Any]:
    """(encoded response, raw matrix, scores) of `infer` on the request: `parsed`, or `body`
    decoded here when it is None."""
    if parsed is None:
        parsed = _parse(body, json_length)
    response, raw, scores = infer(parsed)
    return orjson.dumps(response), raw, scores


def _parse(body: bytes, json_length: str | None) -> Any:
    try:
        return orjson.loads(body) if json_length is None else _binary_tensors(body, json_length)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"malformed JSON: {exc}") from None


def _internal_error(request_id: str) -> bytes:
    """A 500's body: no exception text or trace (those go to the server's log)."""
    return orjson.dumps({"error": "internal server error", "request_id": request_id})


BINARY_HEADER = b"inference-header-content-length"
# the binary tensor data extension's element types (little-endian), for the datatypes we accept
_BINARY_DTYPES = {"INT64": "<i8", "FP64": "<f8"}


def _binary_tensors(body: bytes, json_length: str) -> Any:
    """A request of the binary tensor data extension (Triton's, which KServe implements too):
    the JSON header is the first `json_length` bytes; each input whose
    `parameters.binary_data_size` is set takes that many bytes of the rest, in order. The
    tensors come back as JSON `data` lists, so validation is the same as for a JSON request."""
    try:
        length = int(json_length)
    except ValueError:
        raise RequestError(
            f"Inference-Header-Content-Length {json_length!r} is not a number"
        ) from None
    if not 0 < length <= len(body):
        raise RequestError(
            f"Inference-Header-Content-Length {length} does not fit a {len(body)}-byte body"
        )
    parsed = orjson.loads(body[:length])
    offset = length
    tensors = parsed.get("inputs") if isinstance(parsed, dict) else None
    for tensor in tensors if isinstance(tensors, list) else []:
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        if not isinstance(params, dict) or "binary_data_size" not in params:
            continue
        size, name = params.pop("binary_data_size"), tensor.get("name")
        dtype = _BINARY_DTYPES.get(tensor.get("datatype"))
        if dtype is None:
            raise RequestError(
                f"tensor {name!r}: binary data of datatype {tensor.get('datatype')!r}", name
            )
        if type(size) is not int or size < 0 or offset + size > len(body) or size % 8:
            raise RequestError(f"tensor {name!r}: binary_data_size {size!r} does not fit", name)
        if "data" in tensor:
            raise RequestError(f"tensor {name!r}: both data and binary data", name)
        tensor["data"] = np.frombuffer(body, dtype, size // 8, offset).tolist()
        offset += size
        if not params:
            del tensor["parameters"]
    if offset != len(body):
        raise RequestError(f"{len(body) - offset} bytes of binary data belong to no input tensor")
    return parsed


class _BodyTooLarge(RequestError):
    pass


async def _read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError("client disconnected", status=499)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge(f"request body exceeds {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _declared_length(scope: dict) -> int:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _respond(send, status: int, payload: bytes, request_id: str | None = None) -> None:
    headers: list[Any] = [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    if request_id:
        headers.append((b"x-request-id", request_id.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
