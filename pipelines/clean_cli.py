"""`mlpipe clean [--keep N] [--all] [--dry-run] [--output-dir D]`: remove old run outputs.

A run's outputs are the files named after it: models/<run>/, data/<run>.parquet,
reports/<run>-*.html, logs/<run>.log, and kfp.local's task folder kfp/<pipeline>-<time>/. The
newest `--keep` runs stay, and so does anything still needed:
- a kfp task folder a cache entry points at (the next run's cache hits read it);
- a run whose model the registry's current versions (champion, challenger, previous) come from;
- a path a running process (`mlpipe serve --model DIR`) was started with.
The MLflow store (the registry's models live there), the dataset catalogue and the alert log stay
unless `--all`, which empties the outputs folder. Nothing outside the outputs folder is touched.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_KEEP = 5
# mlpipe-training-20261203-111844[-123] (our run names) and kfp.local's
# mlpipe-training-2026-12-03-11-18-44-709999 (its task folders)
RUN_NAME = re.compile(r"^(mlpipe-[a-z]+-\d{8}-\d{6}(?:-\d{3})?)(?:\.parquet|\.log|-.+\.html)?$")
KFP_RUN = re.compile(r"^mlpipe-[a-z]+-\d{4}(?:-\d{2}){5}-\d+$")
KFP_NAME = re.compile(r"mlpipe-[a-z]+-\d{4}(?:-\d{2}){5}-\d+")


@dataclass
class Plan:
    remove: list[Path] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # run → why (beyond being recent)

    def size_mb(self) -> float:
        return sum(_size(p) for p in self.remove) / 1e6


def _size(path: Path) -> int:
    """Bytes freed by removing `path`: files with other hard links free nothing."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.stat().st_nlink == 1)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def run_groups(out: Path) -> dict[str, list[Path]]:
    """{run name: its paths} for the per-run files, oldest name first (names sort by time)."""
    groups: dict[str, list[Path]] = {}
    for sub in ("models", "data", "reports", "logs"):
        folder = out / sub
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = RUN_NAME.match(path.name)
            if match:
                groups.setdefault(match.group(1), []).append(path)
    return dict(sorted(groups.items()))


def cached_kfp_runs(out: Path) -> set[str]:
    """kfp task folders that kfp.local's cache entries point at."""
    needed = set()
    kfp = out / "kfp"
    for entry in (kfp / ".kfp_cache").glob("*.json"):
        try:
            text = entry.read_text()
        except OSError:
            continue
        needed |= set(KFP_NAME.findall(text))
    return needed


def kfp_names(paths: list[Path]) -> set[str]:
    """The kfp.local run names a run's log mentions: MLflow tags runs with those (the
    registry's versions name their run by it), not with our run name."""
    names: set[str] = set()
    for path in paths:
        if path.suffix == ".log" and path.is_file():
            with open(path, errors="replace") as fh:
                names |= set(KFP_NAME.findall(fh.read(65536)))
    return names


def registry_paths(tracking_uri: str, registered_model: str) -> tuple[set[str], set[Path]]:
    """Run names and source paths of the registry's aliased versions (champion, challenger,
    previous): ({pipeline run tags}, {local source paths}). Empty when there is no registry."""
    import mlflow

    from components.common import mlflow_utils as mu
    from components.common import registry

    names: set[str] = set()
    sources: set[Path] = set()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        held = registry.held_aliases(client, registered_model)
    except Exception:  # no store, no model yet: nothing registered to protect
        return names, sources
    for version in set(held.values()):
        mv = registry.get_version(client, registered_model, version)
        source = str(mv.source or "")
        if source.startswith("file://"):
            source = source[len("file://") :]
        if source.startswith("/"):
            sources.add(Path(source))
        if mv.run_id:
            try:
                tag = client.get_run(mv.run_id).data.tags.get(mu.PIPELINE_RUN_TAG)
            except Exception:
                tag = None
            if tag:
                names.add(tag)
    return names, sources


