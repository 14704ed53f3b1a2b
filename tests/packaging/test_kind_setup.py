"""The kind setup script cannot run here (no Docker, no kind): check what can be checked offline —
it parses, fails fast, pins every release it installs (to versions the project needs), and wires
the pieces the rest of the repository defines."""

import os
import re
import shutil
import subprocess
from importlib.metadata import version

import pytest

from tests.packaging.render import MANIFESTS, REPO_ROOT

SCRIPTS = MANIFESTS / "scripts"
UP = SCRIPTS / "kind-up.sh"


def _defaults() -> dict[str, str]:
    """NAME -> default of every `NAME="${NAME:-default}"` line."""
    return dict(re.findall(r'^(\w+)="\$\{\1:-([^}]*)\}"$', UP.read_text(), re.MULTILINE))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.lstrip("v").split("."))


@pytest.mark.parametrize("script", ["kind-up.sh", "kind-down.sh"])
def test_scripts_parse_fail_fast_and_are_executable(script):
    path = SCRIPTS / script
    if shutil.which("bash") is None:  # pragma: no cover - bash is everywhere the project runs
        pytest.skip("bash not found")
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert "set -euo pipefail" in path.read_text()
    assert os.access(path, os.X_OK)


def test_every_release_is_pinned_to_what_the_project_needs():
    defaults = _defaults()
    pinned = ("CERT_MANAGER_VERSION", "KFP_VERSION", "KATIB_VERSION", "KSERVE_VERSION")
    for name in (*pinned, "KNATIVE_VERSION", "KOURIER_VERSION"):
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", defaults[name]), (name, defaults[name])
    assert _version(defaults["KATIB_VERSION"]) >= (0, 18, 0)  # log-scale search spaces
    assert _version(defaults["KSERVE_VERSION"]) >= (0, 20, 0)  # "Knative" as the mode's name
    # the backend the SDK compiles for: same minor release
    assert _version(defaults["KFP_VERSION"])[:2] == _version(version("kfp"))[:2]
    # Knative mode: where canaryTrafficPercent splits traffic (Standard mode does not split)
    assert defaults["KSERVE_DEPLOYMENT_MODE"] == "Knative"
    # Knative Serving the release KServe 0.20 is tested with, and Kourier of the same minor
    assert _version(defaults["KNATIVE_VERSION"])[:2] == (1, 21)
    assert _version(defaults["KOURIER_VERSION"])[:2] == _version(defaults["KNATIVE_VERSION"])[:2]
    text = UP.read_text()
    assert "ingress-class" in text and "kourier.ingress.networking.knative.dev" in text
    assert "disableIstioVirtualHost=true" in text  # no Istio on kind
    assert "?ref=master" not in text and ":latest" not in text


def test_the_script_waits_for_each_step_and_applies_the_kind_overlay():
    text = UP.read_text()
    assert text.count("wait --for=condition=Available") >= 4
    assert "wait --for condition=established" in text
    assert "apply -k manifests/overlays/kind" in text
    assert "wait --for=condition=Complete job/minio-buckets" in text
    assert "wait --for=condition=Complete job/minio-readonly-user" in text
    assert "mlpipe compile" in text and "mlpipe submit --host" in text
    assert "kind create cluster" in text and "--config kind-config.yaml" in text


def test_make_targets_drive_the_scripts():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^kind-up:.*\n(\t.*\n)*\t.*manifests/scripts/kind-up\.sh", makefile, re.M)
    assert re.search(r"^kind-down:.*\n(\t.*\n)*\t.*manifests/scripts/kind-down\.sh", makefile, re.M)
    for target in ("lock-images:", "images:", "kind-load:"):
        assert re.search(rf"^{target}", makefile, re.MULTILINE), target


def test_kind_config_is_a_pinned_two_node_cluster():
    import yaml

    from tests.packaging.render import kind_kubernetes_version

    config = yaml.safe_load((REPO_ROOT / "kind-config.yaml").read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker"]
    assert _version(kind_kubernetes_version()) >= (1, 32, 0)  # KServe 0.20's minimum
