"""Register: make the logged model a version of the registered model and point `champion` at it.

Idempotent: a model whose content digest is already registered is not registered again; its
version keeps (or gets) the alias. The champion it replaces becomes `previous`.
"""

from __future__ import annotations

from typing import Any

from components.common.mlflow_utils import configure

STAGE = "register"
CHAMPION, PREVIOUS = "champion", "previous"
DIGEST_TAG = "mlpipe.model_digest"


def find_version(client: Any, name: str, digest: str) -> Any | None:
    versions = client.search_model_versions(f"name = '{name}' and tags.`{DIGEST_TAG}` = '{digest}'")
    return min(versions, key=lambda v: int(v.version)) if versions else None


def current_alias(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote(client: Any, name: str, version: str) -> str | None:
    """Point `champion` at `version`; the old champion becomes `previous`. Returns the old one."""
    old = current_alias(client, name, CHAMPION)
    if old is not None and str(old.version) == version:
        return None
    if old is not None:
        client.set_registered_model_alias(name, PREVIOUS, old.version)
    client.set_registered_model_alias(name, CHAMPION, version)
    return str(old.version) if old is not None else None


def run(
    registered_model: str,
    model_uri: str,
    run_id: str,
    model_digest: str,
    metrics: dict[str, float],
    lineage: dict[str, str],
) -> dict[str, Any]:
    import mlflow

    configure()
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(registered_model)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(registered_model)

    existing = find_version(client, registered_model, model_digest)
    if existing is not None:
        version, created = str(existing.version), False
    else:
        tags = {DIGEST_TAG: model_digest, **{f"mlpipe.{k}": str(v) for k, v in lineage.items()}}
        tags.update({f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()})
        mv = client.create_model_version(
            registered_model, source=model_uri, run_id=run_id, tags=tags
        )
        version, created = str(mv.version), True
    replaced = promote(client, registered_model, version)
    return {
        "registered_model": registered_model,
        "version": version,
        "created": created,
        "alias": CHAMPION,
        "previous_champion": replaced,
    }
