"""Supply chain: every third-party image is pinned by digest (tag kept for the reader), the
Dockerfiles take their base through the BASE build argument (digest-pinned by default), and our
own images, which have no digest before they are pushed, are pinned at release by
`make pin-images` (cloud overlay and compiled pipeline). Offline: kubectl's built-in kustomize,
`make -n`, a compile in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from tests.packaging.dockerfile import parse
from tests.packaging.render import render

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGEST = r"sha256:[0-9a-f]{64}"
# registry/name:tag@sha256:... — the tag says what it is, the digest what it must be
PINNED = re.compile(rf"^(?P<name>[\w.\-/]+):(?P<tag>[\w.\-]+)@{DIGEST}$")
OWN = re.compile(r"^ghcr\.io/mlpipe/(pipeline|serving|tfdv):")
OFFICIAL_BASE = re.compile(rf"^docker\.io/library/python:3\.11\.14-slim-bookworm@{DIGEST}$")
DOCKERFILES = sorted((REPO_ROOT / "images").glob("*/Dockerfile"))

# Third-party images that cannot be pinned, each with the reason (empty: every one is pinned).
UNPINNED: dict[str, str] = {}

# What `make kind-up` installs from upstream (manifests/scripts/kind-up.sh), and whether the images
# those upstream manifests/charts name are pinned by digest. No image registry is reachable where
# this project is developed, so digests of the upstream tags cannot be resolved here to override
# them; manifests/README.md (Image digests) lists the same.
UPSTREAM_INSTALLS = {
    "cert-manager": "not pinned: the release manifest names quay.io/jetstack images by tag",
    "kubeflow/pipelines": "not pinned: KFP's kustomize manifests name images by tag",
    "kubeflow/katib": "not pinned: Katib's kustomize manifests name images by tag",
    "knative/serving": "pinned upstream: the release manifests name images by digest only",
    "knative/net-kourier": "not pinned: the controller is named by digest, but the Envoy "
    "gateway by a floating docker.io/envoyproxy/envoy:v1.x-latest tag",
    "kserve": "not pinned: the kserve-resources chart names images by tag",
}


def _manifest_images() -> dict[str, list[str]]:
    """Every `image:` value in the files under manifests/ (rendered or not) and kind-config."""
    found: dict[str, list[str]] = {}
    files = [*sorted((REPO_ROOT / "manifests").rglob("*.yaml")), REPO_ROOT / "kind-config.yaml"]
    for path in files:
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*(?:-\s+)?image:\s*[\"']?([^\s\"'#]+)", line)
            if match:
                found.setdefault(match.group(1), []).append(str(path.relative_to(REPO_ROOT)))
    return found


def _rendered_images(path: Path) -> set[str]:
    from tests.packaging.render import containers

    return {c["image"] for obj in render(path) for _pod, c in containers(obj)}


def third_party_errors(images: dict[str, list[str]] | set[str]) -> list[str]:
    """Third-party references that are neither pinned by tag and digest nor listed as unpinned."""
    errors = []
    for image in sorted(images):
        if OWN.match(image) or image in UNPINNED:
            continue
        if not PINNED.match(image):
            errors.append(f"{image}: not pinned as <name>:<tag>@sha256:<digest>")
    return errors


def test_the_check_rejects_a_tag_only_or_digest_only_reference():
    assert third_party_errors({"docker.io/library/postgres:17.6-bookworm"})
    assert third_party_errors({"docker.io/library/postgres@sha256:" + "a" * 64})  # no tag
    assert third_party_errors({"docker.io/library/postgres:17.6@sha256:abc"})
    assert not third_party_errors({"docker.io/library/postgres:17.6-bookworm@sha256:" + "a" * 64})


def test_every_third_party_image_in_the_manifests_is_pinned_by_digest():
    images = _manifest_images()
    assert "kind-config.yaml" in {f for files in images.values() for f in files}
    assert any("postgres" in i for i in images) and any("minio" in i for i in images)
    assert third_party_errors(images) == []
    for image, reason in UNPINNED.items():
        warnings.warn(f"image not pinned by digest: {image}: {reason}", stacklevel=1)


@pytest.mark.parametrize("overlay", ["kind", "cloud"])
def test_every_rendered_third_party_image_is_pinned_by_digest(overlay):
    images = _rendered_images(REPO_ROOT / "manifests" / "overlays" / overlay)
    assert third_party_errors(images) == []
    # the kind overlay runs what it loads: our images by tag (no registry digest exists locally)
    own = {i for i in images if OWN.match(i)}
    assert own, "no project image rendered"


def test_upstream_installs_are_all_classified_and_the_unpinned_ones_reported():
    script = (REPO_ROOT / "manifests" / "scripts" / "kind-up.sh").read_text()
    sources = {
        "cert-manager": "cert-manager/cert-manager/releases",
        "kubeflow/pipelines": "github.com/kubeflow/pipelines/manifests",
        "kubeflow/katib": "github.com/kubeflow/katib.git/manifests",
        "knative/serving": "knative/serving/releases",
        "knative/net-kourier": "knative/net-kourier/releases",
        "kserve": "oci://ghcr.io/kserve/charts",
    }
    assert sources.keys() == UPSTREAM_INSTALLS.keys()
    for name, marker in sources.items():
        assert marker in script, f"kind-up.sh no longer installs {name} from {marker}"
    # every remote install in the script is one of those (a new one must be classified)
    remote = re.findall(
        r"(https://github\.com/[\w.\-]+/[\w.\-]+|github\.com/[\w.\-]+/[\w.\-]+"
        r"|oci://[\w.\-/]+)",
        script,
    )
    unknown = [
        r
        for r in remote
        if not any(m.split("/releases")[0] in r or r in m for m in sources.values())
    ]
    assert unknown == [], f"unclassified upstream installs in kind-up.sh: {unknown}"
    for name, status in UPSTREAM_INSTALLS.items():
        if status.startswith("not pinned"):
            warnings.warn(f"upstream install {name}: {status}", stacklevel=1)


# ---------------------------------------------------------------- Dockerfiles


def _global_args(text: str) -> dict[str, str]:
    """ARG name=default lines before the first FROM (the ones a FROM may use)."""
    found = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.upper().startswith("FROM "):
            break
        match = re.match(r"^ARG\s+(\w+)(?:=(\S+))?$", stripped)
        if match:
            found[match.group(1)] = match.group(2) or ""
    return found


def base_errors(text: str) -> list[str]:
    """The Dockerfile takes its base through `ARG BASE` (digest-pinned official default) and every
    stage starts from ${BASE} or from another stage."""
    errors = []
    args = _global_args(text)
    if "BASE" not in args:
        return ["no `ARG BASE=...` before the first FROM"]
    if not OFFICIAL_BASE.match(args["BASE"]):
        errors.append(f"ARG BASE={args['BASE']}: not the official base pinned by tag and digest")
    stages = parse(text, resolve_args=False)
    aliases = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.base not in aliases and stage.base not in ("${BASE}", "$BASE"):
            errors.append(f"FROM {stage.base}: not ${{BASE}} nor a stage")
    return errors


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_takes_the_digest_pinned_base_through_the_build_arg(path):
    assert base_errors(path.read_text()) == []


def test_all_dockerfiles_share_one_base():
    bases = {_global_args(p.read_text())["BASE"] for p in DOCKERFILES}
    assert len(DOCKERFILES) == 3 and len(bases) == 1, bases


def test_the_base_check_rejects_a_hard_coded_or_tag_only_base():
    pinned = "docker.io/library/python:3.11.14-slim-bookworm@sha256:" + "a" * 64
    assert base_errors("FROM python:3.11.14-slim-bookworm\n") == [
        "no `ARG BASE=...` before the first FROM"
    ]
    assert base_errors(f"ARG BASE={pinned}\nFROM ${{BASE}} AS a\nFROM a\n") == []
    assert base_errors(f"ARG BASE={pinned}\nFROM ${{BASE}} AS a\nFROM {pinned}\n")
    tag_only = "ARG BASE=docker.io/library/python:3.11.14-slim-bookworm\nFROM ${BASE}\n"
    assert base_errors(tag_only)


def test_dockerfiles_keep_require_hashes_for_their_hashed_locks():
    for path in DOCKERFILES:
        assert "--require-hashes -r /tmp/build-requirements.lock" in path.read_text(), path
    for image in ("pipeline", "serving"):
        text = (REPO_ROOT / "images" / image / "Dockerfile").read_text()
        assert "--require-hashes -r /tmp/requirements.lock" in text, image


def _make_dry_run(*args: str) -> str:
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "images", "IMAGES=serving", "DOCKER=podman", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def test_make_images_passes_a_substitute_base_as_the_build_arg():
    assert "--build-arg BASE=localhost/stand-in:1" in _make_dry_run(
        "BASE_IMAGE=localhost/stand-in:1"
    )
    assert "--build-arg BASE" not in _make_dry_run("BASE_IMAGE=")  # the pinned default


def test_the_rehearsal_builds_on_the_base_container_host_printed():
    from tests.rehearsal.rehearsal import build_command, parse_engine_output

    printed = (
        "base-image: ...\nDOCKER_HOST=unix:///run/podman/podman.sock\nBASE_IMAGE=localhost/b:1\n"
    )
    engine = parse_engine_output(printed)
    assert engine == {
        "DOCKER_HOST": "unix:///run/podman/podman.sock",
        "BASE_IMAGE": "localhost/b:1",
    }
    assert build_command(engine.get("BASE_IMAGE"))[-1] == "BASE_IMAGE=localhost/b:1"
    assert not any(a.startswith("BASE_IMAGE") for a in build_command(None))


def test_the_stand_in_is_never_named_as_the_official_image():
    script = (REPO_ROOT / "tests" / "rehearsal" / "base_image.sh").read_text()
    default = re.search(r"^STAND_IN=\$\{BASE_STAND_IN:-(\S+)\}$", script, re.MULTILINE)
    assert default and default.group(1).startswith("localhost/"), "stand-in must have its own name"
    assert 'import "${quiet[@]}"' in script and '- "$STAND_IN"' in script
    assert 'echo "BASE_IMAGE=$STAND_IN"' in script


# ---------------------------------------------------------------- our own images


def _pin_module():
    path = REPO_ROOT / "manifests" / "scripts" / "pin_images.py"
    spec = importlib.util.spec_from_file_location("pin_images", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_digests() -> dict[str, str]:
    return {
        name: "sha256:" + (c * 64)
        for name, c in zip(("pipeline", "serving", "tfdv"), "abc", strict=True)
    }


def test_pin_images_pins_every_own_image_the_cloud_overlay_runs(tmp_path):
    pin = _pin_module()
    shutil.copytree(REPO_ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / "images").mkdir()
    version = pin.project_version(REPO_ROOT)
    digests = _fake_digests()
    pin.pin(tmp_path, "ghcr.io/mlpipe", version, digests)
    pin.pin(tmp_path, "ghcr.io/mlpipe", version, digests)  # idempotent: replaces its block
    text = (tmp_path / "manifests/overlays/cloud/kustomization.yaml").read_text()
    assert text.count(pin.BEGIN) == 1
    cloud = _rendered_images(tmp_path / "manifests" / "overlays" / "cloud")
    own = {i for i in cloud if OWN.match(i)}
    expected = {f"ghcr.io/mlpipe/{n}:{version}@{digests[n]}" for n in ("pipeline", "serving")}
    assert own == expected
    # kind runs the images it loads: by tag, never a registry digest they do not have
    kind = _rendered_images(tmp_path / "manifests" / "overlays" / "kind")
    assert {i for i in kind if OWN.match(i)} == {
        f"ghcr.io/mlpipe/{n}:{version}" for n in ("pipeline", "serving")
    }
    env = (tmp_path / "images" / "digests.env").read_text()
    from components.common.images import digests as parse_env

    line = next(v for v in env.splitlines() if v.startswith("MLPIPE_IMAGE_DIGESTS="))
    assert parse_env(line.split("=", 1)[1]) == digests


def test_pin_images_refuses_a_partial_or_malformed_pin(tmp_path):
    pin = _pin_module()
    with pytest.raises(ValueError, match="no digest for serving, tfdv"):
        pin.pin(tmp_path, "ghcr.io/mlpipe", "0.1.0", {"pipeline": "sha256:" + "a" * 64})
    with pytest.raises(ValueError):
        pin.parse_digests(["pipeline=sha256:abc"])
    with pytest.raises(ValueError):
        pin.parse_digests(["other=sha256:" + "a" * 64])


def test_the_repository_has_no_stale_pin():
    # before a release nothing is pinned; once pinned, both files agree
    env = REPO_ROOT / "images" / "digests.env"
    cloud = (REPO_ROOT / "manifests/overlays/cloud/kustomization.yaml").read_text()
    pin = _pin_module()
    assert env.exists() == (pin.BEGIN in cloud)


def test_image_refs_carry_the_digest_when_pinned(monkeypatch):
    from components.common import images

    pinned = _fake_digests()
    assert images.image_ref("pipeline", pinned).endswith(f":{images.VERSION}@{pinned['pipeline']}")
    assert "@" not in images.image_ref("pipeline", {})
    monkeypatch.setenv("MLPIPE_IMAGE_DIGESTS", "pipeline=sha256:bad")
    with pytest.raises(ValueError):
        images.image_ref("pipeline")


def test_compiled_pipeline_names_the_pinned_images(tmp_path):
    """With MLPIPE_IMAGE_DIGESTS set (images/digests.env), every task image in the compiled
    pipeline is `<image>:<version>@<digest>` (a fresh interpreter: images are read at import)."""
    digests = _fake_digests()
    out = tmp_path / "pipeline.yaml"
    env = {
        **os.environ,
        "MLPIPE_IMAGE_DIGESTS": ",".join(f"{k}={v}" for k, v in digests.items()),
    }
    env.pop("MLPIPE_IMAGE_REGISTRY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "compile", "--output", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (spec,) = [d for d in yaml.safe_load_all(out.read_text()) if d and "deploymentSpec" in d]
    used = {
        e["container"]["image"]
        for e in spec["deploymentSpec"]["executors"].values()
        if "container" in e
    }
    assert used
    for image in used:
        name = OWN.match(image)
        assert name, image
        assert image.endswith("@" + digests[name.group(1)]), image


def test_the_dockerfile_reader_reads_from_through_the_global_args():
    text = (
        "ARG BASE=docker.io/library/python:3.11@sha256:"
        + "a" * 64
        + "\nFROM ${BASE} AS a\nFROM a\n"
    )
    assert parse(text)[0].base.endswith("@sha256:" + "a" * 64)
    assert parse(text, resolve_args=False)[0].base == "${BASE}"
