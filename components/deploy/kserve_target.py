"""The KServe target: one v1beta1 InferenceService in Knative mode, canary steps through the
predictor's `canaryTrafficPercent` (KServe 0.20 with Knative Serving).

Why Knative mode: it is the mode in which KServe 0.20 splits traffic by percent. Its reconciler
(pkg/controller/v1beta1/inferenceservice/reconcilers/knative/ksvc_reconciler.go) turns
`canaryTrafficPercent: N` into two Knative route targets: the latest revision at N % and the
status's `latestRolledoutRevision` at 100 - N (tag `prev`); without the field the latest revision
takes 100 %. Knative's router (the Kourier gateway) then splits requests by those weights. In
Standard (RawDeployment) mode a canary is a separate Deployment and Service that the stable
Service does not select, so nothing splits by percent.

Rendered object (validated against the CRD in components/common/schemas before every write):

    metadata.annotations: serving.kserve.io/deploymentMode: Knative
                          mlpipe.io/model-version, mlpipe.io/stable-version,
                          mlpipe.io/stable-storage-uri (what to put back on rollback)
                          mlpipe.io/stable-model-sha256 (the stable model's manifest digest)
    spec.predictor: {minReplicas, serviceAccountName, automountServiceAccountToken: false,
                     canaryTrafficPercent (during a rollout only),
                     model: {modelFormat: {name: mlpipe}, runtime: mlpipe, storageUri,
                             protocolVersion: v2, resources,
                             env: MLPIPE_MODEL_SHA256 (+ MLPIPE_MODEL_MANIFEST)}}

The model server refuses to load files under /mnt/models whose manifest digest is not
MLPIPE_MODEL_SHA256: the deploy stage takes it from the version's `mlpipe.model_manifest_sha256`
tag (MLflow's database), so whoever can write the artifact bucket cannot make the pods unpickle
other files. KServe merges `env` into the runtime's container by name.

Every change of `storageUri` makes a new Knative revision (`<name>-predictor-0000N`); a change of
`canaryTrafficPercent` only moves the route. So:
- candidate: storageUri := candidate, canaryTrafficPercent := 0 -> a new revision, no traffic;
- step: canaryTrafficPercent := N;
- promote: canaryTrafficPercent removed -> the latest revision takes 100 %;
- rollback: canaryTrafficPercent := 0 (stable takes everything at once), then storageUri := the
  stable model (a new revision of the stable model, still at 0 %), then the field removed.

Waits follow upstream semantics, never `status.observedGeneration`: KServe copies that field from
the Knative Service (`InferenceServiceStatus.PropagateStatus`, pkg/apis/serving/v1beta1/
inference_service_status.go), a counter of a different object. A wait reads
`status.components.predictor`: `latestCreatedRevision` (a new one after a model change),
`latestReadyRevision`, `latestRolledoutRevision` and the route's `traffic`. A failed revision
shows as `PredictorConfigurationReady` False while `latestReadyRevision` stays behind.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

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
from components.common.model_integrity import MANIFEST_ENV, SHA256_ENV
from components.deploy.metrics import MetricsSource
from components.deploy.rollout import Candidate, CandidateFailed
from components.deploy.windows import Window

DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
MODE = "Knative"  # KServe 0.20's name; "Serverless" is its deprecated alias
MODEL_FORMAT = "mlpipe"
VERSION_ANNOTATION = "mlpipe.io/model-version"
STABLE_VERSION = "mlpipe.io/stable-version"
STABLE_URI = "mlpipe.io/stable-storage-uri"
STABLE_SHA256 = "mlpipe.io/stable-model-sha256"


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
        # the section's other fields (metrics source, replay) are the deploy stage's
        return cls(**cfg.model_dump(include={f.name for f in fields(cls)}))


@dataclass(frozen=True)
class Model:
    """A model version, where KServe's storage initializer fetches it, and the manifest digest
    (and manifest JSON, to name changed files) the server checks those files against."""

    version: str
    storage_uri: str
    sha256: str = ""
    manifest: str = ""


class RenderError(ValueError):
    """A rendered InferenceService does not match the KServe CRD."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("rendered InferenceService is invalid: " + "; ".join(errors))


