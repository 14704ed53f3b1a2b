"""The deploy stage: infra validation, then a rollout of the blessed `challenger` against the
serving `champion`, then the registry move. From here on only this stage (or `mlpipe approve` /
`mlpipe rollback`, which call it) moves `champion` (README "Quality gate, champion and approval").

- infra validation (components/serve/infra_validation.py): the candidate's real model server must
  answer test rows exactly like the model offline, within the latency budget; otherwise the
  version is tagged rejected and the stage fails.
- `environment: local`: a rehearsal on this machine — the champion's server behind the weighted
  router, the candidate started as canary, real test rows replayed as traffic, the configured
  strategy and analysis windows decide. With no champion yet (or the same version) there is
  nothing to compare with: the candidate is promoted after infra validation.
- `environment: kserve`: the InferenceService (Knative mode) is rolled out for real through the
  Kubernetes adapter: the registered version's files in the object store become `storageUri`
  (KServe's storage initializer fetches them), `canaryTrafficPercent` moves the traffic; the
  first champion creates the InferenceService. Before it changes, test rows shaped as the
  champion's clients send them (its feature spec) must pass the candidate's request validation
  (preflight.check_spec): a candidate with another feature set is rolled back before any traffic.
  Windows come from Prometheus, or from the model pods' own `/metrics`; with `replay_test_rows`
  test rows are sent through the service's URL (a cluster without live traffic, e.g. kind).
- promoted → `champion` moves, the old one becomes `previous`; rolled back → the version is
  tagged rejected with the reason and `champion` stays.
- The whole stage holds the registered model's lock (`registry.lock`: a file lock beside a local
  store, a tag lease on an MLflow server); a second deploy or `mlpipe rollback` meanwhile fails
  fast. It starts with `registry.reconcile` (finishes a registry move a crash interrupted), then
  on KServe `serve_champion`: the registry is the source of truth, an InferenceService that
  does not serve the champion alone (a crash between a rollout and the registry move) is put
  back on it before anything else.
- A model the quality gate blocked never reaches this stage: `blocked_outcome` is the pipeline's
  deployment output then (the `not_deployed` task).
- A version already rejected is not deployed, validated or announced as awaiting approval
  (outcome `rejected`; nothing moves).
- Integrity (components/common/model_integrity.py): before anything is started, the candidate's
  files are checked against what the registry recorded for the version (a train model dir
  against the `mlpipe.model_digest` tag, a downloaded MLflow model against
  `mlpipe.model_manifest_sha256`); a version without a manifest or with other files fails the
  stage (StageError naming the version and the files) and never becomes champion. On KServe the
  version's manifest digest goes into the InferenceService (env MLPIPE_MODEL_SHA256): the model
  server refuses files under /mnt/models that do not match it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from components.common import registry
from components.common.errors import StageError

STAGE = "deploy"
REPLAY_ROWS = 2000


def _config(deployment: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from components.common.config import DeploymentConfig, describe_errors

    try:
        return DeploymentConfig.model_validate(deployment or {})
    except ValidationError as exc:
        problems = "; ".join(describe_errors(DeploymentConfig, exc))
        raise StageError(
            STAGE, f"invalid deployment config: {problems}", subject="deployment"
        ) from None


def feature_spec(model_dir: str) -> dict[str, Any]:
    """The feature spec of a model dir, a downloaded MLflow model (the spec rides in
    extra_files/) or a version's downloaded extra_files folder."""
    import json
    from pathlib import Path

    from components.common.artifacts import FEATURE_SPEC_FILE

    found = [
        Path(model_dir) / FEATURE_SPEC_FILE,
        Path(model_dir) / "extra_files" / FEATURE_SPEC_FILE,
    ]
    return json.loads(next((f for f in found if f.is_file()), found[0]).read_text())


