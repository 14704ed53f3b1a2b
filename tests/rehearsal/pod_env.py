"""The environment a compiled task's pod gets on a cluster, computed from the compiled YAML and
the rendered manifests — never written a second time.

Follows KFP 2.17's driver (kubeflow/pipelines backend/src/v2/driver/k8s.go, `extendPodSpecPatch`):
`configMapAsEnv` / `secretAsEnv` become one `configMapKeyRef` / `secretKeyRef` per key, with the
mount's `optional` on each key selector; `fieldPathAsEnv` becomes a downward-API `fieldRef`.
Then the kubelet resolves them: a missing key that is not optional keeps the pod from starting
(CreateContainerConfigError, here `PodStartError`); a missing optional one is left unset; a
field path reads the pod's metadata. The kubelet also sets the service-discovery variables of
the `kubernetes` Service in every container.
"""

from __future__ import annotations

import re
from typing import Any

from tests.support.manifests import PodStartError, Rendered

# what the kubelet adds to every container (the `kubernetes` Service of the default namespace)
KUBELET_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
# KFP standalone runs every pipeline pod in its own namespace (manifests/README.md)
PIPELINE_NAMESPACE = "kubeflow"


def executor_config(platform: dict[str, Any], executor: str) -> dict[str, Any]:
    executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    return executors.get("executors", {}).get(executor, {})


def field_value(path: str, pod: dict[str, Any]) -> str:
    """A downward-API field path (`metadata.name`, `metadata.labels['k']`, ...) of `pod`."""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str(pod["metadata"].get(match.group(1), {}).get(match.group(2), ""))
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(pod["metadata"][path.split(".", 1)[1]])
    raise PodStartError(f"field path {path!r} is not one the rehearsal resolves")


def task_env(
    platform: dict[str, Any],
    executor: str,
    manifests: Rendered,
    pod: dict[str, Any],
    namespace: str = PIPELINE_NAMESPACE,
    drop: tuple[str, ...] = (),
) -> dict[str, str]:
    """The variables the executor's pod gets beyond the container's own `env`. `drop` removes
    keys from the mounted objects first (a ConfigMap without that key: negative rehearsals)."""
    config = executor_config(platform, executor)
    env = dict(KUBELET_ENV)
    mounts = [
        ("ConfigMap", m, m["configMapName"], "configMapKey")
        for m in config.get("configMapAsEnv", [])
    ] + [("Secret", m, m["secretName"], "secretKey") for m in config.get("secretAsEnv", [])]
    for kind, mount, name, key_field in mounts:
        for pair in mount["keyToEnv"]:
            key = pair[key_field]
            ref = {"name": name, "key": key, "optional": bool(mount.get("optional"))}
            if key in drop:
                ref["key"] = f"{key}.dropped-by-the-rehearsal"
            value = manifests.key(kind, ref, namespace)
            if value is not None:
                env[pair["envVar"]] = value
    for item in config.get("fieldPathAsEnv", []):
        env[item["name"]] = field_value(item["fieldPath"], pod)
    return env
