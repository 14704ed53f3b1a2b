"""Container images of the stages. Tags are pinned to the project version, never `:latest`
(kind would then always pull, and fail). Override the registry with MLPIPE_IMAGE_REGISTRY."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("mlpipe")
except PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0.0.0"

REGISTRY = os.environ.get("MLPIPE_IMAGE_REGISTRY", "ghcr.io/mlpipe")
PIPELINE_IMAGE = f"{REGISTRY}/pipeline:{VERSION}"
TFDV_IMAGE = f"{REGISTRY}/tfdv:{VERSION}"