def replay_rows(test_path: str, model_dir: str, n: int) -> list[dict[str, Any]]:
    """The first `n` test rows as JSON-ready dicts of the model's features (replayed traffic)."""
    import pandas as pd

    names = [f["name"] for f in feature_spec(model_dir)["features"]]
    rows = pd.read_parquet(test_path, columns=names).head(n).to_dict("records")
    return [{k: v.item() if hasattr(v, "item") else v for k, v in r.items()} for r in rows]


def local_rollout(
    name: str,
    stable_ref: str,
    stable_version: str,
    candidate_dir: str,
    candidate_version: str,
    rows: list[dict[str, Any]],
    rollout_cfg: Any,
    log: Callable[[str], None],
    fault: str | None = None,
    target: Any = None,
) -> dict[str, Any]:
    """Rehearse the rollout of `candidate_dir` against `stable_ref` under replayed traffic, on
    `target` when given (a LocalTarget serving stable already: it keeps serving afterwards)."""
    import contextlib

    from components.deploy.backend import ServeBackend
    from components.deploy.local_target import LocalTarget
    from components.deploy.rollout import Candidate, Rollout

    with (
        contextlib.nullcontext(target)
        if target
        else LocalTarget.serve(ServeBackend(), stable_ref, name, version=stable_version)
    ) as target:
        rollout = Rollout.from_config(target, rollout_cfg, log=log)
        candidate = Candidate(candidate_dir, candidate_version, fault)
        return replayed(target.url, name, rows, lambda: rollout.run(candidate))


def replayed(url: str, name: str, rows: list[dict[str, Any]], run: Callable[[], Any]) -> dict:
    """`run()` (a rollout) while test rows are sent to `url`; its result with what the clients
    saw."""
    from components.deploy.replay import Replay

    with Replay(url, name, rows) as replay:
        out = run().to_dict()
    out["client_requests"] = {"ok": replay.ok, "failed": dict(replay.failures)}
    return out


def blocked_outcome(blessing: dict[str, Any]) -> dict[str, Any]:
    """The deploy outcome of a model the quality gate blocked (from the gate's `blessing`
    metadata): nothing registered, nothing rolled out, the champion unchanged."""
    failed = "; ".join(blessing.get("failed_checks") or []) or "not blessed"
    return {
        "outcome": "blocked",
        "reason": f"quality gate: {failed}",
        "version": None,
        "champion": blessing.get("champion_version"),
        "registration": None,
    }


def run(
    registered_model: str,
    version: str,
    model_dir: str,
    test_path: str,
    deployment: dict[str, Any],
    log: Callable[[str], None] = print,
    fault: str | None = None,
    awaiting_approval: bool = False,
    target: Any = None,
    tracking_uri: str = "",
) -> dict[str, Any]:
    """Deploy `version` (its model at `model_dir`, test rows at `test_path`). Returns what
    happened; raises StageError when infra validation fails (after tagging the version
    rejected). `awaiting_approval`: validate only and keep the replay rows for `mlpipe approve`.
    `target` (environment local): a LocalTarget that serves the champion already (`mlpipe
    simulate`'s), for the rollout instead of one started here. `tracking_uri`: the registry's
    store (default: the environment's). Raises registry.RegistryLocked when another deploy or
    rollback holds the model's lock."""
    cfg = _config(deployment)
    client = registry.client(tracking_uri)
    registry.get_version(client, registered_model, version)
    with registry.lock(client, registered_model, f"deploy of version {version}"):
        return _deploy(
            client,
            cfg,
            registered_model,
            version,
            model_dir,
            test_path,
            log,
            fault,
            awaiting_approval,
            target,
        )


