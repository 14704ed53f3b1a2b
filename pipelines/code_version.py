"""Code versions: a digest per stage of the code it runs (its folder + the shared runtime).

Each task carries its stage's digest as an environment variable, which is part of kfp.local's cache
key: editing a stage re-runs that stage (and, through changed artifacts, what follows), editing
the shared runtime re-runs every stage. The shared runtime is components/common and the model
server library components/serve, which common (serving_metrics) and stages (deploy, monitor's
request-log reader) import.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
ENV_NAME = "MLPIPE_CODE_VERSION"
SHARED = ("common", "serve")


def _digest_files(files: list[Path], digest: hashlib._Hash) -> None:
    for file in sorted(files):
        digest.update(str(file.relative_to(COMPONENTS)).encode())
        digest.update(file.read_bytes())


@cache
def stage_version(stage: str) -> str:
    digest = hashlib.sha256()
    # subpackages too: components/ingest/sources/, components/common/config_sections/
    for folder in dict.fromkeys((*SHARED, stage)):  # `serve` itself: its files once
        _digest_files(list((COMPONENTS / folder).rglob("*.py")), digest)
    return digest.hexdigest()[:16]


@cache
def package_version() -> str:
    """One digest of all stage code: the `code_version` lineage tag of a model."""
    digest = hashlib.sha256()
    _digest_files(list(COMPONENTS.rglob("*.py")), digest)
    return digest.hexdigest()[:16]
