"""`mlpipe approve | reject | rollback | models`: decide by hand, list the registry.

mlpipe approve VERSION              deploy a version the gate blessed (rollout → `champion`)
mlpipe reject VERSION --reason R    tag it rejected; `champion` stays where it is
mlpipe rollback [--reason R]        the previous champion served again (the InferenceService with
                                    deployment.environment kserve), then `champion` back to
                                    `previous`; the demoted one is rejected
mlpipe models                       every version: aliases, status, ROC AUC, lineage, and
                                    the reason (rejected by whom and why, awaiting approval
                                    since when)

approve, reject and rollback hold the registered model's lock (`registry.lock`; approve through
the deploy stage): one of them while a deploy runs fails fast, naming the holder. A rejected
version is shown as rejected whatever alias a crash may have left on it (`registry.reconcile`,
which every move runs first, removes such an alias).

The registered model comes from the config (project.registered_model) unless --model names it;
the store from MLFLOW_TRACKING_URI, else the local store under outputs/mlflow.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from components.common.config import load_pipeline_config
from components.common.mlflow_utils import PIPELINE_RUN_TAG as RUN_TAG  # register's lineage tag
from pipelines.cli_args import add_config_args, add_tracking_uri_arg, settings_from_args


def _target(args: argparse.Namespace) -> tuple[Any, str]:
    from components.common import registry

    name = args.model or load_pipeline_config(args.config).project.registered_model
    return registry.client(args.tracking_uri or ""), name


def cmd_approve(args: argparse.Namespace) -> int:
    """Deploy a challenger that waited for approval (the deploy stage's rollout, then champion)."""
    from components.common import registry
    from components.common.errors import StageError
    from components.deploy.deploy import approve

    client, name = _target(args)
    settings = settings_from_args(args)
    try:
        registry.check_approvable(client, name, args.version)
        out = approve(
            name,
            args.version,
            settings.pipeline.deployment.model_dump(mode="json"),
            log=lambda msg: print(msg, flush=True),
        )
    except (registry.RegistryError, StageError) as exc:
        print(f"mlpipe approve: {exc}", file=sys.stderr)
        return 1
    if out["outcome"] != "promoted":
        print(f"{name} version {args.version} rolled back: {out['reason']}")
        return 1
    moved = (
        f"; version {out['previous_champion']} is now previous" if out["previous_champion"] else ""
    )
    print(f"{name} version {args.version} is now champion{moved}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from components.common import registry
    from components.common.errors import StageError
    from components.common.k8s import KubernetesError
    from components.deploy.deploy import restore_served
    from components.deploy.rollout import CandidateFailed

    client, name = _target(args)
    try:
        with registry.lock(client, name, "mlpipe rollback"):
            _, previous = registry.rollback_target(client, name)
            # what is served first: the registry moves only once the previous model serves again
            try:
                served = restore_served(
                    client,
                    name,
                    str(previous.version),
                    settings_from_args(args).pipeline.deployment.model_dump(),
                )
            except (StageError, KubernetesError, CandidateFailed) as exc:
                print(f"mlpipe rollback: nothing changed, serving failed: {exc}", file=sys.stderr)
                return 1
            demoted, now = registry.rollback(client, name, args.reason)
    except registry.RegistryError as exc:
        print(f"mlpipe rollback: {exc}", file=sys.stderr)
        return 1
    if served:
        print(served)
    print(f"{name}: champion is version {now} again; version {demoted} is rolled back")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    from components.common import registry

    client, name = _target(args)
    try:
        with registry.lock(client, name, f"mlpipe reject {args.version}"):
            registry.reject(client, name, args.version, args.reason)
    except registry.RegistryError as exc:
        print(f"mlpipe reject: {exc}", file=sys.stderr)
        return 1
    champion = registry.alias_version(client, name, registry.CHAMPION)
    serving = f"; champion stays version {champion.version}" if champion else ""
    print(f"{name} version {args.version} rejected ({args.reason}){serving}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from components.common import registry

    client, name = _target(args)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        print(f"no versions of {name!r} in the registry")
        return 0
    # search results carry no aliases: ask for each one
    held: dict[str, list[str]] = {}
    for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS):
        mv = registry.alias_version(client, name, alias)
        if mv is not None:
            held.setdefault(str(mv.version), []).append(alias)
    champion = next((v for v, a in held.items() if registry.CHAMPION in a), None)
    width = max(len("pipeline run"), *(len((v.tags or {}).get(RUN_TAG, "-")) for v in versions))
    print(
        f"{'version':>7}  {'aliases':<22} {'status':<11} {'roc_auc':>8}  "
        f"{'pipeline run':<{width}}  reason"
    )
    for mv in sorted(versions, key=lambda v: int(v.version)):
        tags = mv.tags or {}
        aliases = ",".join(held.get(str(mv.version), [])) or "-"
        status = registry.derived_status(tags, held.get(str(mv.version), [])) or "candidate"
        auc = tags.get("metric.roc_auc", "")
        auc = f"{float(auc):.4f}" if auc else "-"
        print(
            f"{mv.version:>7}  {aliases:<22} {status:<11} {auc:>8}  "
            f"{tags.get(RUN_TAG, '-'):<{width}}  {_reason(mv, status, champion)}"
        )
    return 0


def _reason(mv: Any, status: str, champion: str | None) -> str:
    """Why a version is where it is, from the tags the registry wrote (its moves unchanged)."""
    import time

    from components.common import registry

    tags = mv.tags or {}
    rejected = registry.rejected_by(tags)
    if rejected is not None:
        who, reason = rejected
        return f"{'rolled back' if who == 'mlpipe rollback' else 'rejected'} by {who}: {reason}"
    if status == registry.CHALLENGER:
        # the deploy stage moves a challenger on at once unless approval is required
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(mv.last_updated_timestamp / 1000))
        return f"awaiting approval since {since} (mlpipe approve {mv.version})"
    if status == registry.PREVIOUS:
        return f"replaced by version {champion}" if champion else "replaced"
    if status == registry.CANDIDATE and tags.get(registry.GATE_TAG) == "passed":
        return "replaced as challenger by a newer version"
    return "-"


def add_registry_parser(sub: Any) -> None:
    def common(p: argparse.ArgumentParser, overrides: bool = False) -> None:
        add_config_args(p, schema=False, overrides=overrides)
        p.add_argument("--model", help="registered model (default: project.registered_model)")
        add_tracking_uri_arg(p)

    approve = sub.add_parser(
        "approve", help="deploy a challenger that waits for approval (rollout, then champion)"
    )
    approve.add_argument("version")
    common(approve, overrides=True)
    approve.set_defaults(func=cmd_approve)

    back = sub.add_parser("rollback", help="put the previous champion back; reject the current")
    back.add_argument("--reason", default="by hand", help="recorded on the demoted version")
    common(back, overrides=True)
    back.set_defaults(func=cmd_rollback)

    reject = sub.add_parser("reject", help="reject a challenger; the champion stays")
    reject.add_argument("version")
    reject.add_argument("--reason", default="rejected by hand", help="recorded on the version")
    common(reject)
    reject.set_defaults(func=cmd_reject)

    models = sub.add_parser("models", help="list the registered versions and their aliases")
    common(models)
    models.set_defaults(func=cmd_models)