def _deploy(
    client: Any,
    cfg: Any,
    registered_model: str,
    version: str,
    model_dir: str,
    test_path: str,
    log: Callable[[str], None],
    fault: str | None,
    awaiting_approval: bool,
    target: Any = None,
) -> dict[str, Any]:
    from components.serve.infra_validation import InfraValidationError, validate_infra

    registry.reconcile(client, registered_model)
    if cfg.environment == "kserve":
        serve_champion(client, cfg, registered_model, log)
    mv = registry.get_version(client, registered_model, version)
    champion = registry.alias_version(client, registered_model, registry.CHAMPION)
    out: dict[str, Any] = {"registered_model": registered_model, "version": str(version)}
    if registry.is_rejected(mv):
        out.update(
            outcome="rejected",
            reason=f"version {version} was rejected: {mv.tags[registry.REJECTED_TAG]}",
            champion=str(champion.version) if champion is not None else None,
            previous_champion=None,
        )
        return out
    if champion is not None and str(champion.version) == str(version):
        out.update(outcome="unchanged", reason="already the champion", champion=str(version))
        out["previous_champion"] = None
        return out

    verify_candidate(mv, registered_model, model_dir)
    log(f"deploy: infra validation of version {version}")
    try:
        iv = cfg.infra_validation
        out["infra_validation"] = validate_infra(
            model_dir,
            test_path,
            registered_model,
            n_rows=iv.rows,
            p99_budget_ms=iv.p99_budget_ms,
            tolerance=iv.tolerance,
            fault=fault,
        )
    except InfraValidationError as exc:
        registry.reject(client, registered_model, version, f"{registry.INFRA_REASON}{exc}")
        raise StageError(STAGE, f"infra validation failed: {exc}", subject=str(version)) from exc

    if awaiting_approval:
        # keep the rows the rollout will replay with the version: `mlpipe approve` needs them
        keep_replay_rows(client, registered_model, version, test_path)
        out.update(outcome="awaiting_approval", reason="deployment.approval_required")
        return out
    refused = None
    if cfg.environment == "kserve" and champion is not None:
        refused = refuses_champions_requests(
            registered_model, str(champion.version), model_dir, test_path, log
        )
    if refused is not None:
        log(f"deploy: version {version} refused before any traffic: {refused}")
        out.update(outcome="rolled_back", reason=f"refused before any traffic: {refused}")
    elif cfg.environment == "kserve":
        rows = replay_rows(test_path, model_dir, REPLAY_ROWS)
        model = kserve_model(client, registered_model, str(version))
        out.update(
            kserve_rollout(
                registered_model,
                str(version),
                model.storage_uri,
                cfg,
                log,
                rows=rows,
                model=model,
                lookup=lambda v: kserve_model(client, registered_model, v),
            )
        )
    elif champion is None:
        out.update(outcome="promoted", reason="first champion: nothing serving to compare with")
    else:
        rows = replay_rows(test_path, model_dir, REPLAY_ROWS)
        stable_ref = f"models:/{registered_model}/{champion.version}"
        out.update(
            local_rollout(
                registered_model,
                stable_ref,
                str(champion.version),
                model_dir,
                str(version),
                rows,
                cfg.rollout,
                log,
                fault,
                target,
            )
        )

    if out["outcome"] == "promoted":
        out["previous_champion"] = registry.promote(client, registered_model, version)
    else:
        reason = f"{registry.ROLLOUT_REASON}{out['reason']}"
        registry.reject(client, registered_model, version, reason)
        out["previous_champion"] = None
    out["champion"] = str(
        registry.alias_version(client, registered_model, registry.CHAMPION).version
    )
    return out


def refuses_champions_requests(
    name: str, champion: str, model_dir: str, test_path: str, log: Callable[[str], None] = print
) -> str | None:
    """KServe's preflight (components/deploy/preflight.py `check_spec`): why the candidate at
    `model_dir` would refuse test rows shaped as the champion's clients send them, or None. Only
    the champion's feature spec is downloaded (JSON, nothing is deserialised). Test rows without
    one of the champion's features cannot be shaped so: the check is skipped, with a log line."""
    import tempfile

    import pyarrow as pa

    from components.deploy.preflight import Incompatible, check_spec

    with tempfile.TemporaryDirectory(prefix="mlpipe-preflight-") as tmp:
        extra, _ = registry.download_extra_files(name, champion, tmp)
        try:
            rows = replay_rows(test_path, str(extra), REPLAY_ROWS)
        except (KeyError, ValueError, pa.ArrowException) as exc:
            log(f"deploy: preflight skipped: the test rows lack a feature of champion {champion} "
                f"({exc})")  # fmt: skip
            return None
    try:
        check_spec(feature_spec(model_dir), rows)
    except Incompatible as exc:
        return f"candidate {exc} (champion {champion}'s feature spec)"
    return None


