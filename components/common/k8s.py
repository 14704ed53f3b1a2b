"""The one module that talks to the Kubernetes API: namespaced custom objects (Katib Experiments and
Trials, KServe InferenceServices) through a small adapter.

- `KubernetesAdapter`: create / get / patch (JSON merge patch) / patch_status / delete / list /
  watch.
- `CustomObjectsAdapter`: the real one, over `kubernetes.client.CustomObjectsApi` (in-cluster
  config, else kubeconfig; `kubernetes` is imported lazily). API errors become `NotFound`,
  `AlreadyExists`, `Conflict`, `Forbidden`, `Invalid` naming the object.
- `wait_for`: poll an object until a predicate holds, with a timeout (clock and sleep injectable).
- `schema_errors`: the offline schema check of an object against the copies in `schemas/` (Katib's
  swagger, KServe's InferenceService and ServingRuntime CRDs). The stand-in
  (`tests/support/k8s_standin.py`) enforces it on every write; launchers run it before they
  submit, so a malformed object fails without a cluster round trip.

Schema checks are strict: an unknown field is an error (the real adapter sends
`fieldValidation=Strict`, so KServe's API server rejects them too; Katib's CRD preserves unknown
fields and its webhook silently drops them, so a typo there would otherwise go unnoticed).
"""

from __future__ import annotations

import copy
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


@dataclass(frozen=True)
class Resource:
    """A custom resource type: the four names every call needs."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


KATIB_EXPERIMENT = Resource("kubeflow.org", "v1beta1", "experiments", "Experiment")
KATIB_TRIAL = Resource("kubeflow.org", "v1beta1", "trials", "Trial")
KSERVE_INFERENCE_SERVICE = Resource(
    "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"
)
KNOWN_RESOURCES = (KATIB_EXPERIMENT, KATIB_TRIAL, KSERVE_INFERENCE_SERVICE)


def resource_for(group: str, version: str, plural: str) -> Resource | None:
    for res in KNOWN_RESOURCES:
        if (res.group, res.version, res.plural) == (group, version, plural):
            return res
    return None


# ---------------------------------------------------------------- errors


class KubernetesError(RuntimeError):
    """An API call failed. `subject` names the object ("experiments.kubeflow.org ns/name")."""

    def __init__(self, message: str, subject: str = "", status: int | None = None) -> None:
        self.subject = subject
        self.status = status
        super().__init__(f"{subject}: {message}" if subject else message)


class NotFound(KubernetesError):
    pass


class AlreadyExists(KubernetesError):
    pass


class Conflict(KubernetesError):
    """The object changed since it was read (resourceVersion mismatch)."""


class Forbidden(KubernetesError):
    pass


class Invalid(KubernetesError):
    """The API server (or the schema check) refused the object's content."""

    def __init__(self, message: str, subject: str = "", errors: list[str] | None = None) -> None:
        self.errors = list(errors or [])
        super().__init__(message, subject, status=422)


class WaitTimeout(KubernetesError):
    """`wait_for` gave up; `last` is the object as last seen."""

    def __init__(self, message: str, subject: str = "", last: dict | None = None) -> None:
        self.last = last
        super().__init__(message, subject)


def subject(group: str, plural: str, namespace: str, name: str = "") -> str:
    return f"{plural}.{group} {namespace}/{name}" if name else f"{plural}.{group} in {namespace}"


# ---------------------------------------------------------------- the adapter


class KubernetesAdapter(ABC):
    """Namespaced custom objects. Arguments follow `CustomObjectsApi` (group, version, namespace,
    plural, name); bodies and results are plain dicts."""

    @abstractmethod
    def create(self, group: str, version: str, namespace: str, plural: str, body: dict) -> dict:
        """Create the object; `AlreadyExists` if the name is taken, `Invalid` if refused."""

    @abstractmethod
    def get(self, group: str, version: str, namespace: str, plural: str, name: str) -> dict:
        """The object; `NotFound` if absent."""

    @abstractmethod
    def patch(
        self, group: str, version: str, namespace: str, plural: str, name: str, patch: dict
    ) -> dict:
        """JSON merge patch (RFC 7386) of the object; `.status` is left alone where the kind has a
        status subresource. `Conflict` if `patch.metadata.resourceVersion` is stale."""

    @abstractmethod
    def patch_status(
        self, group: str, version: str, namespace: str, plural: str, name: str, patch: dict
    ) -> dict:
        """JSON merge patch of the status subresource."""

    @abstractmethod
    def delete(self, group: str, version: str, namespace: str, plural: str, name: str) -> None:
        """Delete the object; `NotFound` if absent."""

    @abstractmethod
    def list(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        label_selector: str | None = None,
    ) -> list[dict]:
        """The objects of that type in the namespace (equality label selector `k=v,k2=v2`)."""

    @abstractmethod
    def watch(
        self, group: str, version: str, namespace: str, plural: str, name: str, timeout_s: float
    ) -> Iterator[dict]:
        """The object each time it changes, for at most `timeout_s`; `NotFound` once deleted."""

    @abstractmethod
    def ready_addresses(self, namespace: str, service: str) -> list[str]:
        """The IPs of the Service's ready endpoints (its EndpointSlices): where the rollout reads
        the model servers' own metrics."""


