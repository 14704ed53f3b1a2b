"""Where a served model comes from: a model dir, or a registered MLflow model (by alias/version).

A model dir is what the train stage writes: model.joblib (the fitted sklearn Pipeline that predicts
from raw rows) + feature_spec.json. A registered model, as the track stage logs it, is an MLflow
sklearn model whose extra_files/ hold the same feature_spec.json; `fetch_registered_model`
downloads it and `load_model_source` reads either layout.

Nothing is unpickled before its files are checked (components/common/model_integrity.py):
- a registered version: against the manifest register recorded on the version's tags;
- a model dir: against its MANIFEST.json, and the manifest against `expected_sha256` when given;
- an MLflow model dir (KServe's /mnt/models): against `expected_sha256` (the server's
  `--model-sha256`, or MLPIPE_MODEL_SHA256 that the deploy stage puts in the InferenceService
  from the registry tag), or its MANIFEST.json (a download verified against the registry).
ModelIntegrityError otherwise.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common import model_integrity
from components.common.artifacts import FEATURE_SPEC_FILE, MODEL_FILE, load_model
from components.common.model_integrity import ModelIntegrityError

MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w.-]+)|/(?P<version>\d+))$")


@dataclass
class LoadedModel:
    pipeline: Any
    spec: dict[str, Any]
    version: str  # the registry version, else a short content digest of the model dir
    source: str


class ModelSourceError(ValueError):
    """The model cannot be found or read."""


def load_model_source(
    path: str | Path,
    version: str | None = None,
    expected_sha256: str | None = None,
    recorded: dict[str, str] | None = None,
) -> LoadedModel:
    """A model dir (model.joblib + feature_spec.json) or a downloaded MLflow model dir, loaded
    after its files were checked (module docstring). `expected_sha256` defaults to
    MLPIPE_MODEL_SHA256; `recorded` (default MLPIPE_MODEL_MANIFEST) names the files that
    differ."""
    import os

    path = Path(path)
    expected = expected_sha256 or os.environ.get(model_integrity.SHA256_ENV) or None
    if (path / MODEL_FILE).is_file() and (path / FEATURE_SPEC_FILE).is_file():
        pipeline, spec = load_model(path, expected)
        digest = model_integrity.digest_of(model_integrity.manifest(path))
    elif (path / "MLmodel").is_file():
        spec_file = path / "extra_files" / FEATURE_SPEC_FILE
        if not spec_file.is_file():
            raise ModelSourceError(f"{path}: the MLflow model carries no {FEATURE_SPEC_FILE}")
        digest = verify_mlflow_dir(path, expected, recorded)
        import mlflow.sklearn

        pipeline = mlflow.sklearn.load_model(str(path))
        spec = json.loads(spec_file.read_text())
    else:
        raise ModelSourceError(
            f"{path}: not a model dir ({MODEL_FILE} + {FEATURE_SPEC_FILE}) nor an MLflow model"
        )
    if not hasattr(pipeline, "predict_proba") or not spec.get("features"):
        raise ModelSourceError(f"{path}: no predict_proba or no features in the feature spec")
    return LoadedModel(pipeline, spec, version or "sha256:" + digest[:12], str(path))


def verify_mlflow_dir(
    path: Path, expected: str | None, recorded: dict[str, str] | None = None
) -> str:
    """The manifest digest of an MLflow model dir once checked: against `expected`, else
    against its MANIFEST.json; refused with neither (unless MLPIPE_ALLOW_UNVERIFIED_MODELS)."""
    import os

    what = f"MLflow model {path}"
    if expected:
        if recorded is None:
            recorded = model_integrity.parse_manifest(
                os.environ.get(model_integrity.MANIFEST_ENV), expected
            )
        return model_integrity.verify(path, expected, what, recorded=recorded)
    if (path / model_integrity.MANIFEST_FILE).is_file():
        return model_integrity.verify_model_dir(path, None, what)
    if model_integrity.unverified_allowed():
        return model_integrity.digest_of(model_integrity.manifest(path))
    raise ModelIntegrityError(
        f"{what}: no expected manifest digest to check it against before unpickling: pass "
        f"--model-sha256 (or {model_integrity.SHA256_ENV}; the deploy stage sets it from the "
        f"version's {model_integrity.MANIFEST_SHA256_TAG} tag), or serve models:/<name>/<version>"
    )


def fetch_registered_model(uri: str, dest: str | Path, tracking_uri: str = "") -> tuple[Path, str]:
    """Download `models:/<name>@<alias>` or `models:/<name>/<version>` into `dest` and check its
    files against the manifest recorded on the version (ModelIntegrityError naming the version
    and the files otherwise). Writes MANIFEST.json into the download, so a server started on
    that folder later checks it again.

    Returns (local dir, registry version). MLFLOW_TRACKING_URI (or `tracking_uri`) names the
    store."""
    match = MODEL_URI.match(uri)
    if not match:
        raise ModelSourceError(
            f"model URI {uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>"
        )
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.common.mlflow_utils import configure

    configure(tracking_uri)
    client = mlflow.MlflowClient()
    name = match["name"]
    try:
        if match["alias"]:
            mv = client.get_model_version_by_alias(name, match["alias"])
        else:
            mv = client.get_model_version(name, match["version"])
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dest)
        )
    except MlflowException as exc:
        raise ModelSourceError(f"{uri}: {exc.message}") from exc
    if model_integrity.verify_version(local, mv.tags or {}, f"{name} version {mv.version}"):
        model_integrity.write_manifest(local)
    return Path(local), str(mv.version)


def alias_version(uri: str, tracking_uri: str = "") -> str:
    """The version `models:/<name>@<alias>` names now."""
    match = MODEL_URI.match(uri)
    if not match or not match["alias"]:
        raise ModelSourceError(f"model URI {uri!r}: expected models:/<name>@<alias>")
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.common.mlflow_utils import configure

    configure(tracking_uri)
    try:
        mv = mlflow.MlflowClient().get_model_version_by_alias(match["name"], match["alias"])
    except MlflowException as exc:
        raise ModelSourceError(f"{uri}: {exc.message}") from exc
    return str(mv.version)


def load_model_uri(
    uri: str,
    dest: str | Path | None = None,
    tracking_uri: str = "",
    expected_sha256: str | None = None,
) -> LoadedModel:
    """A model dir path (checked against `expected_sha256` when given), or a models:/ URI
    downloaded into `dest` (default: a new temporary folder) and checked against the registry
    first."""
    if uri.startswith("models:/"):
        dest = dest or tempfile.mkdtemp(prefix="mlpipe-model-")
        local, version = fetch_registered_model(uri, dest, tracking_uri)
        loaded = load_model_source(local, version)
        loaded.source = uri
        return loaded
    return load_model_source(uri, expected_sha256=expected_sha256)
