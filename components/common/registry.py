"""The model registry's alias state machine (MLflow aliases and tags), one function per move.

    registered version (candidate) --gate passed--> challenger --promote--> champion
                                                        |                      | (replaced)
                                                        +--reject--> rejected  +--> previous

- `set_challenger`: the gate passed (the register step; MLflow keeps one version per alias, so a
  newer challenger replaces an older one, which goes back to candidate). A rejected version is
  never made challenger again (a cached `train` re-registering the same digest included).
- `promote`: `champion` moves to the version and the old champion becomes `previous`; the
  version stops being `challenger`. Owned by the deploy stage, after a successful rollout (also
  when `mlpipe approve` deploys a version that waited for approval).
- `rollback` (`mlpipe rollback`): `champion` goes back to `previous`; the demoted version is
  tagged rejected. Refused without a distinct, unrejected `previous`.
- `reject`: the version is tagged rejected (with the reason) and loses `challenger` and
  `previous`; a rejected version is never promoted, approved or rolled back to. The champion is
  never rejected: promote another version first.

Crash safety. MLflow has no transactions: a move is several calls, and the process may die
between any two. The order is chosen so that every prefix leaves a servable champion:

1. the move is written first as a registered-model tag (`mlpipe.move`, a journal of one entry:
   the versions it involves, read before anything changed);
2. `champion` moves first (promote: to the new version; rollback: to `previous`), so the alias
   that is served never points at a version about to be rejected, and never is absent;
3. then `previous` (promote: the old champion; rollback: dropped when it equals the champion)
   and `challenger` (dropped from the promoted version), then the rejected tag (rollback);
4. then every status tag (`mlpipe.status`), derived from the aliases and the rejected tag;
5. the journal tag is deleted last.

`reconcile` runs first in every move (and in the deploy stage): it finishes a move whose
journal is still there (each step is idempotent, the versions come from the journal, not from
the half-moved aliases), then repairs what a crash outside a journaled move can leave: `previous`
equal to `champion` is dropped, a rejected version holding `challenger`/`previous` loses it, and
status tags that disagree with the aliases are rewritten. The old order (previous before
champion) could leave champion == previous, after which `rollback` rejected the serving model.

Concurrency: the moves themselves take no lock; their callers (the register stage's challenger
move, the deploy stage, `mlpipe rollback`, `mlpipe reject`) hold `lock(client, name)` around them
— one lock per registered model, see `lock`. Without it, a register setting `challenger` while a
deploy promoted the same version (two runs of the same model) left that version champion and
challenger at once.

Status tags are derived, never a second source of truth: `derived_status` is what
`mlpipe models` shows, whatever a stale tag says.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from components.common.artifacts import FEATURE_SPEC_FILE
from components.common.mlflow_utils import configure, error_code

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
STATUS_TAG = "mlpipe.status"
GATE_TAG = "mlpipe.gate"  # "passed" on versions the quality gate blessed
REJECTED_TAG = "mlpipe.rejected_reason"
DIGEST_TAG = "mlpipe.model_digest"
MOVE_TAG = "mlpipe.move"  # registered-model tag: the move in progress (see the module docstring)
LOCK_SUFFIX = ".mlpipe-lock"  # `lock` on a server: the registered model `<name>.mlpipe-lock`
LOCK_TAG = "mlpipe.lock"  # its tag {owner, what, id}: marks it a lock, names the holder
LOCK_EXPIRES_TAG = "mlpipe.lock.expires"  # its tag: epoch seconds, renewed while held
STALE_KEEP = 3600.0  # s: how long a lock's tombstone (`<lock>.stale.<id>`) is kept, see `_bury`
REJECTED, ROLLED_BACK, CANDIDATE = "rejected", "rolled_back", "candidate"
# how the rejected tag's text starts says who rejected the version (`rejected_by`)
ROLLOUT_REASON = "rolled back: "  # the deploy stage's rollout (canary, blue-green) or a rollback
INFRA_REASON = "infra validation: "  # the deploy stage's infra validation
LOCK_TTL_ENV = "MLPIPE_REGISTRY_LOCK_TTL"  # seconds a lease lives without renewal (default 900)
SHORT_MOVE = "register"  # a holder whose `what` starts so moves one alias: seconds, worth waiting
SHORT_WAIT = 120.0  # s: how long any taker waits for a short move's holder


class RegistryError(RuntimeError):
    """A registry move that is not allowed, or a version/alias that does not exist."""


class RegistryLocked(RegistryError):
    """Another process holds the registered model's lock (a deploy, a rollback). `holder`: what
    it is doing (e.g. "register of version 3"), when known."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


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