def wait_for(
    adapter: KubernetesAdapter,
    group: str,
    version: str,
    namespace: str,
    plural: str,
    name: str,
    until: Callable[[dict], bool],
    timeout_s: float,
    poll_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_poll: Callable[[dict], None] | None = None,
    retries: int = 3,
) -> dict:
    """Poll `get` every `poll_s` until `until(obj)`; return that object. `WaitTimeout` after
    `timeout_s` (the last object seen rides on the exception). Up to `retries` consecutive API
    errors (other than NotFound / Forbidden) are ridden out: one hiccup of the API server must not
    end an hour-long wait. Polling, not watching: it survives API server restarts and dropped
    watch connections without bookkeeping."""
    deadline = clock() + timeout_s
    last: dict | None = None
    failures = 0
    while True:
        try:
            last = adapter.get(group, version, namespace, plural, name)
            failures = 0
        except (NotFound, Forbidden):
            raise
        except KubernetesError:
            failures += 1
            if failures > retries:
                raise
        else:
            if on_poll is not None:
                on_poll(last)
            if until(last):
                return last
        if clock() >= deadline:
            raise WaitTimeout(
                f"not done after {timeout_s:g}s", subject(group, plural, namespace, name), last
            )
        sleep(max(0.0, min(poll_s, deadline - clock())))


# ---------------------------------------------------------------- the real implementation


class CustomObjectsAdapter(KubernetesAdapter):
    """The adapter over `kubernetes.client.CustomObjectsApi`.

    `api` may be passed (tests, a preconfigured client); otherwise the in-cluster configuration is
    loaded, else the kubeconfig (`KUBECONFIG` or ~/.kube/config, optional `context`)."""

    def __init__(
        self,
        api: Any = None,
        *,
        context: str | None = None,
        field_validation: str = "Strict",
        request_timeout_s: float = 30.0,
        validate: bool = True,
    ) -> None:
        self._api = api
        self._context = context
        self.field_validation = field_validation
        self.request_timeout_s = request_timeout_s
        self.validate = validate

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = _load_api(self._context)
        return self._api

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as exc:
            raise _map_api_error(exc, what) from None
        except OSError as exc:  # urllib3's connection errors are OSErrors underneath
            raise KubernetesError(f"cannot reach the API server: {exc}", what) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("urllib3"):
                raise KubernetesError(f"cannot reach the API server: {exc}", what) from exc
            raise

    def create(self, group, version, namespace, plural, body):
        name = body.get("metadata", {}).get("name", "")
        what = subject(group, plural, namespace, name)
        if self.validate:
            _raise_if_invalid(body, group, version, plural, what)
        return self._call(
            what,
            lambda: self.api.create_namespaced_custom_object(
                group,
                version,
                namespace,
                plural,
                body,
                field_validation=self.field_validation,
                _request_timeout=self.request_timeout_s,
            ),
        )

    def get(self, group, version, namespace, plural, name):
        return self._call(
            subject(group, plural, namespace, name),
            lambda: self.api.get_namespaced_custom_object(
                group, version, namespace, plural, name, _request_timeout=self.request_timeout_s
            ),
        )

    def patch(self, group, version, namespace, plural, name, patch):
        # kubernetes >= 12 sends application/merge-patch+json for custom objects
        return self._call(
            subject(group, plural, namespace, name),
            lambda: self.api.patch_namespaced_custom_object(
                group,
                version,
                namespace,
                plural,
                name,
                patch,
                field_validation=self.field_validation,
                _request_timeout=self.request_timeout_s,
            ),
        )

    def patch_status(self, group, version, namespace, plural, name, patch):
        return self._call(
            subject(group, plural, namespace, name),
            lambda: self.api.patch_namespaced_custom_object_status(
                group, version, namespace, plural, name, patch,
                _request_timeout=self.request_timeout_s,
            ),
        )  # fmt: skip

    def delete(self, group, version, namespace, plural, name):
        self._call(
            subject(group, plural, namespace, name),
            lambda: self.api.delete_namespaced_custom_object(
                group,
                version,
                namespace,
                plural,
                name,
                propagation_policy="Foreground",
                _request_timeout=self.request_timeout_s,
            ),
        )

    def list(self, group, version, namespace, plural, label_selector=None):
        kwargs = {"label_selector": label_selector} if label_selector else {}
        out = self._call(
            subject(group, plural, namespace),
            lambda: self.api.list_namespaced_custom_object(
                group, version, namespace, plural, _request_timeout=self.request_timeout_s, **kwargs
            ),
        )
        return list(out.get("items", []))

    def watch(self, group, version, namespace, plural, name, timeout_s):
        from kubernetes import watch

        what = subject(group, plural, namespace, name)
        stream = watch.Watch().stream(
            self.api.list_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            field_selector=f"metadata.name={name}",
            timeout_seconds=max(1, int(timeout_s)),
        )
        from kubernetes.client.exceptions import ApiException

        try:
            for event in stream:
                if event.get("type") == "DELETED":
                    raise NotFound("deleted", what, 404)
                if event.get("type") == "ERROR":
                    raise KubernetesError(f"watch error: {event.get('object')}", what)
                yield event["object"]
        except ApiException as exc:
            raise _map_api_error(exc, what) from None

    def ready_addresses(self, namespace, service):
        from kubernetes import client

        # same configuration and credentials; EndpointSlices carry the service-name label
        # (kubernetes pkg/controller/endpointslice), and only addresses: no pod specs
        api = client.DiscoveryV1Api(self.api.api_client)
        out = self._call(
            f"endpointslices of {namespace}/{service}",
            lambda: api.list_namespaced_endpoint_slice(
                namespace,
                label_selector=f"kubernetes.io/service-name={service}",
                _request_timeout=self.request_timeout_s,
            ),
        )
        return [
            address
            for slice_ in out.items
            for endpoint in slice_.endpoints or []
            if endpoint.conditions is None or endpoint.conditions.ready is not False
            for address in endpoint.addresses or []
        ]


