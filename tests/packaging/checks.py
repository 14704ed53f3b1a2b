"""The project's rules for rendered manifests, as functions that return what is wrong (empty: fine),
so the tests can run them on the real overlays and on deliberately broken fixtures alike."""

from __future__ import annotations

import re
from typing import Any

from tests.packaging.render import containers, name_of

PROJECT_IMAGE = re.compile(r"^ghcr\.io/mlpipe/(?P<image>[a-z0-9-]+):(?P<tag>.+)$")
# registry/name:tag with an explicit, non-floating tag (a digest may follow)
PINNED = re.compile(r"^[\w.\-/:]+:(?P<tag>[\w.\-]+)(@sha256:[0-9a-f]{64})?$")
FLOATING_TAGS = {"latest", "master", "main", "stable", "edge", "nightly"}


def container_errors(obj: dict[str, Any]) -> list[str]:
    """Every container: CPU/memory requests and limits; non-root, no privilege escalation, all
    capabilities dropped, a read-only root filesystem."""
    errors = []
    for pod, container in containers(obj):
        where = f"{name_of(obj)} container {container.get('name')}"
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not resources.get(section, {}).get(resource):
                    errors.append(f"{where}: no {section}.{resource}")
        ctx = container.get("securityContext", {})
        pod_ctx = pod.get("securityContext", {})
        if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
            errors.append(f"{where}: runAsNonRoot not set")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            errors.append(f"{where}: runs as uid 0")
        if ctx.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: allowPrivilegeEscalation must be false")
        if ctx.get("privileged"):
            errors.append(f"{where}: privileged")
        if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
            errors.append(f"{where}: capabilities.drop must include ALL")
        if ctx.get("capabilities", {}).get("add"):
            errors.append(f"{where}: adds capabilities")
        if ctx.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{where}: readOnlyRootFilesystem must be true")
    return errors


def image_errors(obj: dict[str, Any], project_version: str) -> list[str]:
    """Every image pinned by version (no floating tag); the project's own carry its version."""
    errors = []
    for _pod, container in containers(obj):
        image = container.get("image", "")
        where = f"{name_of(obj)} container {container.get('name')}"
        match = PINNED.match(image)
        if not match or match.group("tag") in FLOATING_TAGS:
            errors.append(f"{where}: image {image!r} is not pinned to a version")
            continue
        own = PROJECT_IMAGE.match(image.split("@")[0])
        if own and own.group("tag") != project_version:
            errors.append(f"{where}: {image} is not the project version {project_version}")
    return errors


def rbac_grants(objects: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """(role, apiGroup, resource, verb) for every rule of every Role/ClusterRole rendered."""
    grants = set()
    for obj in objects:
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        role = f"{obj['kind']} {obj['metadata'].get('namespace', '-')}/{obj['metadata']['name']}"
        for rule in obj.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        grants.add((role, group, resource, verb))
    return grants


# ---------------------------------------------------------------- NetworkPolicy evaluation


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions In/NotIn/Exists/DoesNotExist)."""
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_ns: str, source: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # pod traffic is matched by selectors here
    ns_selector = peer.get("namespaceSelector")
    pod_selector = peer.get("podSelector")
    if ns_selector is None:
        in_namespace = source.namespace == policy_ns
    else:
        in_namespace = _selects(ns_selector, source.namespace_labels)
    return in_namespace and (pod_selector is None or _selects(pod_selector, source.labels))


class Pod:
    """A pod as NetworkPolicies see it: namespace, its labels, its labels of namespace."""

    def __init__(self, namespace: str, labels: dict[str, str] | None = None) -> None:
        self.namespace = namespace
        self.labels = dict(labels or {})
        self.namespace_labels = {"kubernetes.io/metadata.name": namespace}


def ingress_allowed(
    policies: list[dict[str, Any]], source: Pod, target: Pod, port: int, protocol: str = "TCP"
) -> bool:
    """Kubernetes semantics: a pod selected by no ingress policy accepts everything; otherwise a
    connection needs one rule of one selecting policy that admits both the peer and the port."""
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace") == target.namespace
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"].get("podSelector", {}), target.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            peer_ok = not peers or any(
                _peer_matches(peer, policy["metadata"]["namespace"], source) for peer in peers
            )
            ports = rule.get("ports")
            port_ok = not ports or any(
                p.get("port") in (port, None) and p.get("protocol", "TCP") == protocol
                for p in ports
            )
            if peer_ok and port_ok:
                return True
    return False