def render_inference_service(
    name: str,
    model: Model,
    settings: KServeSettings,
    *,
    stable: Model | None = None,
    canary_percent: int | None = None,
) -> dict:
    """The InferenceService serving `model` (with `canary_percent`: as the latest revision at
    that share beside the last rolled-out one); `stable` is what a rollback puts back.
    `RenderError` unless the CRD accepts it."""
    stable = stable or model
    model_spec: dict = {
        "modelFormat": {"name": MODEL_FORMAT},
        "runtime": settings.runtime,
        "storageUri": model.storage_uri,
        "protocolVersion": "v2",
    }
    if settings.resources:
        model_spec["resources"] = copy.deepcopy(settings.resources)
    if not model.sha256:
        raise RenderError([f"model version {model.version}: no manifest digest to verify it by"])
    model_spec["env"] = [{"name": SHA256_ENV, "value": model.sha256}]
    if model.manifest:
        model_spec["env"].append({"name": MANIFEST_ENV, "value": model.manifest})
    predictor: dict = {
        "minReplicas": settings.min_replicas,
        # model pods never talk to the API server (the storage initializer reads S3 with the
        # service account's Secret, not its token)
        "automountServiceAccountToken": False,
        "model": model_spec,
    }
    if settings.service_account:
        predictor["serviceAccountName"] = settings.service_account
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    obj: dict = {
        "apiVersion": ISVC.api_version,
        "kind": ISVC.kind,
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/part-of": "mlpipe"},
            "annotations": {
                DEPLOYMENT_MODE: MODE,
                VERSION_ANNOTATION: model.version,
                STABLE_VERSION: stable.version,
                STABLE_URI: stable.storage_uri,
                STABLE_SHA256: stable.sha256,
            },
        },
        "spec": {"predictor": predictor},
    }
    errors = schema_errors(obj)
    if errors:
        raise RenderError(errors)
    return obj


def private_service(revision: str) -> str:
    """The Service whose endpoints are a revision's pods (knative serving
    pkg/reconciler/serverlessservice/resources/names.go: `<revision>-private`)."""
    return f"{revision}-private"


# ---------------------------------------------------------------- reading the status


def condition(obj: dict, type_: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def predictor_status(obj: dict) -> dict:
    return ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}


def traffic(obj: dict) -> dict[str, int]:
    """Percent by Knative revision as the route reports it (targets of one revision summed)."""
    out: dict[str, int] = {}
    for target in predictor_status(obj).get("traffic") or []:
        name = target.get("revisionName")
        if name:
            out[name] = out.get(name, 0) + int(target.get("percent") or 0)
    return out