def is_rejected(mv: Any) -> bool:
    return REJECTED_TAG in (mv.tags or {})


def held_aliases(client: Any, name: str) -> dict[str, str]:
    """{alias: version} of the three aliases the state machine uses."""
    out = {}
    for alias in (CHAMPION, CHALLENGER, PREVIOUS):
        mv = alias_version(client, name, alias)
        if mv is not None:
            out[alias] = str(mv.version)
    return out


def derived_status(tags: dict[str, str], aliases: list[str]) -> str | None:
    """A version's status from its aliases and rejected tag: champion wins (a champion is never
    rejected), then rejected (kept as `rolled_back` when a rollback demoted it), then challenger,
    previous; else candidate (None: no status tag was ever written, also a candidate)."""
    if CHAMPION in aliases:
        return CHAMPION
    if REJECTED_TAG in tags:
        return ROLLED_BACK if tags.get(STATUS_TAG) == ROLLED_BACK else REJECTED
    for alias in (CHALLENGER, PREVIOUS):
        if alias in aliases:
            return alias
    return CANDIDATE if STATUS_TAG in tags else None


def rejected_by(tags: dict[str, str]) -> tuple[str, str] | None:
    """(who rejected the version, the reason they gave) from its tags, None if not rejected:
    `mlpipe rollback`, the rollout, infra validation, else by hand (`mlpipe reject`)."""
    reason = tags.get(REJECTED_TAG)
    if reason is None:
        return None
    if tags.get(STATUS_TAG) == ROLLED_BACK:
        return "mlpipe rollback", reason.removeprefix(ROLLOUT_REASON)
    for prefix, who in ((ROLLOUT_REASON, "the rollout"), (INFRA_REASON, "infra validation")):
        if reason.startswith(prefix):
            return who, reason.removeprefix(prefix)
    return "hand", reason


def _drop_alias(client: Any, name: str, alias: str, version: str | None = None) -> None:
    """Delete `alias` (only if `version` holds it, when given); nothing if it is not set."""
    mv = alias_version(client, name, alias)
    if mv is not None and (version is None or str(mv.version) == str(version)):
        client.delete_registered_model_alias(name, alias)


def _sync_statuses(client: Any, name: str) -> None:
    held = held_aliases(client, name)
    by_version: dict[str, list[str]] = {}
    for alias, v in held.items():
        by_version.setdefault(v, []).append(alias)
    for mv in client.search_model_versions(f"name = '{name}'"):
        tags = mv.tags or {}
        status = derived_status(tags, by_version.get(str(mv.version), []))
        if status is not None and tags.get(STATUS_TAG) != status:
            client.set_model_version_tag(name, str(mv.version), STATUS_TAG, status)


def _apply(client: Any, name: str, move: dict[str, Any]) -> None:
    """The alias moves of a journaled move, in the crash-safe order; idempotent."""
    if move["op"] == "promote":
        version, old = move["version"], move.get("old")
        client.set_registered_model_alias(name, CHAMPION, version)
        if old is not None and old != version:
            client.set_registered_model_alias(name, PREVIOUS, old)
        else:
            _drop_alias(client, name, PREVIOUS, version)
        _drop_alias(client, name, CHALLENGER, version)
    elif move["op"] == "rollback":
        demote, to = move["demote"], move["to"]
        client.set_registered_model_alias(name, CHAMPION, to)
        _drop_alias(client, name, PREVIOUS, to)
        client.set_model_version_tag(name, demote, REJECTED_TAG, move["reason"])
        client.set_model_version_tag(name, demote, STATUS_TAG, ROLLED_BACK)
    else:
        raise RegistryError(f"{name}: unknown move in {MOVE_TAG}: {move}")