def process_paths() -> set[Path]:
    """Absolute paths named on the command lines of this machine's processes (a running
    `mlpipe serve --model DIR`): those are never removed."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        found |= {Path(os.fsdecode(a)) for a in args if a.startswith(b"/")}
    return found


def plan(
    out: Path,
    keep: int,
    registry: tuple[set[str], set[Path]] = (set(), set()),
    in_use: set[Path] | None = None,
) -> Plan:
    """What `mlpipe clean --keep N` removes, and why the older runs it keeps stay."""
    result = Plan()
    names, sources = registry
    in_use = in_use if in_use is not None else set()
    groups = run_groups(out)
    old = list(groups)[: max(len(groups) - keep, 0)]
    for run in old:
        paths = groups[run]
        tagged = {run} | kfp_names(paths)
        if tagged & names or any(_inside(s, p) for s in sources for p in paths):
            result.kept[run] = "the registry's current versions come from it"
        elif any(_inside(u, p) for u in in_use for p in paths):
            result.kept[run] = "a running process uses it"
        else:
            result.remove += paths
    kfp = out / "kfp"
    runs = (
        sorted(p for p in kfp.iterdir() if p.is_dir() and KFP_RUN.match(p.name))
        if (kfp.is_dir())
        else []
    )
    cached = cached_kfp_runs(out)
    for path in runs[: max(len(runs) - keep, 0)]:
        if path.name in cached:
            result.kept[f"kfp/{path.name}"] = "the task cache points at it"
        elif path.name in names:
            result.kept[f"kfp/{path.name}"] = "the registry's current versions come from it"
        elif any(_inside(u, path) for u in in_use):
            result.kept[f"kfp/{path.name}"] = "a running process uses it"
        else:
            result.remove.append(path)
    return result


def plan_all(out: Path) -> Plan:
    return Plan(remove=sorted(out.iterdir()) if out.is_dir() else [])


def _remove(path: Path, out: Path) -> None:
    if not _inside(path, out) or path.resolve() == out.resolve():  # never outside outputs/
        raise RuntimeError(f"refusing to remove {path}: not inside {out}")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def cmd_clean(args: argparse.Namespace) -> int:
    out = Path(args.output_dir).resolve()
    if args.keep < 0:
        print(f"mlpipe clean: --keep must be 0 or more, not {args.keep}")
        return 2
    if not out.is_dir():
        print(f"mlpipe clean: nothing to clean ({out} does not exist)")
        return 0
    if args.all:
        todo = plan_all(out)
    else:
        todo = plan(out, args.keep, _registry(args, out), process_paths())
    verb = "would remove" if args.dry_run else "removed"
    size = todo.size_mb()
    for path in todo.remove:
        if not args.dry_run:
            _remove(path, out)
        print(f"{verb} {path.relative_to(out)}")
    for what, why in todo.kept.items():
        print(f"kept {what}: {why}")
    scope = (
        "everything, the registry and MLflow store too"
        if args.all
        else (f"keeping the newest {args.keep} runs, the registry and MLflow store")
    )
    print(f"mlpipe clean: {verb} {len(todo.remove)} path(s), {size:.1f} MB in {out} ({scope})")
    return 0


def _registry(args: argparse.Namespace, out: Path) -> tuple[set[str], set[Path]]:
    from components.common.config import load_settings
    from components.common.mlflow_utils import default_tracking_uri

    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(out / "mlflow")
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return set(), set()  # no store: nothing registered (and none is created by looking)
    model = load_settings(args.config, args.schema).pipeline.project.registered_model
    return registry_paths(uri, model)


def _keep(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--keep takes a whole number, not {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"--keep must be 0 or more, not {number}")
    return number


def add_clean_parser(sub: Any) -> None:
    """Register `mlpipe clean` on the CLI's subparsers."""
    from pipelines.cli_args import add_config_args, add_output_dir_arg

    p = sub.add_parser("clean", help="remove old runs' outputs (keeps the registry)")
    add_config_args(p, overrides=False)  # the config names the registered model
    p.add_argument("--keep", type=_keep, default=DEFAULT_KEEP, help="newest runs to keep (5)")
    p.add_argument("--all", action="store_true", help="everything: registry and MLflow too")
    p.add_argument("--dry-run", action="store_true", help="print what would go; remove nothing")
    add_output_dir_arg(p)
    p.set_defaults(func=cmd_clean)