def verify_candidate(mv: Any, name: str, model_dir: str) -> None:
    """The candidate's files are the registered version's: a train model dir (MANIFEST.json)
    against the version's `mlpipe.model_digest` (the train stage's manifest digest), an MLflow
    model against the manifest tags. StageError otherwise (nothing was started)."""
    from pathlib import Path

    from components.common import model_integrity as mi
    from components.common.artifacts import MODEL_FILE

    what = f"{name} version {mv.version}"
    tags = mv.tags or {}
    try:
        mi.version_expectation(tags, what)  # refuses a version registered without a manifest
        if (Path(model_dir) / MODEL_FILE).is_file():
            mi.verify_model_dir(model_dir, tags.get(registry.DIGEST_TAG), what)
        else:
            mi.verify_version(model_dir, tags, what)
    except mi.ModelIntegrityError as exc:
        raise StageError(STAGE, str(exc), subject=str(mv.version)) from exc


def kserve_model(client: Any, name: str, version: str) -> Any:
    """The version as the InferenceService serves it: its storage URI and the manifest digest
    recorded on it (StageError for a version without one: KServe would load it unchecked)."""
    from components.common import model_integrity as mi
    from components.deploy.kserve_target import Model

    mv = registry.get_version(client, name, version)
    tags = mv.tags or {}
    if not tags.get(mi.MANIFEST_SHA256_TAG):
        raise StageError(
            STAGE,
            f"{name} version {version} has no {mi.MANIFEST_SHA256_TAG} tag: the model server "
            "could not check its files; re-register it (`mlpipe run`)",
            subject=str(version),
        )
    uri = model_storage_uri(client, name, version)
    return Model(version, uri, tags[mi.MANIFEST_SHA256_TAG], tags.get(mi.MANIFEST_TAG, ""))


REPLAY_ARTIFACT = "deploy/replay_rows.parquet"


def keep_replay_rows(client: Any, name: str, version: str, test_path: str) -> None:
    import tempfile
    from pathlib import Path

    import pandas as pd

    run_id = registry.get_version(client, name, version).run_id
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / Path(REPLAY_ARTIFACT).name
        pd.read_parquet(test_path).head(REPLAY_ROWS).to_parquet(target)
        client.log_artifact(run_id, str(target), artifact_path=str(Path(REPLAY_ARTIFACT).parent))


def fetch_for_approval(
    name: str, version: str, dst: str, tracking_uri: str = ""
) -> tuple[str, str]:
    """(model dir, replay rows file) of a version the pipeline left awaiting approval."""
    import mlflow

    client = registry.client(tracking_uri)
    mv = registry.get_version(client, name, version)
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{mv.version}", dst_path=f"{dst}/model"
    )
    # checked against the registry now; MANIFEST.json lets the servers started on it re-check
    from components.common import model_integrity

    if registry.verify_download(model_dir, mv, name):
        model_integrity.write_manifest(model_dir)
    try:
        rows = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=REPLAY_ARTIFACT, dst_path=f"{dst}/rows"
        )
    except Exception as exc:
        raise registry.RegistryError(
            f"{name} version {version} has no replay rows ({REPLAY_ARTIFACT} on its run): it was "
            "not left awaiting approval by the pipeline's deploy stage"
        ) from exc
    return model_dir, rows


