"""The rendered manifests as a kubelet reads them (test support): ConfigMaps and Secrets by
namespace and name, and a container's environment resolved from `env` and `envFrom` the way the
kubelet resolves it (Kubernetes docs "Define Environment Variables for a Container" and
"Configure a Pod to Use a ConfigMap"; `$(VAR)` expansion in command and args as in
pkg/kubelet/kuberuntime `expandContainerCommandAndArgs`).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.packaging.render import MANIFESTS, render


class PodStartError(RuntimeError):
    """What the kubelet reports as CreateContainerConfigError: a required key is missing."""


@dataclass
class Rendered:
    objects: list[dict[str, Any]]

    @classmethod
    def overlay(cls, name: str = "kind") -> Rendered:
        return cls(render(Path(MANIFESTS) / "overlays" / name))

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        for obj in self.objects:
            meta = obj["metadata"]
            same = obj["kind"] == kind and meta["name"] == name
            if same and namespace in (None, meta.get("namespace")):
                return obj
        return None

    def config_map(self, name: str, namespace: str) -> dict[str, str] | None:
        obj = self.find("ConfigMap", name, namespace)
        return None if obj is None else dict(obj.get("data") or {})

    def secret(self, name: str, namespace: str) -> dict[str, str] | None:
        obj = self.find("Secret", name, namespace)
        if obj is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        return data | dict(obj.get("stringData") or {})

    def container(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        obj = self.find(kind, name, namespace)
        if obj is None:
            raise KeyError(f"no {kind} {namespace}/{name} in the rendered manifests")
        return obj["spec"]["template"]["spec"]["containers"][0]

    def key(self, kind: str, ref: dict[str, Any], namespace: str) -> str | None:
        """A `configMapKeyRef` / `secretKeyRef` value; None when optional and missing."""
        source = (self.config_map if kind == "ConfigMap" else self.secret)(ref["name"], namespace)
        if source is not None and ref["key"] in source:
            return source[ref["key"]]
        if ref.get("optional"):
            return None
        raise PodStartError(f"{kind} {namespace}/{ref['name']} has no key {ref['key']!r}")

    def container_env(self, container: dict[str, Any], namespace: str) -> dict[str, str]:
        """`envFrom` first, then `env` (which wins), as the kubelet does."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                data = self.config_map(source["configMapRef"]["name"], namespace)
            else:
                data = self.secret(source["secretRef"]["name"], namespace)
            env.update(data or {})
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(item["value"], env)
                continue
            ref = item["valueFrom"]
            kind = "ConfigMap" if "configMapKeyRef" in ref else "Secret"
            value = self.key(kind, ref.get("configMapKeyRef") or ref["secretKeyRef"], namespace)
            if value is not None:
                env[item["name"]] = value
        return env

    def secret_volumes(self, kind: str, name: str, namespace: str, root: Path) -> dict[str, Path]:
        """The first container's Secret volumes as the kubelet projects them (each `items` key to
        its `path`, else every key), written under `root`: mount path -> the local folder."""
        pod = self.find(kind, name, namespace)["spec"]["template"]["spec"]
        volumes = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
        folders: dict[str, Path] = {}
        for mount in pod["containers"][0].get("volumeMounts", []):
            source = volumes.get(mount["name"])
            if source is None:
                continue
            data = self.secret(source["secretName"], namespace)
            if data is None:
                raise PodStartError(f"Secret {namespace}/{source['secretName']} not found")
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            folder = root / mount["name"]
            for item in items:
                if item["key"] not in data:
                    raise PodStartError(f"Secret {source['secretName']} has no {item['key']!r}")
                target = folder / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]])
            folders[mount["mountPath"]] = folder
        return folders


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined one kept."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


# Kubernetes resource quantities (apimachinery pkg/api/resource: binary suffixes Ki..Ei, decimal
# k..E, CPU millicores "m"): the suffixes our manifests use
_BYTE_SUFFIXES = {
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def quantity_bytes(value: str | int) -> int:
    """A memory quantity ("768Mi", "1Gi", "500M", "1048576") in bytes."""
    text = str(value)
    for suffix, factor in _BYTE_SUFFIXES.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def quantity_cpus(value: str | int | float) -> float:
    """A CPU quantity ("500m", "2", 1.5) in cores."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
