"""Register: make the logged model a version of the registered model, alias `challenger`.

The version passed the quality gate (this step runs only then). Promotion to `champion` is the
deploy stage's move, after a successful rollout (or `mlpipe approve` when
`deployment.approval_required` is set); components/common/registry.py holds the state machine.

Idempotent: a model whose content digest is already registered is not registered again; its
version keeps (or gets) the aliases. A version that was rejected (a canary rolled back, `mlpipe
reject`, `mlpipe rollback`) stays rejected: a cached `train` re-registering the same digest does
not make it challenger again and it is never announced as awaiting approval (`alias` is then
`rejected`, and the deploy stage does nothing with it).

The challenger move holds the registered model's lock (`registry.lock`), waiting for a deploy or
rollback that holds it to finish (at most `LOCK_WAIT`): every alias move is serialised.
"""

from __future__ import annotations

from typing import Any

from components.common import registry

STAGE = "register"
LOCK_WAIT = 1800.0  # s: the longest a deploy holding the model's lock is waited for


def data_lineage(data_meta: dict[str, Any]) -> dict[str, str]:
    """Lineage tags from the ingested Dataset's metadata: the data version ingest computed from
    the rows it read (content digest) and the source it read them from."""
    out = {"data_version": str(data_meta.get("version") or "")}
    if data_meta.get("source"):
        out["data_source"] = str(data_meta["source"])
    return out


def find_version(client: Any, name: str, digest: str) -> Any | None:
    versions = client.search_model_versions(
        f"name = '{name}' and tags.`{registry.DIGEST_TAG}` = '{digest}'"
    )
    return min(versions, key=lambda v: int(v.version)) if versions else None


def run(
    registered_model: str,
    model_uri: str,
    run_id: str,
    model_digest: str,
    metrics: dict[str, float],
    lineage: dict[str, str],
    approval_required: bool = False,
    model_id: str | None = None,
) -> dict[str, Any]:
    """`model_id`: the logged model's id when `model_uri` is `models:/<model_id>` (an MLflow
    server refuses such a source without it; a local SQLite store does not check)."""
    import mlflow

    client = registry.client()
    try:
        client.get_registered_model(registered_model)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(registered_model)

    existing = find_version(client, registered_model, model_digest)
    if existing is not None:
        version, created = str(existing.version), False
    else:
        tags = {
            registry.DIGEST_TAG: model_digest,
            **{f"mlpipe.{k}": str(v) for k, v in lineage.items()},
            **{f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()},
        }
        mv = client.create_model_version(
            registered_model, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
        )
        version, created = str(mv.version), True

    # the alias move under the model's lock: a concurrent deploy may be promoting this very
    # version (the same model from another run); waits for a deploy's rollout to end
    with registry.lock(client, registered_model, f"register of version {version}", wait=LOCK_WAIT):
        registry.reconcile(client, registered_model)
        champion = registry.alias_version(client, registered_model, registry.CHAMPION)
        current = registry.get_version(client, registered_model, version)
        if champion is not None and str(champion.version) == version:
            alias = registry.CHAMPION  # already serving: nothing to move
        elif registry.is_rejected(current):
            alias = registry.REJECTED  # rejected stays rejected: no challenger, no approval
        else:
            registry.set_challenger(client, registered_model, version)
            alias = registry.CHALLENGER
    return {
        "registered_model": registered_model,
        "version": version,
        "created": created,
        "alias": alias,
        "awaiting_approval": approval_required and alias == registry.CHALLENGER,
    }