def approve(
    registered_model: str,
    version: str,
    deployment: dict[str, Any],
    log: Callable[[str], None] = print,
    target: Any = None,
    tracking_uri: str = "",
) -> dict[str, Any]:
    """`run` for a version the pipeline's deploy stage left awaiting approval (`mlpipe approve`,
    `mlpipe simulate`): its model and replay rows come from the registry at `tracking_uri`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlpipe-approve-") as tmp:
        model_dir, rows = fetch_for_approval(registered_model, version, tmp, tracking_uri)
        return run(
            registered_model,
            version,
            model_dir,
            rows,
            deployment,
            log=log,
            target=target,
            tracking_uri=tracking_uri,
        )


def model_storage_uri(client: Any, name: str, version: str) -> str:
    """Where the registered version's model files are in the object store: what KServe's storage
    initializer fetches. An MLflow server that proxies artifacts (`--serve-artifacts`) answers
    `mlflow-artifacts:/<path>`, which lives under its `--artifacts-destination`; the pipeline's
    ConfigMap gives the same value as MLFLOW_ARTIFACTS_DESTINATION."""
    import os

    uri = client.get_model_version_download_uri(name, version)
    if uri.startswith("mlflow-artifacts:"):
        destination = os.environ.get("MLFLOW_ARTIFACTS_DESTINATION", "").rstrip("/")
        if not destination:
            raise StageError(
                STAGE,
                f"the model's files are at {uri} (proxied by MLflow); set "
                "MLFLOW_ARTIFACTS_DESTINATION (the MLflow server's --artifacts-destination, "
                "ConfigMap mlpipe-pipeline-env) so KServe can fetch them from the object store",
                subject=str(version),
            )
        return f"{destination}/{uri.split(':', 1)[1].lstrip('/')}"
    if uri.split("://", 1)[0] in ("s3", "gs", "https", "hdfs", "pvc"):
        return uri
    raise StageError(
        STAGE,
        f"KServe cannot fetch {uri}: register models in an object store (an MLflow server with "
        "--serve-artifacts and an S3 destination, as manifests/ deploy it)",
        subject=str(version),
    )


def cluster_metrics(k: Any, adapter: Any) -> Any:
    """The analysis windows' source: Prometheus when configured, else the model pods' own
    `/metrics`: the ready endpoints of each Knative revision's private Service."""
    from components.deploy.kserve_target import private_service
    from components.deploy.metrics import PrometheusMetrics, ScrapeMetrics

    if k.prometheus_url:
        return PrometheusMetrics(k.prometheus_url, k.namespace)

    def endpoints(revision: str) -> list[str]:
        ips = adapter.ready_addresses(k.namespace, private_service(revision))
        return [f"http://{ip}:{k.server_port}" for ip in ips]

    return ScrapeMetrics(endpoints)