def _run_move(client: Any, name: str, move: dict[str, Any]) -> None:
    client.set_registered_model_tag(name, MOVE_TAG, json.dumps(move, sort_keys=True))
    _apply(client, name, move)
    _sync_statuses(client, name)
    client.delete_registered_model_tag(name, MOVE_TAG)


def reconcile(client: Any, name: str) -> None:
    """Finish a move a crash interrupted (its journal tag), then make the aliases and status
    tags agree: no `previous` or `challenger` equal to `champion`, no rejected version holding
    `challenger` or `previous`, every status tag derived from the aliases. Nothing when the model
    does not exist.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return
        raise
    pending = (model.tags or {}).get(MOVE_TAG)
    if pending:
        _apply(client, name, json.loads(pending))
    held = held_aliases(client, name)
    for alias in (PREVIOUS, CHALLENGER):  # the champion holds neither
        if held.get(alias) is not None and held.get(alias) == held.get(CHAMPION):
            client.delete_registered_model_alias(name, alias)
    for alias in (CHALLENGER, PREVIOUS):
        mv = alias_version(client, name, alias)
        if mv is not None and is_rejected(mv):
            client.delete_registered_model_alias(name, alias)
    _sync_statuses(client, name)
    if pending:
        client.delete_registered_model_tag(name, MOVE_TAG)


def set_challenger(client: Any, name: str, version: str) -> None:
    """The gate passed: `challenger` moves to the version. Refused for a rejected version and for
    the champion (already serving). The caller holds `lock`."""
    mv = get_version(client, name, version)
    if is_rejected(mv):
        raise RegistryError(f"{name} version {version} was rejected: {mv.tags[REJECTED_TAG]}")
    champion = alias_version(client, name, CHAMPION)
    if champion is not None and str(champion.version) == str(version):
        raise RegistryError(f"{name} version {version} is the champion: it cannot be challenger")
    client.set_model_version_tag(name, str(version), GATE_TAG, "passed")
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    _sync_statuses(client, name)


def promote(client: Any, name: str, version: str) -> str | None:
    """Point `champion` at `version`; the old champion becomes `previous`. Returns the old
    champion's version (None if there was none or it already was `version`). The caller holds
    `lock`."""
    version = str(version)
    reconcile(client, name)
    mv = get_version(client, name, version)
    if is_rejected(mv):
        raise RegistryError(f"{name} version {version} was rejected: {mv.tags[REJECTED_TAG]}")
    old = alias_version(client, name, CHAMPION)
    if old is not None and str(old.version) == version:
        _drop_alias(client, name, CHALLENGER, version)
        _sync_statuses(client, name)
        return None
    move = {"op": "promote", "version": version, "old": str(old.version) if old else None}
    _run_move(client, name, move)
    return move["old"]


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


def rollback_target(client: Any, name: str) -> tuple[Any, Any]:
    """(champion, previous) of a rollback, after `reconcile`; RegistryError when there is no
    champion, no distinct previous, or the previous was rejected."""
    reconcile(client, name)
    current = alias_version(client, name, CHAMPION)
    previous = alias_version(client, name, PREVIOUS)
    if current is None:
        raise RegistryError(f"{name} has no champion to roll back")
    if previous is None or str(previous.version) == str(current.version):
        raise RegistryError(
            f"{name} has no previous champion distinct from the champion (version "
            f"{current.version}) to roll back to"
        )
    if is_rejected(previous):
        raise RegistryError(
            f"{name} previous version {previous.version} was rejected: "
            f"{previous.tags[REJECTED_TAG]}"
        )
    return current, previous


def rollback(client: Any, name: str, reason: str) -> tuple[str, str]:
    """`mlpipe rollback`: `champion` goes back to `previous`; the demoted version is tagged
    rejected. Returns (demoted version, champion now). The caller holds `lock`."""
    current, previous = rollback_target(client, name)
    move = {
        "op": "rollback",
        "demote": str(current.version),
        "to": str(previous.version),
        "reason": f"{ROLLOUT_REASON}{reason or 'by hand'}",
    }
    _run_move(client, name, move)
    return move["demote"], move["to"]


def reject(client: Any, name: str, version: str, reason: str) -> None:
    """`mlpipe reject`: tag the version rejected; the champion stays where it is. The rejected
    tag is written first (what must survive a crash), then the aliases it loses, then statuses."""
    version = str(version)
    reconcile(client, name)
    get_version(client, name, version)
    champion = alias_version(client, name, CHAMPION)
    if champion is not None and str(champion.version) == version:
        raise RegistryError(
            f"{name} version {version} is the champion: promote another version before rejecting it"
        )
    client.set_model_version_tag(name, version, REJECTED_TAG, reason or "rejected by hand")
    _drop_alias(client, name, CHALLENGER, version)
    _drop_alias(client, name, PREVIOUS, version)
    _sync_statuses(client, name)


def load_version(
    name: str, ref: str, dst: str | Path, tracking_uri: str = ""
) -> tuple[Any, dict[str, Any], str]:
    """Download a registered version (`ref`: an alias or a version number), check its files
    against the manifest register recorded on the version, and load it: (the sklearn model, its
    feature spec, the version number). model_integrity.ModelIntegrityError when the files differ
    (or the version has no manifest): nothing is unpickled then."""
    import mlflow

    c = client(tracking_uri)
    mv = resolve(c, name, ref)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dst)
    )
    verify_download(local, mv, name)
    model = mlflow.sklearn.load_model(local)
    spec_file = Path(local) / "extra_files" / FEATURE_SPEC_FILE
    spec = json.loads(spec_file.read_text())
    return model, spec, str(mv.version)


def verify_download(local: str | Path, mv: Any, name: str) -> str | None:
    """Check a downloaded version against its manifest tags (ModelIntegrityError naming the
    version and the files); the digest, None when unverified versions are allowed."""
    from components.common.model_integrity import verify_version

    return verify_version(local, mv.tags or {}, f"{name} version {mv.version}")


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


def _lock_file(name: str) -> Path:
    """Beside a local SQLite store (outputs/mlflow/locks/), else under the state folder."""
    import mlflow

    from components.common import runtime_env

    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        root = Path(uri.removeprefix("sqlite:///")).parent
    else:
        root = Path(runtime_env.local_state_dir())
    folder = root / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"registry-{name.replace('/', '_')}.lock"


def _lock_mode() -> str:
    """ "file" for a store on this machine (SQLite, a folder), "lease" for an MLflow server
    (also on a cluster): a file lock would not be seen by another machine."""
    import mlflow

    from components.common import runtime_env

    uri = mlflow.get_tracking_uri()
    if runtime_env.in_cluster() or uri.split(":", 1)[0] in ("http", "https", "databricks"):
        return "lease"
    return "file"


@contextmanager
def lock(
    client: Any,
    name: str,
    what: str = "deploy",
    mode: str | None = None,
    wait: float = 0.0,
    log: Any = print,
) -> Iterator[str]:
    """Hold the registered model's lock around every alias move (register's challenger, a deploy,
    a rollback, a reject): two at once would move the aliases (and the served model) on a state
    the other is changing.

    With `wait=0` (a deploy, a rollback) it fails fast with RegistryLocked naming the holder: a
    deploy holds the lock for its whole rollout (minutes), and the second one would then deploy
    against a registry that changed under it. Re-run it after the first one finished. Except
    that everyone waits (up to SHORT_WAIT) for a register's challenger move, which takes
    seconds: a deploy of run A must not fail because run B was registering. Register itself
    passes `wait`: it retries until the holder (a deploy) is done, then RegistryLocked.

    - `file` (a local store): `fcntl.flock` on `locks/registry-<name>.lock` beside the SQLite
      store (else under MLPIPE_STATE_DIR / outputs/state). The kernel drops it when the holder
      dies.
    - `lease` (an MLflow server, a cluster): the registered model `<name>.mlpipe-lock`, tagged
      `mlpipe.lock` = {owner, what, id} and `mlpipe.lock.expires`. Taking it is creating that
      model: the store's unique key on the name makes exactly one of two creators succeed (the
      other gets RESOURCE_ALREADY_EXISTS, reads the holder and backs off), with no settle time
      and no window. Renewed by a background thread every third of its lifetime
      (MLPIPE_REGISTRY_LOCK_TTL, default 900 s). An expired lock (a crashed holder) is taken
      over by renaming it to its tombstone `<lock>.stale.<id>` (`_bury`, atomic too: one
      renamer wins) and creating it again. Released by burying it too, which fails when it was
      taken over meanwhile: the new holder's lock is never deleted. A crashed holder blocks at
      most until its lease expires. The suffix is reserved: a model named so is refused here
      (RegistryError) and one created outside mlpipe is reported, never taken for a lock;
      `is_lock_model` tells listings to skip lock models and their tombstones.
    """
    if is_lock_model(name):
        raise RegistryError(
            f"{name}: the suffix {LOCK_SUFFIX} is reserved for mlpipe's registry locks"
        )
    mode = mode or _lock_mode()
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    deadline, waited = started + wait, False
    with ExitStack() as stack:
        while True:
            try:
                if mode == "file":
                    stack.enter_context(_flock(name, what, owner))
                else:
                    stack.enter_context(_lease(client, name, what, owner))
                break
            except RegistryLocked as exc:
                # a register's challenger move takes seconds: a deploy waits for it too
                short = exc.holder.startswith(SHORT_MOVE)
                if time.monotonic() >= max(deadline, started + (SHORT_WAIT if short else 0)):
                    raise
                if not waited:
                    log(f"{what}: waiting for the lock ({exc})")
                waited = True
                time.sleep(1.0)
        yield owner


@contextmanager
def _flock(name: str, what: str, owner: str) -> Iterator[None]:
    import fcntl

    path = _lock_file(name)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise RegistryLocked(
                f"{name} is locked by {holder} ({path}): another deploy or rollback is "
                "running; re-run this one after it finished",
                holder,
            ) from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{what} {owner}")
            fh.flush()
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def lock_model_name(name: str) -> str:
    """The registered model that is `name`'s lock on an MLflow server (see `lock`)."""
    return f"{name}{LOCK_SUFFIX}"


