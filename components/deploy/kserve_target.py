"""The KServe target: one v1beta1 InferenceService in RawDeployment mode, canary steps through
`spec.canary` (KServe >= 0.20).

Rendered object (validated against the CRD in components/common/schemas before every write):

    metadata.annotations: serving.kserve.io/deploymentMode: RawDeployment
    spec.predictor:  {name: <stable revision>, model: {modelFormat: {name: mlpipe}, runtime: mlpipe,
                      storageUri, protocolVersion: v2, resources}, serviceAccountName, minReplicas}
    spec.canary:     [{predictor: {name: <candidate revision>, model: ...}, trafficPercent: N}]

Start a candidate = add the canary entry at 0 %; a step = change its trafficPercent; promote = the
candidate's predictor becomes `spec.predictor` and the entry goes; rollback = remove the entry.
Every write is a JSON merge patch carrying the resourceVersion it read (a Conflict is re-read and
retried). Readiness and traffic come from the status: `observedGeneration` must have caught up
with `metadata.generation`, the `Ready` condition, and the candidate's entry in
`status.canaryStatuses` (ready, trafficPercent, modelStatus.transitionStatus / lastFailureInfo).

Analysis metrics come from a `MetricsSource` (Prometheus on a cluster; see metrics.py).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from components.common.k8s import (
    KSERVE_INFERENCE_SERVICE as ISVC,
)
from components.common.k8s import (
    Conflict,
    Invalid,
    KubernetesAdapter,
    NotFound,
    WaitTimeout,
    schema_errors,
    wait_for,
)
from components.deploy.metrics import MetricsSource
from components.deploy.rollout import Candidate, CandidateFailed
from components.deploy.windows import Window

DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
MODEL_FORMAT = "mlpipe"
FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")


@dataclass(frozen=True)
class KServeSettings:
    """What the rendering needs (`deployment.rollout.kserve` in the config)."""

    namespace: str = "mlpipe"
    service_account: str | None = "mlpipe-serving"
    runtime: str = "mlpipe"
    resources: dict | None = None
    min_replicas: int = 1
    ready_timeout_s: float = 600.0
    poll_s: float = 5.0

    @classmethod
    def from_config(cls, cfg) -> KServeSettings:
        return cls(
            cfg.namespace,
            cfg.service_account,
            cfg.runtime,
            copy.deepcopy(cfg.resources),
            cfg.min_replicas,
            cfg.ready_timeout_s,
            cfg.poll_s,
        )


@dataclass(frozen=True)
class Revision:
    """One predictor: its name (unique per model version) and where the model is."""

    name: str
    storage_uri: str


class RenderError(ValueError):
    """A rendered InferenceService does not match the KServe CRD."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("rendered InferenceService is invalid: " + "; ".join(errors))


def revision_name(service: str, version: str) -> str:
    """A predictor name (lowercase RFC 1035 label, at most 63 characters) for a model version."""
    raw = re.sub(r"[^a-z0-9-]+", "-", f"{service}-{version}".lower()).strip("-")
    raw = raw[:63].rstrip("-")
    if not raw or not raw[0].isalpha():
        raw = ("m-" + raw)[:63].rstrip("-")
    return raw


def predictor_spec(rev: Revision, settings: KServeSettings) -> dict:
    model: dict = {
        "name": "kserve-container",
        "modelFormat": {"name": MODEL_FORMAT},
        "runtime": settings.runtime,
        "storageUri": rev.storage_uri,
        "protocolVersion": "v2",
    }
    if settings.resources:
        model["resources"] = copy.deepcopy(settings.resources)
    spec: dict = {"name": rev.name, "minReplicas": settings.min_replicas, "model": model}
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    return spec


def render_inference_service(
    name: str,
    stable: Revision,
    settings: KServeSettings,
    canary: Revision | None = None,
    percent: int = 0,
    labels: dict[str, str] | None = None,
) -> dict:
    """The InferenceService for one state of a rollout; `RenderError` unless the CRD accepts it."""
    obj: dict = {
        "apiVersion": ISVC.api_version,
        "kind": ISVC.kind,
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/part-of": "mlpipe", **(labels or {})},
            "annotations": {
                DEPLOYMENT_MODE: "RawDeployment",
                "serving.kserve.io/enable-prometheus-scraping": "true",
            },
        },
        "spec": {"predictor": predictor_spec(stable, settings)},
    }
    if canary is not None:
        obj["spec"]["canary"] = [
            {"predictor": predictor_spec(canary, settings), "trafficPercent": percent}
        ]
    errors = schema_errors(obj)
    if errors:
        raise RenderError(errors)
    return obj


# ---------------------------------------------------------------- reading the status