def kserve_rollout(
    registered_model: str,
    version: str,
    storage_uri: str,
    cfg: Any,
    log: Callable[[str], None],
    adapter: Any = None,
    metrics: Any = None,
    rows: list[dict[str, Any]] | None = None,
    model: Any = None,
    lookup: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Roll the InferenceService `registered_model` out to `version` (`model`: a kserve_target
    Model with its storage URI and manifest digest). `lookup(version)` gives the stable model's
    digest when the live service predates manifests. Anything but "not found" when reading the
    service (no rights, a timeout) aborts with what is served unchanged."""
    from components.common.k8s import KubernetesError
    from components.deploy.kserve_target import KServeSettings, KServeTarget, Model
    from components.deploy.rollout import Candidate, Rollout

    model = model or Model(version, storage_uri)
    k = cfg.rollout.kserve
    if adapter is None:
        from components.common.k8s import CustomObjectsAdapter

        adapter = CustomObjectsAdapter()
    settings = KServeSettings.from_config(k)
    target = KServeTarget(
        adapter, registered_model, settings, metrics or (lambda: cluster_metrics(k, adapter))
    )
    try:
        stable = target.adopt()
        # served already: a crash after the rollout, before the registry move (no champion)
        already = stable is not None and target.serves_only(storage_uri)
    except KubernetesError as exc:
        raise StageError(
            STAGE,
            f"cannot read InferenceService {k.namespace}/{registered_model}: {exc}; nothing "
            "was changed",
            subject=str(version),
        ) from exc
    if stable is None:
        log(f"deploy: creating InferenceService {k.namespace}/{registered_model} ({version})")
        target.deploy(model)
        return {"outcome": "promoted", "reason": "first InferenceService created"}
    if already:
        log(f"deploy: InferenceService {k.namespace}/{registered_model} already serves {version}")
        return {"outcome": "promoted", "reason": "the InferenceService already serves it"}
    if not stable.sha256 and lookup is not None and stable.version:
        try:  # a rollback renders the stable model again: with its digest
            target.stable_model = lookup(stable.version)
        except StageError as exc:  # served from before manifests: moving away stays possible
            log(f"deploy: stable version {stable.version} has no manifest digest ({exc}); a "
                "rollback to it will be refused")  # fmt: skip
    target.digests[version] = (model.sha256, model.manifest)
    rollout = Rollout.from_config(target, cfg.rollout, log=log)
    candidate = Candidate(storage_uri, version)
    if not (rows and k.replay_test_rows):
        return rollout.run(candidate).to_dict()
    return replayed(target.url, registered_model, rows, lambda: rollout.run(candidate))


def restore_served(
    client: Any,
    registered_model: str,
    version: str,
    deployment: dict[str, Any],
    adapter: Any = None,
) -> str | None:
    """Serve `version` again where the deploy stage serves (`mlpipe rollback`): on KServe the
    InferenceService's model goes back to it; locally nothing runs between pipeline runs (a
    `mlpipe serve models:/NAME@champion` follows the alias). Returns what changed, if anything."""
    cfg = _config(deployment)
    if cfg.environment != "kserve":
        return None
    return _restore(client, cfg, registered_model, version, _target(cfg, registered_model, adapter))


def serve_champion(
    client: Any, cfg: Any, registered_model: str, log: Callable[[str], None], adapter: Any = None
) -> str | None:
    """KServe, first in every deploy: the registry is the source of truth. When the
    InferenceService does not serve the registry's champion alone (a crash between a rollout
    and the registry move, or in the middle of a rollout: another model, a canary left at a
    percent), the champion is served again (`restore_served`'s move) before anything else; the
    candidate then goes through its rollout again. Nothing without a champion or without an
    InferenceService (the deploy creates it). Returns what changed, if anything."""
    from components.common.k8s import KubernetesError

    champion = registry.alias_version(client, registered_model, registry.CHAMPION)
    if champion is None:
        return None
    version = str(champion.version)
    uri = model_storage_uri(client, registered_model, version)
    target = _target(cfg, registered_model, adapter)
    try:
        found = target.serving()
        if found is None or target.serves_only(uri):
            return None
    except KubernetesError as exc:
        raise StageError(
            STAGE,
            f"cannot read InferenceService {cfg.rollout.kserve.namespace}/{registered_model}: "
            f"{exc}; nothing was changed",
            subject=version,
        ) from exc
    uri, percent = found
    log(
        f"deploy: InferenceService {registered_model} serves {uri}"
        + (f" (canary at {percent}%)" if percent is not None else "")
        + f", not the champion (version {version}): serving the champion again first"
    )
    done = _restore(client, cfg, registered_model, version, target)
    log(f"deploy: {done}")
    return done


def _target(cfg: Any, registered_model: str, adapter: Any = None) -> Any:
    from components.deploy.kserve_target import KServeSettings, KServeTarget

    if adapter is None:
        from components.common.k8s import CustomObjectsAdapter

        adapter = CustomObjectsAdapter()
    return KServeTarget(adapter, registered_model, KServeSettings.from_config(cfg.rollout.kserve))


def _restore(client: Any, cfg: Any, registered_model: str, version: str, target: Any) -> str:
    """The InferenceService serves `version` alone again (KServeTarget.restore)."""
    model = kserve_model(client, registered_model, version)
    target.restore(model)
    return (
        f"InferenceService {cfg.rollout.kserve.namespace}/{registered_model} serves version "
        f"{version} ({model.storage_uri})"
    )
