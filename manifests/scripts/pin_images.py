"""Pin the project's own images by digest once they are pushed: `make pin-images`.

Our images (ghcr.io/mlpipe/{pipeline,serving,tfdv}:<version>) have no digest before they are
pushed, so the manifests name them by tag. At release, after `make images` and the push, this
writes the pushed digests to
- manifests/overlays/cloud/kustomization.yaml: kustomize `images:` entries with `digest:` (between
  the `pin-images` markers), so the cloud overlay runs `<image>:<version>@sha256:...`;
- images/digests.env: `MLPIPE_IMAGE_DIGESTS=pipeline=sha256:...,...`, which
  components/common/images.py reads, so `mlpipe compile` puts the same references in the pipeline.
The kind overlay keeps tags: its images are built and loaded locally (`kind load`), they have no
registry digest.

Digests come from the command line (`pipeline=sha256:...`) or, with none given, from the engine:
the RepoDigests of `<registry>/<image>:<version>` for that registry, which docker/podman record on
push (or pull).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("pipeline", "serving", "tfdv")
# the images the cluster manifests run (tfdv only runs as a pipeline task)
MANIFEST_IMAGES = ("pipeline", "serving")
BEGIN = "# BEGIN pin-images (written by `make pin-images`; do not edit by hand)"
END = "# END pin-images"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def parse_digests(items: list[str]) -> dict[str, str]:
    """{"pipeline": "sha256:..."} from ["pipeline=sha256:...", ...]; refuses anything else."""
    found = {}
    for item in items:
        name, sep, digest = item.partition("=")
        if not sep or name not in IMAGES or not DIGEST.fullmatch(digest):
            raise ValueError(f"{item!r}: expected <{'|'.join(IMAGES)}>=sha256:<64 hex>")
        found[name] = digest
    return found


def engine_digests(engine: str, registry: str, version: str) -> dict[str, str]:
    """The registry digest of each pushed `<registry>/<image>:<version>` the engine knows."""
    found = {}
    for name in IMAGES:
        ref = f"{registry}/{name}:{version}"
        out = subprocess.run(
            [engine, "image", "inspect", "--format", "{{json .RepoDigests}}", ref],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            continue
        for repo_digest in json.loads(out.stdout.strip() or "[]") or []:
            repo, _, digest = repo_digest.partition("@")
            if repo == f"{registry}/{name}" and DIGEST.fullmatch(digest):
                found[name] = digest
    return found


def kustomize_block(registry: str, version: str, digests: dict[str, str]) -> str:
    """The managed `images:` block of the cloud overlay."""
    lines = [BEGIN, "images:"]
    for name in MANIFEST_IMAGES:
        lines += [f"  - name: {registry}/{name}", f'    newTag: "{version}"']
        lines.append(f"    digest: {digests[name]}")
    return "\n".join([*lines, END]) + "\n"


def write_kustomization(path: Path, block: str) -> None:
    """Replace the managed block (or append it); the rest of the file stays as it is."""
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        if re.search(r"^images:", text, re.MULTILINE):
            raise ValueError(f"{path}: has its own images: block; move it between the markers")
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def project_version(root: Path) -> str:
    match = re.search(r'^version = "(.+)"', (root / "pyproject.toml").read_text(), re.MULTILINE)
    if not match:
        raise ValueError("pyproject.toml: no version")
    return match.group(1)


def pin(root: Path, registry: str, version: str, digests: dict[str, str]) -> list[Path]:
    """Write both files; every image must have a digest (a partial pin would mix tags in)."""
    missing = [name for name in IMAGES if name not in digests]
    if missing:
        raise ValueError(f"no digest for {', '.join(missing)} (push them first, or pass them)")
    kustomization = root / "manifests" / "overlays" / "cloud" / "kustomization.yaml"
    write_kustomization(kustomization, kustomize_block(registry, version, digests))
    env = root / "images" / "digests.env"
    pairs = ",".join(f"{name}={digests[name]}" for name in IMAGES)
    env.write_text(
        f"# {registry}/<image>:{version}, pinned by `make pin-images`; read by "
        "components/common/images.py\n"
        f"MLPIPE_IMAGE_DIGESTS={pairs}\n"
    )
    return [kustomization, env]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("digests", nargs="*", help="<image>=sha256:<digest>, one per image")
    parser.add_argument("--registry", default="ghcr.io/mlpipe")
    parser.add_argument("--version", default=None, help="default: pyproject.toml's")
    parser.add_argument("--engine", default="docker", help="where to read pushed digests")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    version = args.version or project_version(args.root)
    try:
        digests = (
            parse_digests(args.digests)
            if args.digests
            else engine_digests(args.engine, args.registry, version)
        )
        written = pin(args.root, args.registry, version, digests)
    except ValueError as exc:
        print(f"pin-images: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"pin-images: wrote {path.relative_to(args.root)}")
    print("pin-images: compile with `set -a; . images/digests.env; set +a; mlpipe compile ...`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
