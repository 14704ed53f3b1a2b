"""The model registry's alias state machine (MLflow aliases and tags), one function per move.

    registered version (candidate) --gate passed--> challenger --promote--> champion
                                                        |                      | (replaced)
                                                        +--reject--> rejected  +--> previous

- `set_challenger`: the gate passed (the register step; MLflow keeps one version per alias, so a
  newer challenger replaces an older one, which stays a candidate).
- `promote`: `champion` moves to the version and the old champion becomes `previous`; the
  version stops being `challenger`. Owned by the deploy stage, after a successful rollout (also
  when `mlpipe approve` deploys a version that waited for approval).
- `rollback` (`mlpipe rollback`): `champion` goes back to `previous`; the demoted version is
  tagged rejected.
- `reject`: the version is tagged rejected (with the reason) and loses `challenger`; a rejected
  version is never promoted. The champion is never rejected: promote another version first.

Every move also sets the version's `mlpipe.status` tag, so the state reads at a glance in the UI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.common.artifacts import FEATURE_SPEC_FILE
from components.common.mlflow_utils import configure

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
STATUS_TAG = "mlpipe.status"
GATE_TAG = "mlpipe.gate"  # "passed" on versions the quality gate blessed
REJECTED_TAG = "mlpipe.rejected_reason"
DIGEST_TAG = "mlpipe.model_digest"


class RegistryError(RuntimeError):
    """A registry move that is not allowed, or a version/alias that does not exist."""


def client(tracking_uri: str = "") -> Any:
    import mlflow

    configure(tracking_uri)
    return mlflow.MlflowClient()


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    """The version holding `alias`, or None (also when the model does not exist yet). Other
    errors (an unreachable store) propagate: "no champion" must never be a guess."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def get_version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(f"registered model {name!r} has no version {version}") from None


def _status(client: Any, name: str, version: str, status: str) -> None:
    client.set_model_version_tag(name, str(version), STATUS_TAG, status)


def set_challenger(client: Any, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    client.set_model_version_tag(name, str(version), GATE_TAG, "passed")
    _status(client, name, version, CHALLENGER)


def promote(client: Any, name: str, version: str) -> str | None:
    """Point `champion` at `version`; the old champion becomes `previous`. Returns the old
    champion's version (None if there was none or it already was `version`)."""
    version = str(version)
    mv = get_version(client, name, version)
    if REJECTED_TAG in (mv.tags or {}):
        raise RegistryError(f"{name} version {version} was rejected: {mv.tags[REJECTED_TAG]}")
    old = alias_version(client, name, CHAMPION)
    challenger = alias_version(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    if old is not None and str(old.version) == version:
        return None
    if old is not None:
        client.set_registered_model_alias(name, PREVIOUS, old.version)
        _status(client, name, old.version, PREVIOUS)
    client.set_registered_model_alias(name, CHAMPION, version)
    _status(client, name, version, CHAMPION)
    return str(old.version) if old is not None else None


def check_approvable(client: Any, name: str, version: str) -> Any:
    """The version, if `mlpipe approve` may deploy it: the gate blessed it, nobody rejected it."""
    mv = get_version(client, name, version)
    tags = mv.tags or {}
    if tags.get(GATE_TAG) != "passed":
        raise RegistryError(
            f"{name} version {version} has not passed the quality gate: only a version that did "
            "(alias challenger) can be approved"
        )
    if REJECTED_TAG in tags:
        raise RegistryError(f"{name} version {version} was rejected: {tags[REJECTED_TAG]}")
    return mv


def rollback(client: Any, name: str, reason: str) -> tuple[str, str]:
    """`mlpipe rollback`: `champion` goes back to `previous`; the demoted version is tagged
    rejected. Returns (demoted version, champion now)."""
    current = alias_version(client, name, CHAMPION)
    previous = alias_version(client, name, PREVIOUS)
    if current is None or previous is None:
        raise RegistryError(f"{name} has no champion and previous pair to roll back between")
    client.set_registered_model_alias(name, CHAMPION, previous.version)
    client.delete_registered_model_alias(name, PREVIOUS)
    _status(client, name, previous.version, CHAMPION)
    client.set_model_version_tag(
        name, str(current.version), REJECTED_TAG, f"rolled back: {reason or 'by hand'}"
    )
    _status(client, name, current.version, "rolled_back")
    return str(current.version), str(previous.version)


def reject(client: Any, name: str, version: str, reason: str) -> None:
    """`mlpipe reject`: tag the version rejected; the champion stays where it is."""
    version = str(version)
    get_version(client, name, version)
    champion = alias_version(client, name, CHAMPION)
    if champion is not None and str(champion.version) == version:
        raise RegistryError(
            f"{name} version {version} is the champion: promote another version before rejecting it"
        )
    challenger = alias_version(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_model_version_tag(name, version, REJECTED_TAG, reason or "rejected by hand")
    _status(client, name, version, "rejected")


def load_version(
    name: str, ref: str, dst: str | Path, tracking_uri: str = ""
) -> tuple[Any, dict[str, Any], str]:
    """Download a registered version (`ref`: an alias or a version number) and load it:
    (the sklearn model, its feature spec, the version number)."""
    import mlflow

    c = client(tracking_uri)
    mv = get_version(c, name, ref) if str(ref).isdigit() else alias_version(c, name, ref)
    if mv is None:
        raise RegistryError(f"registered model {name!r} has no version with alias {ref!r}")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dst)
    )
    model = mlflow.sklearn.load_model(local)
    spec_file = Path(local) / "extra_files" / FEATURE_SPEC_FILE
    spec = json.loads(spec_file.read_text())
    return model, spec, str(mv.version)


def resolve(c: Any, name: str, ref: str) -> Any:
    """The version a ref names (an alias or a version number); RegistryError if none."""
    mv = get_version(c, name, ref) if str(ref).isdigit() else alias_version(c, name, ref)
    if mv is None:
        raise RegistryError(f"registered model {name!r} has no version with alias {ref!r}")
    return mv


def version_metrics(mv: Any) -> dict[str, float]:
    """The evaluation metrics the register step tagged on a version (`metric.<name>`)."""
    out = {}
    for key, value in (mv.tags or {}).items():
        if key.startswith("metric."):
            try:
                out[key.removeprefix("metric.")] = float(value)
            except ValueError:
                continue
    return out


def download_extra_files(
    name: str, ref: str, dst: str | Path, tracking_uri: str = ""
) -> tuple[Path, Any]:
    """Download only a version's companions (`extra_files/`: feature spec, training statistics,
    schema), not the model: (the local extra_files folder, the model version)."""
    import mlflow

    c = client(tracking_uri)
    mv = resolve(c, name, ref)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{mv.version}/extra_files", dst_path=str(dst)
    )
    return Path(local), mv
