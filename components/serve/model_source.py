"""Where a served model comes from: a model dir, or a registered MLflow model (by alias/version).

A model dir is what the train stage writes: model.joblib (the fitted sklearn Pipeline that predicts
from raw rows) + feature_spec.json. A registered model, as the track stage logs it, is an MLflow
sklearn model whose extra_files/ hold the same feature_spec.json; `fetch_registered_model`
downloads it and `load_model_source` reads either layout.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.artifacts import FEATURE_SPEC_FILE, MODEL_FILE, load_model, sha256_dir

MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w.-]+)|/(?P<version>\d+))$")


@dataclass
class LoadedModel:
    pipeline: Any
    spec: dict[str, Any]
    version: str  # the registry version, else a short content digest of the model dir
    source: str


class ModelSourceError(ValueError):
    """The model cannot be found or read."""


def load_model_source(path: str | Path, version: str | None = None) -> LoadedModel:
    """A model dir (model.joblib + feature_spec.json) or a downloaded MLflow model dir."""
    path = Path(path)
    if (path / MODEL_FILE).is_file() and (path / FEATURE_SPEC_FILE).is_file():
        pipeline, spec = load_model(path)
    elif (path / "MLmodel").is_file():
        spec_file = path / "extra_files" / FEATURE_SPEC_FILE
        if not spec_file.is_file():
            raise ModelSourceError(f"{path}: the MLflow model carries no {FEATURE_SPEC_FILE}")
        import mlflow.sklearn

        pipeline = mlflow.sklearn.load_model(str(path))
        spec = json.loads(spec_file.read_text())
    else:
        raise ModelSourceError(
            f"{path}: not a model dir ({MODEL_FILE} + {FEATURE_SPEC_FILE}) nor an MLflow model"
        )
    if not hasattr(pipeline, "predict_proba") or not spec.get("features"):
        raise ModelSourceError(f"{path}: no predict_proba or no features in the feature spec")
    return LoadedModel(pipeline, spec, version or "sha256:" + sha256_dir(path)[:12], str(path))


def fetch_registered_model(uri: str, dest: str | Path, tracking_uri: str = "") -> tuple[Path, str]:
    """Download `models:/<name>@<alias>` or `models:/<name>/<version>` into `dest`.

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
            version = client.get_model_version_by_alias(name, match["alias"]).version
        else:
            version = client.get_model_version(name, match["version"]).version
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(dest)
        )
    except MlflowException as exc:
        raise ModelSourceError(f"{uri}: {exc.message}") from exc
    return Path(local), str(version)


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


def load_model_uri(uri: str, dest: str | Path | None = None, tracking_uri: str = "") -> LoadedModel:
    """A model dir path, or a models:/ URI downloaded into `dest` (default: a new temporary
    folder) first."""
    if uri.startswith("models:/"):
        dest = dest or tempfile.mkdtemp(prefix="mlpipe-model-")
        local, version = fetch_registered_model(uri, dest, tracking_uri)
        loaded = load_model_source(local, version)
        loaded.source = uri
        return loaded
    return load_model_source(uri)