def _load_api(context: str | None) -> Any:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config(context=context)
        except (config.ConfigException, OSError) as exc:
            raise KubernetesError(
                "no Kubernetes configuration: not in a cluster and no usable kubeconfig "
                f"(KUBECONFIG or ~/.kube/config): {exc}"
            ) from exc
    return client.CustomObjectsApi()


def _map_api_error(exc: Any, what: str) -> KubernetesError:
    status = getattr(exc, "status", None)
    reason, message = "", str(getattr(exc, "reason", "") or exc)
    try:
        body = json.loads(exc.body or "{}")
        reason, message = body.get("reason", ""), body.get("message", message)
    except (TypeError, ValueError):
        pass
    if status == 404:
        return NotFound(message or "not found", what, 404)
    if status == 409:
        cls = (
            AlreadyExists if reason == "AlreadyExists" or "already exists" in message else Conflict
        )
        return cls(message, what, 409)
    if status in (401, 403):
        return Forbidden(message or "forbidden", what, status)
    if status in (400, 422):
        return Invalid(message, what, [message])
    return KubernetesError(f"HTTP {status}: {message}", what, status)


# ---------------------------------------------------------------- offline schema checks

# The Katib swagger refers to Kubernetes types it does not define; these stand in for them.
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": {"type": ["string", "null"]},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "managedFields": {"type": "array", "items": {"type": "object"}},
        "selfLink": {"type": "string"},
    },
    "additionalProperties": False,
}
_EXTERNAL_DEFINITIONS: dict[str, Any] = {
    "v1.ObjectMeta": _OBJECT_META,
    "v1.ListMeta": {"type": "object"},
    "v1.Time": {"type": "string"},
    "v1.Container": {"type": "object"},  # customCollector: not used by this project
    "v1.HTTPGetAction": {"type": "object"},
    "v1.unstructured.Unstructured": {"type": "object"},  # the trial Job: Katib's webhook checks it
}
# (apiVersion, kind) -> where its schema is: ("swagger", file, definition) or ("crd", file, version)
_SCHEMA_SOURCES: dict[tuple[str, str], tuple[str, str, str]] = {
    (KATIB_EXPERIMENT.api_version, "Experiment"): (
        "swagger",
        "katib-v1beta1.swagger.json",
        "v1beta1.Experiment",
    ),
    (KATIB_TRIAL.api_version, "Trial"): ("swagger", "katib-v1beta1.swagger.json", ".v1beta1.Trial"),
    (KSERVE_INFERENCE_SERVICE.api_version, "InferenceService"): (
        "crd",
        "kserve-inferenceservices.yaml",
        "v1beta1",
    ),
    # the project's runtime in manifests/ (checked offline by tests/packaging)
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): (
        "crd",
        "kserve-servingruntimes.yaml",
        "v1alpha1",
    ),
}
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def known_kinds() -> list[tuple[str, str]]:
    """(apiVersion, kind) pairs the schema check knows."""
    return sorted(_SCHEMA_SOURCES)


