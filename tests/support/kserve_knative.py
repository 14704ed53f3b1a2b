"""What KServe 0.20's controller in Knative mode and Knative Serving 1.21 write into an
InferenceService's status, as a script for `InMemoryCluster.script` — one reconcile per tick.

Each rule and where it comes from (KServe v0.20.0 unless said otherwise):
- a change of the predictor's pod template (here: the model's storageUri, runtime, resources —
  not `canaryTrafficPercent`, which only shapes the route) creates a Knative revision named
  `<isvc>-predictor-<5-digit configuration generation>` (knative serving v1.21
  pkg/reconciler/configuration/resources/names.go; the Knative Service of a predictor is
  `<isvc>-predictor`, pkg/constants/constants.go PredictorServiceName);
- the route: with `canaryTrafficPercent` N and a `latestRolledoutRevision`, the latest revision
  gets N % and the last rolled-out one 100 - N (tag `prev`); otherwise the latest takes 100 %
  (pkg/controller/v1beta1/inferenceservice/reconcilers/knative/ksvc_reconciler.go);
- Knative routes `latestRevision: true` to the latest *ready* revision; a revision that failed
  leaves `latestReadyRevision` behind and turns ConfigurationsReady (and Ready) False with reason
  RevisionFailed (knative serving pkg/apis/serving/v1/configuration_lifecycle.go);
- `latestRolledoutRevision` becomes the latest ready one once it has 100 % of the traffic as the
  latest revision; rolled back from 100 % (the same revision split with itself) it returns to
  `previousRolledoutRevision`; `observedGeneration` is the Knative Service's, not the
  InferenceService's generation (pkg/apis/serving/v1beta1/inference_service_status.go,
  PropagateStatus);
- the Knative Service's conditions appear as PredictorReady, PredictorRouteReady and
  PredictorConfigurationReady; Ready needs all of them (same file, PropagateStatus /
  PropagateCrossComponentStatus).

Endpoints: a revision that the route references keeps its pods (Knative scales revisions no route
references to zero); their IPs are the ready endpoints of the revision's private Service —
`endpoints()` answers the adapter's `ready_addresses`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.support.k8s_standin import kserve_condition


@dataclass
class _Revision:
    name: str
    storage_uri: str
    created: int  # tick
    failed: bool = False
    ready: bool = False


@dataclass
class _Service:
    revisions: list[_Revision] = field(default_factory=list)
    template: Any = None
    rolled_out: str | None = None
    previous_rolled_out: str | None = None
    ksvc_spec: Any = None
    ksvc_generation: int = 0
    traffic: list[dict] = field(default_factory=list)


class KnativeKServe:
    """The controller for every InferenceService it is scripted on. `failing` storage URIs never
    load (the revision fails after `ready_ticks`); `stuck` ones never become ready; others are
    ready `ready_ticks` ticks after their revision was created."""

    def __init__(
        self,
        *,
        failing: Iterable[str] = (),
        stuck: Iterable[str] = (),
        ready_ticks: int = 1,
        message: str = "failed to load the model",
    ) -> None:
        self.failing = set(failing)
        self.stuck = set(stuck)
        self.ready_ticks = ready_ticks
        self.message = message
        self.services: dict[tuple[str, str], _Service] = {}

    # ------------------------------------------------------------ one reconcile

    def __call__(self, obj: dict, tick: int) -> dict:
        meta = obj["metadata"]
        name, namespace = meta["name"], meta.get("namespace", "default")
        svc = self.services.setdefault((namespace, name), _Service())
        predictor = copy.deepcopy(obj["spec"]["predictor"])
        canary = predictor.pop("canaryTrafficPercent", None)
        if predictor != svc.template:  # a new revision of the configuration
            svc.template = predictor
            number = len(svc.revisions) + 1
            uri = predictor["model"]["storageUri"]
            svc.revisions.append(_Revision(f"{name}-predictor-{number:05d}", uri, tick))
        for rev in svc.revisions:
            if tick - rev.created >= self.ready_ticks and not (rev.ready or rev.failed):
                rev.failed = rev.storage_uri in self.failing
                rev.ready = not rev.failed and rev.storage_uri not in self.stuck
        latest = svc.revisions[-1]
        ready = [r for r in svc.revisions if r.ready]
        latest_ready = ready[-1].name if ready else None

        # KServe's reconciler: the Knative Service's route from the spec and the last status
        targets = [{"latestRevision": True, "percent": 100}]
        if canary is not None and svc.rolled_out:
            targets = [{"latestRevision": True, "percent": canary}]
            if canary < 100:
                targets.append(
                    {
                        "revisionName": svc.rolled_out,
                        "latestRevision": False,
                        "percent": 100 - canary,
                        "tag": "prev",
                    }
                )
        ksvc_spec = (svc.template, targets)
        if ksvc_spec != svc.ksvc_spec:
            svc.ksvc_spec, svc.ksvc_generation = ksvc_spec, svc.ksvc_generation + 1

        # Knative's route: latestRevision -> the latest ready revision
        route_ready = latest_ready is not None
        svc.traffic = []
        for target in targets:
            resolved = dict(target)
            if target["latestRevision"]:
                resolved["revisionName"] = latest_ready
            if resolved.get("revisionName") is None:
                route_ready = False
                continue
            svc.traffic.append(resolved)

        # KServe's PropagateStatus
        per_revision: dict[str, int] = {}
        for t in svc.traffic:
            per_revision[t["revisionName"]] = per_revision.get(t["revisionName"], 0) + t["percent"]
        for t in svc.traffic:
            if t["revisionName"] != latest_ready or not t["latestRevision"]:
                continue
            if svc.rolled_out != latest_ready:
                if t["percent"] == 100:
                    svc.previous_rolled_out, svc.rolled_out = svc.rolled_out, latest_ready
            elif (
                latest_ready == latest.name
                and t["percent"] < 100
                and per_revision.get(t["revisionName"]) == 100
                and svc.previous_rolled_out
            ):
                svc.rolled_out = svc.previous_rolled_out
        return self._status(obj, svc, latest, latest_ready, route_ready)

    def _status(
        self, obj: dict, svc: _Service, latest: _Revision, latest_ready: str | None, routed: bool
    ) -> dict:
        name = obj["metadata"]["name"]
        namespace = obj["metadata"].get("namespace", "default")
        config_ok = latest.ready
        if latest.ready:
            config = kserve_condition("PredictorConfigurationReady")
        elif latest.failed:
            message = f"Revision {latest.name!r} failed with message: {self.message}"
            config = kserve_condition(
                "PredictorConfigurationReady", "False", "RevisionFailed", message
            )
        else:  # still deploying: Knative says Unknown, not False
            config = kserve_condition("PredictorConfigurationReady", "Unknown", "Deploying")
        route = kserve_condition("PredictorRouteReady", "True" if routed else "Unknown")
        ready_ok = config_ok and routed
        ready = "True" if ready_ok else "False"
        external = f"http://{name}.{namespace}.example.com"
        internal = f"http://{name}.{namespace}.svc.cluster.local"
        predictor: dict[str, Any] = {
            "latestCreatedRevision": latest.name,
            "traffic": copy.deepcopy(svc.traffic),
        }
        if latest_ready:
            predictor["latestReadyRevision"] = latest_ready
        if svc.rolled_out:
            predictor["latestRolledoutRevision"] = svc.rolled_out
        if svc.previous_rolled_out:
            predictor["previousRolledoutRevision"] = svc.previous_rolled_out
        if ready_ok:
            predictor["url"] = f"http://{name}-predictor.{namespace}.example.com"
        status: dict[str, Any] = {
            "observedGeneration": svc.ksvc_generation,
            "deploymentMode": "Knative",
            "conditions": [
                config,
                route,
                kserve_condition("PredictorReady", ready),
                kserve_condition("Ready", ready),
            ],
            "components": {"predictor": predictor},
            "modelStatus": (
                {
                    "transitionStatus": "BlockedByFailedLoad",
                    "states": {"activeModelState": "FailedToLoad"},
                    "lastFailureInfo": {"reason": "ModelLoadFailed", "message": self.message},
                }
                if latest.failed
                else {"transitionStatus": "UpToDate", "states": {"activeModelState": "Loaded"}}
            ),
        }
        if ready_ok:
            status.update(url=external, address={"url": internal})
        return status

    # ------------------------------------------------------------ what the cluster runs

    def revision_uri(self, namespace: str, name: str, revision: str) -> str:
        for rev in self.services[(namespace, name)].revisions:
            if rev.name == revision:
                return rev.storage_uri
        raise KeyError(revision)

    def endpoints(self, namespace: str, service: str) -> list[str]:
        """Ready endpoint IPs of a revision's private Service `<revision>-private` (knative
        serving pkg/reconciler/serverlessservice/resources/names.go): one pod per routed, ready
        revision (Knative scales revisions no route references to zero)."""
        out = []
        for (ns, _), svc in sorted(self.services.items()):
            if ns != namespace:
                continue
            routed = {t["revisionName"] for t in svc.traffic}
            for i, rev in enumerate(svc.revisions):
                if rev.ready and rev.name in routed and service == f"{rev.name}-private":
                    out.append(f"10.244.0.{10 + i}")
        return out


def knative_cluster(name: str = "*", **controller: Any):
    """The Kubernetes stand-in with this controller scripted on InferenceService `name` (every
    one by default); `cluster.controller` is the controller."""
    from components.common.k8s import KSERVE_INFERENCE_SERVICE as ISVC
    from tests.support.k8s_standin import InMemoryCluster

    kserve = KnativeKServe(**controller)
    cluster = InMemoryCluster()
    cluster.script(ISVC.plural, name, kserve)
    cluster.endpoints = kserve.endpoints
    cluster.controller = kserve
    return cluster


def served_uris(cluster: Any, namespace: str, name: str) -> dict[str, int]:
    """Traffic percent by storage URI as the route of InferenceService `name` splits it."""
    from components.common.k8s import KSERVE_INFERENCE_SERVICE as ISVC

    obj = cluster.objects[(ISVC.group, ISVC.plural, namespace, name)]
    out: dict[str, int] = {}
    for target in obj["status"]["components"]["predictor"]["traffic"]:
        uri = cluster.controller.revision_uri(namespace, name, target["revisionName"])
        out[uri] = out.get(uri, 0) + target["percent"]
    return {k: v for k, v in out.items() if v}