def revision_failure(obj: dict, revision: str) -> str | None:
    """Why `revision` (the latest created) failed, if the status says it did: Knative reports a
    failed latest revision through the ConfigurationsReady condition, which KServe propagates as
    PredictorConfigurationReady; the latest ready revision stays behind."""
    pred = predictor_status(obj)
    if pred.get("latestCreatedRevision") != revision or pred.get("latestReadyRevision") == revision:
        return None
    cond = condition(obj, "PredictorConfigurationReady")
    if cond is None or cond.get("status") != "False":
        return None
    info = ((obj.get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo") or {}
    reason = info.get("reason") or cond.get("reason") or "RevisionFailed"
    message = info.get("message") or cond.get("message") or ""
    return f"{revision}: {reason}: {message}".rstrip(": ")


def serves(obj: dict, revision: str, percent: int, other: str | None) -> bool:
    """`revision` is the latest ready one, the route gives it `percent` and `other` the rest,
    and the service is Ready."""
    pred = predictor_status(obj)
    split = traffic(obj)
    want = {revision: percent}
    if other is not None and other != revision and percent < 100:
        want[other] = 100 - percent
    ready = condition(obj, "Ready") or {}
    return (
        pred.get("latestReadyRevision") == revision
        and pred.get("latestCreatedRevision") == revision
        and all(split.get(k, 0) == v for k, v in want.items())
        and not any(v for k, v in split.items() if k not in want)
        and ready.get("status") == "True"
    )


# ---------------------------------------------------------------- the target


class KServeTarget:
    """Rollout `Target` over one InferenceService through the Kubernetes adapter. `stable` and
    `candidate` hold Knative revision names (what metrics are selected by)."""

    supports_shadow = False  # KServe has no request mirroring: blue-green skips the shadow window

    def __init__(
        self,
        adapter: KubernetesAdapter,
        name: str,
        settings: KServeSettings,
        metrics: MetricsSource | Callable[[], MetricsSource] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.adapter = adapter
        self.name = name
        self.settings = settings
        self._metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.stable: str | None = None  # revision
        self.stable_model: Model | None = None
        self.candidate: str | None = None
        self.candidate_model: Model | None = None
        self.percent = 0
        self._window_start = 0.0
        self.rendered: list[dict] = []  # every object written, in order (for reports and tests)
        # {version: (manifest digest, manifest JSON)} of candidates (a rollout's Candidate
        # carries only the URI): rendered into the predictor so the server checks its files
        self.digests: dict[str, tuple[str, str]] = {}

    @property
    def metrics(self) -> MetricsSource:
        """Built on first use (a callable): a first deployment needs no metrics."""
        if self._metrics is None:
            raise CandidateFailed("no metrics source for the analysis windows")
        if callable(self._metrics) and not hasattr(self._metrics, "window"):
            self._metrics = self._metrics()
        return self._metrics

    # ------------------------------------------------------------ plumbing

    def _args(self) -> tuple[str, str, str, str]:
        return ISVC.group, ISVC.version, self.settings.namespace, ISVC.plural

    def _get(self) -> dict:
        return self.adapter.get(*self._args(), self.name)

    def _apply(self, obj: dict, attempts: int = 3) -> dict:
        """Create the object, or merge-patch it (removing `canaryTrafficPercent` when absent)."""
        self.rendered.append(obj)
        for attempt in range(attempts):
            try:
                current = self._get()
            except NotFound:
                return self.adapter.create(*self._args(), obj)
            predictor = dict(obj["spec"]["predictor"])
            predictor.setdefault("canaryTrafficPercent", None)  # None deletes the field
            patch = {
                "metadata": {
                    "resourceVersion": current["metadata"]["resourceVersion"],
                    "labels": obj["metadata"]["labels"],
                    "annotations": obj["metadata"]["annotations"],
                },
                "spec": {"predictor": predictor},
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
            last = exc.last or {}
            raise CandidateFailed(
                f"{what}: not done after {self.settings.ready_timeout_s:g}s "
                f"(predictor status: {predictor_status(last)}; Ready: {condition(last, 'Ready')})"
            ) from exc

    def _latest_created(self) -> str | None:
        try:
            return predictor_status(self._get()).get("latestCreatedRevision")
        except NotFound:
            return None

    def _new_revision(self, before: str | None, percent: int, other: str | None, what: str) -> str:
        """Wait for the revision the last model change created to serve `percent` (and `other`
        the rest); `CandidateFailed` when it fails. Returns its name."""
        found: dict[str, str] = {}

        def until(obj: dict) -> bool:
            latest = predictor_status(obj).get("latestCreatedRevision")
            if not latest or latest == before:
                return False
            failure = revision_failure(obj, latest)
            if failure:
                raise CandidateFailed(failure)
            found["name"] = latest
            return serves(obj, latest, percent, other)

        self._wait(until, what)
        return found["name"]

    def _route(self, revision: str, percent: int, other: str | None, what: str) -> None:
        self._wait(lambda obj: serves(obj, revision, percent, other), what)

    # ------------------------------------------------------------ outside a rollout

    def adopt(self) -> Model | None:
        """Take over the InferenceService: what it serves becomes stable. None only when it does
        not exist; any other error (403, a timeout) propagates, so nothing replaces a live
        predictor on a guess."""
        try:
            obj = self._get()
        except NotFound:
            return None
        notes = obj["metadata"].get("annotations") or {}
        model = obj["spec"]["predictor"]["model"]
        uri = notes.get(STABLE_URI) or model["storageUri"]
        env = {e.get("name"): e.get("value", "") for e in model.get("env") or []}
        # the stable model's digest: annotated since manifests exist, else the served one's env
        # when it serves the stable model; "" = the deploy stage looks it up in the registry
        digest = notes.get(STABLE_SHA256) or (
            env.get(SHA256_ENV, "") if uri == model["storageUri"] else ""
        )
        self.stable_model = Model(notes.get(STABLE_VERSION, ""), uri, digest)
        self.stable = predictor_status(obj).get("latestRolledoutRevision")
        return self.stable_model

    def serving(self) -> tuple[str, int | None] | None:
        """(the predictor's storageUri, its `canaryTrafficPercent`) as the spec stands, or None
        when there is no InferenceService (any other API error propagates)."""
        try:
            pred = self._get()["spec"]["predictor"]
        except NotFound:
            return None
        return pred["model"]["storageUri"], pred.get("canaryTrafficPercent")

    def serves_only(self, storage_uri: str) -> bool:
        """The InferenceService serves the model at `storage_uri` alone: the spec's model is it,
        no canary is left at a percent, and the route gives its (latest, ready) revision all
        traffic."""
        try:
            obj = self._get()
        except NotFound:
            return False
        pred = obj["spec"]["predictor"]
        if pred["model"]["storageUri"] != storage_uri or "canaryTrafficPercent" in pred:
            return False
        return serves(obj, predictor_status(obj).get("latestCreatedRevision"), 100, None)

    def deploy(self, model: Model) -> None:
        """Serve `model` with all traffic (create the InferenceService, or replace what it serves)
        and wait until its revision is ready and routed."""
        try:
            current = self._get()
        except NotFound:
            current = None
        self._apply(render_inference_service(self.name, model, self.settings))
        what = f"{self.name} serving {model.version}"
        pred = (current or {}).get("spec", {}).get("predictor", {})
        if pred.get("model", {}).get("storageUri") == model.storage_uri:
            # already the model of the latest revision (a canary percent only shapes the route,
            # e.g. a rollback interrupted after its stable model went back): no new revision
            # comes, the latest one takes all traffic
            found: dict[str, str] = {}

            def routed(obj: dict) -> bool:
                found["name"] = predictor_status(obj).get("latestCreatedRevision")
                return serves(obj, found["name"], 100, None)

            self._wait(routed, what)
            self.stable = found["name"]
        else:
            before = predictor_status(current or {}).get("latestCreatedRevision")
            self.stable = self._new_revision(before, 100, None, what)
        self.stable_model = model

    restore = deploy  # `mlpipe rollback`: what was served before is served again

    @property
    def url(self) -> str:
        """The InferenceService's cluster-local URL (through Knative's router: split traffic)."""
        status = self._get().get("status") or {}
        url = (status.get("address") or {}).get("url") or status.get("url")
        if not url:
            raise CandidateFailed(f"{self.name} reports no URL yet")
        return url

    # ------------------------------------------------------------ Target

    def start_candidate(self, candidate: Candidate) -> None:
        if self.stable_model is None and self.adopt() is None:
            raise CandidateFailed(f"no InferenceService {self.name} to roll out on")
        model = Model(
            candidate.version, candidate.uri, *self.digests.get(candidate.version, ("", ""))
        )
        before = self._latest_created()
        obj = render_inference_service(
            self.name, model, self.settings, stable=self.stable_model, canary_percent=0
        )
        try:
            self._apply(obj)
        except Invalid as exc:
            raise CandidateFailed(f"the API server refused the canary: {exc}") from exc
        self.candidate_model, self.percent = model, 0  # set first: a failed start rolls back
        self.candidate = self._new_revision(before, 0, self.stable, f"canary {candidate.version}")

    def set_canary_traffic(self, percent: int) -> None:
        if self.candidate is None:
            raise CandidateFailed("no candidate started")
        self._apply(
            render_inference_service(
                self.name,
                self.candidate_model,
                self.settings,
                stable=self.stable_model,
                canary_percent=percent,
            )
        )
        self.percent = percent
        self._route(self.candidate, percent, self.stable, f"canary {self.candidate} at {percent}%")

    def set_shadow(self, on: bool) -> None:
        raise NotImplementedError("KServe has no request mirroring (supports_shadow is False)")

    def promote(self) -> None:
        if self.candidate is None:
            raise CandidateFailed("no candidate to promote")
        self._apply(render_inference_service(self.name, self.candidate_model, self.settings))
        self._route(self.candidate, 100, None, f"{self.name} promoted to {self.candidate}")
        self.stable, self.stable_model = self.candidate, self.candidate_model
        self.candidate, self.candidate_model, self.percent = None, None, 0

    def rollback(self) -> None:
        if self.candidate_model is None or self.stable_model is None:
            return
        stable = self.stable_model
        if self.candidate is not None:  # 1. all traffic back to the last rolled-out revision
            self._apply(
                render_inference_service(
                    self.name, self.candidate_model, self.settings, stable=stable, canary_percent=0
                )
            )
            back = f"{self.name}: traffic back to {self.stable}"
            self._route(self.candidate, 0, self.stable, back)
        # 2. the spec serves the stable model again (a new revision, still without traffic; a
        # candidate that never became ready was never routed); 3. that revision takes over
        before = self._latest_created()
        self._apply(render_inference_service(self.name, stable, self.settings, canary_percent=0))
        revision = self._new_revision(before, 0, self.stable, f"{self.name}: stable model back")
        self._apply(render_inference_service(self.name, stable, self.settings))
        self._route(revision, 100, None, f"{self.name} rolled back to {stable.version}")
        self.stable = revision
        self.candidate, self.candidate_model, self.percent = None, None, 0

    def open_window(self) -> None:
        self._window_start = self.clock()
        mark = getattr(self.metrics, "mark", None)  # a scraping source snapshots the counters now
        if mark is not None:
            for revision in filter(None, (self.stable, self.candidate)):
                mark(revision)

    def read_window(self) -> tuple[Window, Window]:
        now = self.clock()
        stable = self.metrics.window(self.stable, self._window_start, now)
        if self.candidate is None:
            return stable, Window()
        return stable, self.metrics.window(self.candidate, self._window_start, now)
