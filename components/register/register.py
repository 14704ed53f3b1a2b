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

from components.common import model_integrity, registry

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
    """The first version of the model dir `digest` that carries a manifest: one registered
    before manifests were recorded is not reused (a new version with its manifest replaces it,
    which is how such a version is re-registered)."""
    versions = [
        v
        for v in client.search_model_versions(
            f"name = '{name}' and tags.`{registry.DIGEST_TAG}` = '{digest}'"
        )
        if (v.tags or {}).get(model_integrity.MANIFEST_SHA256_TAG)
    ]
    return min(versions, key=lambda v: int(v.version)) if versions else None


def store_manifest(model_uri: str, claimed: str | dict[str, str] | None) -> dict[str, str]:
    """The logged model's manifest as the store holds it now; when track passed the one it
    recorded right after logging, the two must agree (else the files changed in between)."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        if claimed:
            files = model_integrity.parse_manifest(claimed) if isinstance(claimed, str) else claimed
            if files is None:
                raise model_integrity.ModelIntegrityError(f"{model_uri}: not a manifest: {claimed}")
            model_integrity.verify(local, files, what=f"logged model {model_uri}")
            return dict(files)
        return model_integrity.manifest(local)


def run(
    registered_model: str,
    model_uri: str,
    run_id: str,
    model_digest: str,
    metrics: dict[str, float],
    lineage: dict[str, str],
    approval_required: bool = False,
    model_id: str | None = None,
    model_manifest: str | dict[str, str] | None = None,
) -> dict[str, Any]:
    """`model_id`: the logged model's id when `model_uri` is `models:/<model_id>` (an MLflow
    server refuses such a source without it; a local SQLite store does not check).
    `model_manifest`: what track recorded of the logged model's files; the new version's tags
    `mlpipe.model_manifest_sha256` / `mlpipe.model_manifest` hold it (computed from the store
    when not given), and every loader checks a download against them."""

    client = registry.client()
    registry.ensure_registered_model(client, registered_model)

    existing = find_version(client, registered_model, model_digest)
    if existing is not None:
        version, created = str(existing.version), False
    else:
        files = store_manifest(model_uri, model_manifest)
        tags = {
            registry.DIGEST_TAG: model_digest,
            model_integrity.MANIFEST_SHA256_TAG: model_integrity.digest_of(files),
            model_integrity.MANIFEST_TAG: model_integrity.canonical(files),
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