def is_lock_model(name: str) -> bool:
    """A lock model or its tombstone, never a user's model: listings skip these."""
    return LOCK_SUFFIX in name


def ensure_registered_model(client: Any, name: str) -> None:
    """Create registered model `name` unless it exists. Create first, not look first: two runs
    registering their first version at once both saw "missing" and the second create failed
    with RESOURCE_ALREADY_EXISTS; that answer means the model is there, which is all we need."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise


def _lease_held(client: Any, lock_name: str) -> tuple[dict[str, Any], float] | None:
    """The lock model's {owner, what, id} and expiry (epoch s), or None when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(lock_name).tags or {}
    except MlflowException as exc:
        if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if LOCK_TAG not in tags:
        raise RegistryError(
            f"a registered model named {lock_name} exists but is no mlpipe lock: the suffix "
            f"{LOCK_SUFFIX} is reserved for the locks of `mlpipe`; rename that model"
        )
    try:
        held = dict(json.loads(tags[LOCK_TAG]))
    except (ValueError, TypeError):
        held = {"owner": tags[LOCK_TAG]}
    try:
        expires = float(tags.get(LOCK_EXPIRES_TAG, 0))
    except ValueError:
        expires = 0.0
    return held, expires


def _bury(client: Any, lock_name: str, lock_id: str) -> bool:
    """Atomically remove the lock instance `lock_id` from `lock_name`: rename it to its
    tombstone `<lock_name>.stale.<lock_id>`. Only one caller can succeed for one instance: the
    source name is gone after the first rename, and the tombstone (kept STALE_KEEP seconds)
    makes a later rename of a NEWER instance by a caller that read the old one fail too.
    (Renaming and deleting at once, as a plain "rename then delete" would, lets a taker that
    read the expired instance rename the fresh lock of whoever took over before it.)"""
    try:
        client.rename_registered_model(lock_name, f"{lock_name}.stale.{lock_id}")
    except Exception:  # gone, or this instance already buried: someone else was first
        return False
    return True


