"""An in-memory stand-in for the Kubernetes API, implementing `KubernetesAdapter`.

It behaves like an API server with the Katib and KServe CRDs installed, minus the controllers:
- every write is checked against the real schemas (`k8s.schema_errors`: Katib's swagger for
  Experiments and Trials, KServe's CRD for InferenceServices); unknown kinds are refused;
- a created Experiment goes through Katib's admission webhooks (`katib_admission.admit`: stored
  with Katib's defaults, or refused with its reasons), unless `admission={}` turns them off;
- names are unique per (type, namespace), `resourceVersion` grows on every change, `generation` on
  every spec change, and a stale `resourceVersion` in a patch is a `Conflict`;
- these kinds have a status subresource: `create` and `patch` leave `.status` alone, only
  `patch_status` (or a script) writes it;
- a *script* per object plays the controller: each `get` (and each watch tick) advances it one
  step and writes the step's status, so a launcher's control flow (succeeded, failed, never
  finishing, API errors) can be tested without a cluster.

`katib_experiment_status` and `katib_trial` build what Katib's controllers write.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from components.common.k8s import (
    KATIB_EXPERIMENT,
    KNOWN_RESOURCES,
    AlreadyExists,
    Conflict,
    Forbidden,
    Invalid,
    KubernetesAdapter,
    NotFound,
    resource_for,
    schema_errors,
    subject,
)
from tests.support.katib_admission import admit

Step = dict | BaseException | None
Script = Sequence[Step] | Callable[[dict, int], Step]
# plural -> the admission webhooks of a create: the object as stored, or Invalid
Admission = Callable[[dict, str], dict]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: mappings merge, `None` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def label_selector_matches(labels: dict[str, str], selector: str | None) -> bool:
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class InMemoryCluster(KubernetesAdapter):
    """The stand-in. `events` records every call as (verb, plural, namespace, name)."""

    def __init__(
        self,
        *,
        strict: bool = True,
        tick_s: float = 1.0,
        admission: dict[str, Admission] | None = None,
    ) -> None:
        self.strict = strict
        self.admission = {KATIB_EXPERIMENT.plural: admit} if admission is None else admission
        self.tick_s = tick_s  # how much time one watch tick stands for
        self.objects: dict[tuple[str, str, str, str], dict] = {}
        self.events: list[tuple[str, str, str, str]] = []
        self._scripts: dict[tuple[str, str | None, str], list[Any]] = {}
        self._denied: set[tuple[str, str]] = set()
        self._versions = itertools.count(1)
        # what a controller runs: (namespace, service) -> ready endpoint IPs
        self.endpoints: Callable[[str, str], list[str]] = lambda ns, service: []

    # ------------------------------------------------------------ test controls

    def script(self, plural: str, name: str, steps: Script, *, namespace: str | None = None):
        """Play the controller for object `name` (`"*"`: every object of `plural`): on each tick
        write the next status of `steps` (the last one repeats; `None` leaves the status alone; an
        exception is raised from `get`), or call `steps(obj, tick)` for the status. May be set
        before the object exists; it outlives a delete (a re-created object meets the same
        controller, whose tick count goes on)."""
        self._scripts[(plural, namespace, name)] = [steps, 0]

    def deny(self, verb: str, plural: str) -> None:
        """Refuse `verb` (create/get/patch/delete/list/watch) on `plural` with Forbidden (RBAC)."""
        self._denied.add((verb, plural))

    def add(self, obj: dict, namespace: str | None = None) -> dict:
        """Store an object *with* its status, as a controller would have written it."""
        group, version = obj["apiVersion"].split("/", 1)
        res = self._resource(group, version, _plural_of(obj), "create")
        namespace = namespace or obj["metadata"].get("namespace", "default")
        status = obj.get("status")
        self.create(group, version, namespace, res.plural, obj)
        if status is not None:
            self._write_status(group, res.plural, namespace, obj["metadata"]["name"], status)
        return self.objects[(group, res.plural, namespace, obj["metadata"]["name"])]

    def verbs(self, verb: str, plural: str | None = None) -> list[tuple[str, str, str, str]]:
        return [e for e in self.events if e[0] == verb and (plural is None or e[1] == plural)]

    # ------------------------------------------------------------ internals

    def _resource(self, group: str, version: str, plural: str, verb: str):
        if (verb, plural) in self._denied:
            raise Forbidden(f"{verb} is forbidden (RBAC)", subject(group, plural, "*"), 403)
        res = resource_for(group, version, plural)
        if res is None:
            raise NotFound(
                f"the server could not find the requested resource {plural}.{group}/{version} "
                "(unknown kind: the stand-in serves Katib Experiments and Trials and KServe "
                "InferenceServices)",
                status=404,
            )
        return res

    def _check(self, obj: dict, what: str) -> None:
        errors = schema_errors(obj, strict=self.strict)
        if errors:
            raise Invalid("; ".join(errors), what, errors)

    def _bump(self, obj: dict) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def _stored(self, group: str, plural: str, namespace: str, name: str) -> dict:
        key = (group, plural, namespace, name)
        if key not in self.objects:
            raise NotFound("not found", subject(group, plural, namespace, name), 404)
        return self.objects[key]

    def _write_status(self, group: str, plural: str, namespace: str, name: str, status: dict):
        obj = self._stored(group, plural, namespace, name)
        candidate = {**obj, "status": status}
        self._check(candidate, subject(group, plural, namespace, name))
        obj["status"] = copy.deepcopy(status)
        self._bump(obj)

    def _tick(self, group: str, plural: str, namespace: str, name: str) -> None:
        entry = (
            self._scripts.get((plural, namespace, name))
            or self._scripts.get((plural, None, name))
            or self._scripts.get((plural, None, "*"))
        )
        if entry is None:
            return
        steps, tick = entry
        entry[1] += 1
        obj = self._stored(group, plural, namespace, name)
        if callable(steps):
            step = steps(copy.deepcopy(obj), tick)
        else:
            step = steps[min(tick, len(steps) - 1)] if steps else None
        if isinstance(step, BaseException):
            raise step
        if step is not None:
            self._write_status(group, plural, namespace, name, step)

    # ------------------------------------------------------------ the adapter

    def create(self, group, version, namespace, plural, body):
        res = self._resource(group, version, plural, "create")
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        what = subject(group, plural, namespace, name)
        if (body.get("apiVersion"), body.get("kind")) != (res.api_version, res.kind):
            raise Invalid(
                f"apiVersion/kind {body.get('apiVersion')}/{body.get('kind')} does not match "
                f"the endpoint {res.api_version}/{res.kind}",
                what,
            )
        if meta.get("namespace", namespace) != namespace:
            raise Invalid(
                f"metadata.namespace {meta['namespace']!r} does not match the request's "
                f"namespace {namespace!r}",
                what,
            )
        if meta.get("resourceVersion"):
            raise Invalid("metadata.resourceVersion must not be set on create", what)
        body.pop("status", None)  # status subresource: create ignores it
        self._check(body, what)
        if plural in self.admission:
            body = self.admission[plural](body, what)
            meta = body["metadata"]
        key = (group, plural, namespace, name)
        if key in self.objects:
            raise AlreadyExists(f"{plural}.{group} {name!r} already exists", what, 409)
        meta.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            generation=1,
            creationTimestamp=_now(),
        )
        self._bump(body)
        self.objects[key] = body
        self.events.append(("create", plural, namespace, name))
        return copy.deepcopy(body)

    def get(self, group, version, namespace, plural, name):
        self._resource(group, version, plural, "get")
        self.events.append(("get", plural, namespace, name))
        self._stored(group, plural, namespace, name)
        self._tick(group, plural, namespace, name)
        return copy.deepcopy(self._stored(group, plural, namespace, name))

    def patch(self, group, version, namespace, plural, name, patch):
        self._resource(group, version, plural, "patch")
        what = subject(group, plural, namespace, name)
        obj = self._stored(group, plural, namespace, name)
        patch = copy.deepcopy(patch)
        patch.pop("status", None)  # status subresource: the main endpoint ignores it
        meta = patch.get("metadata") or {}
        wanted = meta.pop("resourceVersion", None)
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise Conflict(
                f"the object has been modified (resourceVersion {wanted} is stale; now "
                f"{obj['metadata']['resourceVersion']})",
                what,
                409,
            )
        for field in ("name", "namespace", "uid"):
            if field in meta and meta[field] != obj["metadata"].get(field):
                raise Invalid(f"metadata.{field} is immutable", what)
        updated = merge_patch(obj, patch)
        self._check(updated, what)
        if updated == obj:
            return copy.deepcopy(obj)
        if updated.get("spec") != obj.get("spec"):
            updated["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        self._bump(updated)
        self.objects[(group, plural, namespace, name)] = updated
        self.events.append(("patch", plural, namespace, name))
        return copy.deepcopy(updated)

    def patch_status(self, group, version, namespace, plural, name, patch):
        self._resource(group, version, plural, "patch")
        obj = self._stored(group, plural, namespace, name)
        status = merge_patch(obj.get("status") or {}, patch.get("status", patch))
        self._write_status(group, plural, namespace, name, status)
        self.events.append(("patch_status", plural, namespace, name))
        return copy.deepcopy(self._stored(group, plural, namespace, name))

    def delete(self, group, version, namespace, plural, name):
        self._resource(group, version, plural, "delete")
        self._stored(group, plural, namespace, name)
        del self.objects[(group, plural, namespace, name)]
        self.events.append(("delete", plural, namespace, name))

    def list(self, group, version, namespace, plural, label_selector=None):
        self._resource(group, version, plural, "list")
        self.events.append(("list", plural, namespace, ""))
        return [
            copy.deepcopy(obj)
            for (g, p, ns, _), obj in sorted(self.objects.items())
            if (g, p, ns) == (group, plural, namespace)
            and label_selector_matches(obj["metadata"].get("labels") or {}, label_selector)
        ]

    def ready_addresses(self, namespace, service):
        if ("list", "endpointslices") in self._denied:
            raise Forbidden("list is forbidden (RBAC)", f"endpointslices in {namespace}", 403)
        self.events.append(("list", "endpointslices", namespace, service))
        return list(self.endpoints(namespace, service))

    def watch(self, group, version, namespace, plural, name, timeout_s) -> Iterator[dict]:
        self._resource(group, version, plural, "watch")
        seen = None
        for _ in range(max(1, int(timeout_s / self.tick_s))):
            obj = self.get(group, version, namespace, plural, name)
            if obj["metadata"]["resourceVersion"] != seen:
                seen = obj["metadata"]["resourceVersion"]
                yield obj


def _plural_of(obj: dict) -> str:
    for res in KNOWN_RESOURCES:
        if res.kind == obj.get("kind"):
            return res.plural
    return str(obj.get("kind", "")).lower() + "s"


# ---------------------------------------------------------------- what Katib's controllers write


def katib_condition(type_: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    cond = {"type": type_, "status": status, "lastUpdateTime": _now(), "lastTransitionTime": _now()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _metrics(values: dict[str, float | str]) -> list[dict]:
    return [{"name": k, "min": str(v), "max": str(v), "latest": str(v)} for k, v in values.items()]


def katib_experiment_status(
    state: str = "Running",
    *,
    succeeded: int = 0,
    failed: int = 0,
    early_stopped: int = 0,
    killed: int = 0,
    running: int = 0,
    pending: int = 0,
    metrics_unavailable: int = 0,
    best: dict | None = None,
    message: str = "",
) -> dict:
    """An Experiment's status as Katib's controller writes it. `state`: Created | Running |
    Succeeded | Failed. `best`: {"name", "assignments": {param: str}, "metrics": {name: value}}."""
    reasons = {
        "Created": "ExperimentCreated",
        "Running": "ExperimentRunning",
        "Succeeded": "ExperimentMaxTrialsReached",
        "Failed": "ExperimentFailed",
    }
    default_messages = {
        "Created": "Experiment is created",
        "Running": "Experiment is running",
        "Succeeded": "Experiment has succeeded because max trial count has reached",
        "Failed": "Experiment has failed because max failed count has reached",
    }
    conditions = [katib_condition("Created", "True", "ExperimentCreated", "Experiment is created")]
    if state != "Created":
        finished = state in ("Succeeded", "Failed")
        conditions.append(
            katib_condition(
                "Running",
                "False" if finished else "True",
                "ExperimentRunning",
                "Experiment is running",
            )
        )
    if state in ("Succeeded", "Failed"):
        conditions.append(
            katib_condition(state, "True", reasons[state], message or default_messages[state])
        )
    names = {
        "succeededTrialList": [f"t-ok-{i}" for i in range(succeeded)],
        "failedTrialList": [f"t-failed-{i}" for i in range(failed)],
        "earlyStoppedTrialList": [f"t-stopped-{i}" for i in range(early_stopped)],
        "killedTrialList": [f"t-killed-{i}" for i in range(killed)],
        "runningTrialList": [f"t-running-{i}" for i in range(running)],
        "pendingTrialList": [f"t-pending-{i}" for i in range(pending)],
        "metricsUnavailableTrialList": [f"t-nometrics-{i}" for i in range(metrics_unavailable)],
    }
    status: dict[str, Any] = {
        "startTime": _now(),
        "conditions": conditions,
        "trials": succeeded
        + failed
        + early_stopped
        + killed
        + running
        + pending
        + metrics_unavailable,
        "trialsSucceeded": succeeded,
        "trialsFailed": failed,
        "trialsEarlyStopped": early_stopped,
        "trialsKilled": killed,
        "trialsRunning": running,
        "trialsPending": pending,
        "trialMetricsUnavailable": metrics_unavailable,
        **{k: v for k, v in names.items() if v},
    }
    if state in ("Succeeded", "Failed"):
        status["completionTime"] = _now()
    if best:
        status["currentOptimalTrial"] = {
            "bestTrialName": best.get("name", "t-ok-0"),
            "parameterAssignments": [
                {"name": k, "value": str(v)} for k, v in best.get("assignments", {}).items()
            ],
            "observation": {"metrics": _metrics(best.get("metrics", {}))},
        }
    return status


def katib_trial(
    name: str,
    experiment: str,
    namespace: str,
    assignments: dict[str, Any],
    state: str = "Succeeded",
    metrics: dict[str, float | str] | None = None,
    message: str = "",
    objective: dict | None = None,
) -> dict:
    """A Trial as Katib's controllers leave it. `state`: Running | Succeeded | Failed |
    EarlyStopped | MetricsUnavailable | Killed."""
    conditions = [katib_condition("Created", "True", "TrialCreated", "Trial is created")]
    conditions.append(
        katib_condition(
            "Running", "True" if state == "Running" else "False", "TrialRunning", "Trial is running"
        )
    )
    if state != "Running":
        conditions.append(katib_condition(state, "True", f"Trial{state}", message or state))
    status: dict[str, Any] = {"startTime": _now(), "conditions": conditions}
    if state != "Running":
        status["completionTime"] = _now()
    if metrics:
        status["observation"] = {"metrics": _metrics(metrics)}
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"katib.kubeflow.org/experiment": experiment},
        },
        "spec": {
            "objective": objective or {"type": "maximize", "objectiveMetricName": "cv_roc_auc"},
            "parameterAssignments": [{"name": k, "value": str(v)} for k, v in assignments.items()],
        },
        "status": status,
    }


# ---------------------------------------------------------------- what KServe's controller writes


def kserve_condition(type_: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    cond = {"type": type_, "status": status, "lastTransitionTime": _now()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond
