"""Container images of the stages. Tags are pinned to the project version, never `:latest`
(kind would then always pull, and fail). Override the registry with MLPIPE_IMAGE_REGISTRY.

At release the pushed images are also pinned by digest: MLPIPE_IMAGE_DIGESTS
("pipeline=sha256:...,tfdv=sha256:...", written to images/digests.env by `make pin-images`)
makes every reference `<registry>/<image>:<version>@sha256:...`, so a compiled pipeline names
exactly the image that was pushed, whatever later happens to the tag."""

from __future__ import annotations

import os
import re
from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("mlpipe")
except PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0.0.0"

REGISTRY = os.environ.get("MLPIPE_IMAGE_REGISTRY", "ghcr.io/mlpipe")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def digests(text: str | None) -> dict[str, str]:
    """{"pipeline": "sha256:..."} from "pipeline=sha256:...,tfdv=sha256:..." (empty: none)."""
    found: dict[str, str] = {}
    for item in (text or "").replace(" ", ",").split(","):
        if not item:
            continue
        name, sep, digest = item.partition("=")
        if not sep or not _DIGEST.fullmatch(digest):
            raise ValueError(f"MLPIPE_IMAGE_DIGESTS: {item!r} is not <image>=sha256:<64 hex>")
        found[name] = digest
    return found


def image_ref(name: str, digest_map: dict[str, str] | None = None) -> str:
    """`<registry>/<name>:<version>`, plus `@<digest>` when the image is pinned."""
    pinned = digests(os.environ.get("MLPIPE_IMAGE_DIGESTS")) if digest_map is None else digest_map
    ref = f"{REGISTRY}/{name}:{VERSION}"
    return f"{ref}@{pinned[name]}" if name in pinned else ref


PIPELINE_IMAGE = image_ref("pipeline")
TFDV_IMAGE = image_ref("tfdv")
