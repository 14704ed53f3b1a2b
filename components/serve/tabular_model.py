"""The KServe model: a tabular classifier served from a model dir with its feature spec.

`TabularModel` is a `kserve.Model`: registered in KServe's model repository it answers KServe's
own V1 and V2 routes (`predict` receives a dict or an `InferRequest`). The server's lean hot
routes (app.py) call `infer_v1` / `infer_v2` directly, skipping KServe's request decoding; both
paths share validation (validation.py), scoring (fast_path.py) and the `invert` fault.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

from components.serve._kserve import InferOutput, InferRequest, InferResponse, InvalidInput, kserve
from components.serve.fast_path import Scorer, build_scorer
from components.serve.faults import Faults
from components.serve.model_source import LoadedModel
from components.serve.validation import DEFAULT_MAX_BATCH, RequestError, SpecValidator

log = logging.getLogger(__name__)

# a request of more rows than this is validated and scored in a worker thread, so the event loop
# keeps answering (health probes, small requests); fewer rows stay on the loop (a thread hop
# costs more than scoring them)
OFFLOAD_ROWS = 256
# big batches scored at once; the others wait. One: decoding and validation hold the GIL, so a
# second thread adds no throughput (LightGBM's predict releases the GIL and uses every core
# itself) but is one more thread the event loop must win the GIL from (probes waited longer)
SCORING_THREADS = 1
_LIMITERS: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


async def run_scoring(offload: bool, fn: Callable[[], Any]) -> Any:
    """`fn()` in a bounded worker thread if `offload`, else right here on the event loop."""
    if not offload:
        return fn()
    loop = asyncio.get_running_loop()  # one limiter per event loop (the server has one)
    if (limiter := _LIMITERS.get(loop)) is None:
        limiter = _LIMITERS[loop] = anyio.CapacityLimiter(SCORING_THREADS)
    return await anyio.to_thread.run_sync(fn, limiter=limiter)


def rows_of(body: Any) -> int:
    """The rows a V1 / V2 body claims (cheap, no validation); 0 if it claims nothing readable."""
    if not isinstance(body, dict):
        return 0
    instances = body.get("instances")
    if isinstance(instances, list):
        return len(instances)
    inputs = body.get("inputs")
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
        data = inputs[0].get("data")
        return len(data) if isinstance(data, list) else 0
    return 0


class TabularModel(kserve.Model):
    def __init__(
        self,
        name: str,
        loaded: LoadedModel,
        faults: Faults | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        super().__init__(name)
        self.loaded = loaded
        self.version = loaded.version
        self.faults = faults or Faults()
        self.max_batch = max_batch
        self.validator: SpecValidator | None = None
        self.scorer: Scorer | None = None
        # called with every batch of scores answered (the server's score histogram)
        self.score_observer: Callable[[np.ndarray], None] | None = None

    def load(self) -> bool:
        spec = self.loaded.spec
        self.validator = SpecValidator(spec, self.max_batch, self.name, str(self.version))
        self.scorer = build_scorer(self.loaded.pipeline, spec)
        self.features = [(f["name"], f["dtype"] != "float") for f in spec["features"]]
        self.ready = True
        return self.ready

    # ---------------------------------------------------------------- shared core

    def score(self, raw: np.ndarray) -> np.ndarray:
        p = self.scorer(raw)
        if self.faults.invert:
            p = 1.0 - p
        if self.score_observer is not None:
            self.score_observer(p)
        return p

    def infer_v1(self, body: Any) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """(response, raw matrix, scores) for a V1 body; RequestError if it is invalid."""
        raw = self.validator.v1(body)
        scores = self.score(raw)
        return {"predictions": scores.tolist()}, raw, scores

    def infer_v2(
        self, body: Any, request_id: str = ""
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """(response, raw matrix, scores) for an Open Inference Protocol body; the response id
        is the request's `id`, else the HTTP request id."""
        raw = self.validator.v2(body)
        scores = self.score(raw)
        response = {
            "id": body["id"] if isinstance(body.get("id"), str) else request_id,
            "model_name": self.name,
            "model_version": self.version,
            "outputs": [
                {
                    "name": "predictions",
                    "shape": [len(scores)],
                    "datatype": "FP64",
                    "data": scores.tolist(),
                }
            ],
        }
        return response, raw, scores

    # ---------------------------------------------------------------- KServe's interface

    async def predict(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> dict | InferResponse:
        try:
            if isinstance(payload, InferRequest):
                body = {
                    "inputs": [
                        {
                            "name": i.name,
                            "shape": list(i.shape),
                            "datatype": i.datatype,
                            "data": list(i.data) if i.data is not None else None,
                        }
                        for i in payload.inputs
                    ]
                }
                _, _, scores = await run_scoring(
                    rows_of(body) > OFFLOAD_ROWS, functools.partial(self.infer_v2, body)
                )
                output = InferOutput("predictions", [len(scores)], "FP64", scores.tolist())
                response_id = payload.id or (headers or {}).get("x-request-id") or uuid.uuid4().hex
                return InferResponse(response_id, self.name, [output], model_version=self.version)
            response, _, _ = await run_scoring(
                rows_of(payload) > OFFLOAD_ROWS, functools.partial(self.infer_v1, payload)
            )
            return response
        except RequestError as exc:
            raise InvalidInput(str(exc)) from exc

    def get_input_types(self) -> list[dict[str, Any]]:
        return [
            {"name": rule.name, "datatype": rule.datatype, "shape": [-1]}
            for rule in self.validator.rules
        ]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
