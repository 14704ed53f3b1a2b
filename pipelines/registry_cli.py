"""`mlpipe approve | reject | models`: decide on a challenger by hand, list the registry.

mlpipe approve VERSION              promote a version the gate blessed to `champion`
mlpipe reject VERSION --reason R    tag it rejected; `champion` stays where it is
mlpipe models                       every version: aliases, status, ROC AUC, lineage

The registered model comes from the config (project.registered_model) unless --model names it;
the store from MLFLOW_TRACKING_URI, else the local store under outputs/mlflow.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from components.common.config import DEFAULT_PIPELINE_CONFIG, load_pipeline_config


def _target(args: argparse.Namespace) -> tuple[Any, str]:
    from components.common import registry

    name = args.model or load_pipeline_config(args.config).project.registered_model
    return registry.client(args.tracking_uri or ""), name


def cmd_approve(args: argparse.Namespace) -> int:
    from components.common import registry

    client, name = _target(args)
    try:
        old = registry.approve(client, name, args.version)
    except registry.RegistryError as exc:
        print(f"mlpipe approve: {exc}", file=sys.stderr)
        return 1
    moved = f"; version {old} is now previous" if old else ""
    print(f"{name} version {args.version} is now champion{moved}")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    from components.common import registry

    client, name = _target(args)
    try:
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
    print(f"{'version':>7}  {'aliases':<22} {'status':<11} {'roc_auc':>8}  pipeline run")
    for mv in sorted(versions, key=lambda v: int(v.version)):
        tags = mv.tags or {}
        aliases = ",".join(held.get(str(mv.version), [])) or "-"
        status = tags.get(registry.STATUS_TAG, "candidate")
        auc = tags.get("metric.roc_auc", "")
        auc = f"{float(auc):.4f}" if auc else "-"
        print(
            f"{mv.version:>7}  {aliases:<22} {status:<11} {auc:>8}  "
            f"{tags.get('mlpipe.pipeline_run', '-')}"
        )
    return 0


def add_registry_parser(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=str(DEFAULT_PIPELINE_CONFIG), help="pipeline config")
        p.add_argument("--model", help="registered model (default: project.registered_model)")
        p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI)")

    approve = sub.add_parser("approve", help="promote a blessed challenger to champion")
    approve.add_argument("version")
    common(approve)
    approve.set_defaults(func=cmd_approve)

    reject = sub.add_parser("reject", help="reject a challenger; the champion stays")
    reject.add_argument("version")
    reject.add_argument("--reason", default="rejected by hand", help="recorded on the version")
    common(reject)
    reject.set_defaults(func=cmd_reject)

    models = sub.add_parser("models", help="list the registered versions and their aliases")
    common(models)
    models.set_defaults(func=cmd_models)