def _sweep(client: Any, lock_name: str) -> None:
    """Delete this lock's tombstones older than STALE_KEEP (best effort)."""
    prefix = f"{lock_name}.stale."
    try:
        found = client.search_registered_models(f"name LIKE '{prefix}%'")
        for rm in found:
            age = time.time() - (rm.last_updated_timestamp or 0) / 1000
            if rm.name.startswith(prefix) and age > STALE_KEEP:
                client.delete_registered_model(rm.name)
    except Exception:  # clutter only: the next taker sweeps again
        return


@contextmanager
def _lease(client: Any, name: str, what: str, owner: str) -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    ttl = float(os.environ.get(LOCK_TTL_ENV, "") or 900)
    lock_name, lock_id = lock_model_name(name), uuid.uuid4().hex
    mine = json.dumps({"owner": owner, "what": what, "id": lock_id})
    for _attempt in range(3):
        try:
            client.create_registered_model(
                lock_name,
                tags={LOCK_TAG: mine, LOCK_EXPIRES_TAG: str(time.time() + ttl)},
                description=f"mlpipe lock of the registered model {name} (not a model)",
            )
            break  # the store's unique name: nobody else created it
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
        found = _lease_held(client, lock_name)
        if found is None:
            continue  # released since: free again
        held, expires = found
        if held.get("id") == lock_id:
            break  # a retried create whose first attempt had succeeded: ours
        if expires > time.time():
            raise RegistryLocked(
                f"{name} is locked by {held.get('owner')} ({held.get('what', '?')}, model "
                f"{lock_name}, expires in {expires - time.time():.0f} s): another deploy or "
                "rollback is running; re-run this one after it finished",
                str(held.get("what", "")),
            )
        # expired (a crashed holder): whoever buries this instance first creates the lock anew
        if not _bury(client, lock_name, str(held.get("id", ""))):
            raise RegistryLocked(f"{name}: lost the race for the expired lock {lock_name}")
    else:
        raise RegistryLocked(f"{name}: the lock {lock_name} keeps changing hands")
    _sweep(client, lock_name)
    state = {"expires": time.time() + ttl}
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                found = _lease_held(client, lock_name)
                if found is None or found[0].get("id") != lock_id:
                    return  # expired and taken over: nothing left to renew
                # (taken over between this read and the write: the new holder's lock lives a bit
                # longer, its holder unharmed; we stop at the next round)
                state["expires"] = time.time() + ttl
                client.set_registered_model_tag(lock_name, LOCK_EXPIRES_TAG, str(state["expires"]))
            except Exception:  # a transient store error: the next round tries again
                continue

    renewer = threading.Thread(target=renew, name=f"mlpipe-lock-{name}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        # only our own instance is buried: if it was taken over, its tombstone exists already
        if _bury(client, lock_name, lock_id) and state["expires"] - time.time() > ttl / 3:
            # still far from expiry: nobody can hold a read of it as expired, no tombstone needed
            with suppress(MlflowException):
                client.delete_registered_model(f"{lock_name}.stale.{lock_id}")