def _strict(node: Any) -> Any:
    """A copy of a schema in which objects that list their properties refuse unknown ones."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _schema_document(api_version: str, kind: str, strict: bool) -> dict[str, Any]:
    source, file, which = _SCHEMA_SOURCES[(api_version, kind)]
    if source == "swagger":
        definitions = json.loads((SCHEMA_DIR / file).read_text())["definitions"]
        definitions = {**_EXTERNAL_DEFINITIONS, **definitions}
        if strict:
            definitions = _strict(definitions)
        return {"definitions": definitions, "$ref": f"#/definitions/{which}"}
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(SCHEMA_DIR / file) as fh:
        crd = next(d for d in yaml.load_all(fh, Loader=loader) if d)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == which)
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    schema.setdefault("properties", {})["metadata"] = _OBJECT_META  # the server checks metadata
    return _strict(schema) if strict else schema


def _list_type(validator: Any, value: str, instance: Any, schema: dict) -> Iterator[Any]:
    """x-kubernetes-list-type: `map` items are unique by their keys, `set` items unique."""
    from jsonschema.exceptions import ValidationError

    if not isinstance(instance, list):
        return
    seen: set[str] = set()
    for item in instance:
        if value == "map" and isinstance(item, dict):
            keys = schema.get("x-kubernetes-list-map-keys", [])
            key = json.dumps([item.get(k) for k in keys])
            shown = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
        elif value == "set":
            key, shown = json.dumps(item, sort_keys=True), repr(item)
        else:
            continue
        if key in seen:
            yield ValidationError(f"duplicate entry ({shown})")
        seen.add(key)


@cache
def _validator(api_version: str, kind: str, strict: bool) -> Any:
    from jsonschema import Draft4Validator, validators

    cls = validators.extend(Draft4Validator, {"x-kubernetes-list-type": _list_type})
    return cls(_schema_document(api_version, kind, strict))


def _path(error: Any) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else f".{p}")
    return "".join(parts).lstrip(".") or "(top)"


def _message(error: Any) -> str:
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown field(s) {extra}"
    return error.message


def _metadata_errors(obj: dict) -> list[str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return ["metadata: required"]
    errors = []
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        errors.append("metadata.name: required")
    elif name and (len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name)):
        errors.append(
            f"metadata.name: {name!r} is not a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')"
        )
    for key, value in (meta.get("labels") or {}).items():
        label = str(key).rsplit("/", 1)[-1]
        if not (0 < len(label) <= 63 and _LABEL_NAME.match(label)):
            errors.append(f"metadata.labels: invalid label key {key!r}")
        if isinstance(value, str) and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            errors.append(f"metadata.labels.{key}: invalid label value {value!r}")
    return errors


def schema_errors(obj: dict, *, strict: bool = True) -> list[str]:
    """Why `obj` does not match its kind's schema (empty: it does). Unknown kinds are an error."""
    if not isinstance(obj, dict):
        return [f"an object must be a mapping, got {type(obj).__name__}"]
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in _SCHEMA_SOURCES:
        known = ", ".join(f"{a} {k}" for a, k in known_kinds())
        return [f"unknown kind {key[1]!r} of apiVersion {key[0]!r} (known: {known})"]
    errors = _metadata_errors(obj)
    found = _validator(key[0], key[1], strict).iter_errors(obj)
    for error in sorted(found, key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        errors.append(f"{_path(error)}: {_message(error)}")
    return errors


def _raise_if_invalid(body: dict, group: str, version: str, plural: str, what: str) -> None:
    res = resource_for(group, version, plural)
    if res is None:  # a kind without a local schema: leave it to the API server
        return
    errors = schema_errors(body)
    if body.get("apiVersion") != res.api_version or body.get("kind") != res.kind:
        errors.insert(
            0,
            f"apiVersion/kind {body.get('apiVersion')}/{body.get('kind')} does not match "
            f"{res.api_version}/{res.kind}",
        )
    if errors:
        raise Invalid("; ".join(errors), what, errors)