def condition(obj: dict, type_: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def caught_up(obj: dict) -> bool:
    """The controller has seen the current spec."""
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is not None and observed >= obj["metadata"].get("generation", 1)


def is_ready(obj: dict) -> bool:
    cond = condition(obj, "Ready")
    return caught_up(obj) and cond is not None and cond.get("status") == "True"


def canary_status(obj: dict, name: str) -> dict | None:
    for entry in (obj.get("status") or {}).get("canaryStatuses") or []:
        if entry.get("name") == name:
            return entry
    return None


def canary_failure(obj: dict, name: str) -> str | None:
    """Why the canary revision `name` failed, if the status says it did."""
    entry = canary_status(obj, name)
    if not caught_up(obj) or entry is None:
        return None
    model = entry.get("modelStatus") or {}
    info = model.get("lastFailureInfo") or {}
    if model.get("transitionStatus") in FAILED_TRANSITIONS or info:
        reason = info.get("reason") or model.get("transitionStatus")
        return f"{name}: {reason}: {info.get('message', '')}".rstrip(": ")
    return None


def traffic(obj: dict) -> dict[str, int]:
    """Traffic percent by revision as the status reports it (the canary entries; the predictor
    takes the rest)."""
    status = obj.get("status") or {}
    out = {e["name"]: int(e.get("trafficPercent", 0)) for e in status.get("canaryStatuses") or []}
    predictor = (obj.get("spec") or {}).get("predictor", {}).get("name", "predictor")
    out[predictor] = 100 - sum(out.values())
    return out


# ---------------------------------------------------------------- the target


class KServeTarget:
    """Rollout `Target` over one InferenceService through the Kubernetes adapter."""

    supports_shadow = False  # KServe has no request mirroring: blue-green skips the shadow window

    def __init__(
        self,
        adapter: KubernetesAdapter,
        name: str,
        settings: KServeSettings,
        metrics: MetricsSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.adapter = adapter
        self.name = name
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.stable: Revision | None = None
        self.candidate: Revision | None = None
        self.percent = 0
        self._window_start = 0.0
        self.rendered: list[dict] = []  # every object written, in order (for reports and tests)

    # ------------------------------------------------------------ plumbing

    def _args(self) -> tuple[str, str, str, str]:
        return ISVC.group, ISVC.version, self.settings.namespace, ISVC.plural

    def _get(self) -> dict:
        return self.adapter.get(*self._args(), self.name)

    def _apply(self, obj: dict, attempts: int = 3) -> dict:
        """Create the object, or merge-patch its spec (removing `spec.canary` when absent)."""
        self.rendered.append(obj)
        for attempt in range(attempts):
            try:
                current = self._get()
            except NotFound:
                return self.adapter.create(*self._args(), obj)
            patch = {
                "metadata": {
                    "resourceVersion": current["metadata"]["resourceVersion"],
                    "labels": obj["metadata"]["labels"],
                    "annotations": obj["metadata"]["annotations"],
                },
                "spec": {**obj["spec"], "canary": obj["spec"].get("canary")},  # None deletes
            }
            try:
                return self.adapter.patch(*self._args(), self.name, patch)
            except Conflict:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _wait(self, until: Callable[[dict], bool], what: str) -> dict:
        try:
            return wait_for(
                self.adapter,
                *self._args(),
                self.name,
                until,
                self.settings.ready_timeout_s,
                self.settings.poll_s,
                sleep=self.sleep,
                clock=self.clock,
            )
        except WaitTimeout as exc:
            raise CandidateFailed(
                f"{what}: not done after {self.settings.ready_timeout_s:g}s "
                f"(Ready: {condition(exc.last or {}, 'Ready')})"
            ) from exc

    def _render(self, canary: Revision | None = None, percent: int = 0) -> dict:
        assert self.stable is not None
        labels = {"mlpipe.io/revision": self.stable.name}
        return render_inference_service(
            self.name, self.stable, self.settings, canary, percent, labels
        )

    # ------------------------------------------------------------ the first deployment

    def deploy(self, stable: Revision) -> dict:
        """Serve `stable` (create, or replace whatever the service serves now) and wait until
        it is ready."""
        self.stable = stable
        self._apply(self._render())
        return self._wait(is_ready, f"{self.name} ({stable.name})")

    def adopt(self) -> Revision:
        """Take over an existing InferenceService: its predictor becomes the stable revision."""
        spec = self._get()["spec"]["predictor"]
        self.stable = Revision(spec["name"], spec["model"]["storageUri"])
        return self.stable

    # ------------------------------------------------------------ Target

    def start_candidate(self, candidate: Candidate) -> None:
        if self.stable is None:
            self.adopt()
        rev = Revision(revision_name(self.name, candidate.version), candidate.uri)
        try:
            self._apply(self._render(rev, 0))
        except Invalid as exc:
            raise CandidateFailed(f"the API server refused the canary: {exc}") from exc
        self.candidate, self.percent = rev, 0
        self._wait(self._candidate_ready(0), f"canary {rev.name}")

    def _candidate_ready(self, percent: int) -> Callable[[dict], bool]:
        name = self.candidate.name

        def until(obj: dict) -> bool:
            failure = canary_failure(obj, name)
            if failure:
                raise CandidateFailed(failure)
            entry = canary_status(obj, name)
            return (
                caught_up(obj)
                and entry is not None
                and entry.get("ready") is True
                and entry.get("trafficPercent") == percent
            )

        return until

    def set_canary_traffic(self, percent: int) -> None:
        if self.candidate is None:
            raise CandidateFailed("no candidate started")
        self._apply(self._render(self.candidate, percent))
        self.percent = percent
        self._wait(self._candidate_ready(percent), f"canary {self.candidate.name} at {percent}%")

    def set_shadow(self, on: bool) -> None:
        raise NotImplementedError("KServe has no request mirroring (supports_shadow is False)")

    def promote(self) -> None:
        if self.candidate is None:
            raise CandidateFailed("no candidate to promote")
        self.stable, self.candidate, self.percent = self.candidate, None, 0
        self._apply(self._render())
        self._wait(is_ready, f"{self.name} promoted to {self.stable.name}")

    def rollback(self) -> None:
        if self.stable is None:
            return
        self.candidate, self.percent = None, 0
        self._apply(self._render())
        self._wait(is_ready, f"{self.name} rolled back to {self.stable.name}")

    def open_window(self) -> None:
        self._window_start = self.clock()

    def read_window(self) -> tuple[Window, Window]:
        now = self.clock()
        stable = self.metrics.window(self.stable.name, self._window_start, now)
        if self.candidate is None:
            return stable, Window()
        return stable, self.metrics.window(self.candidate.name, self._window_start, now)
