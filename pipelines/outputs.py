"""Placing a run's artifacts under outputs/ without writing their bytes again.

A local run's model, data and reports already sit in kfp.local's task folders (outputs/kfp/...),
and a cached task's outputs are the earlier run's files: copying them into outputs/models,
outputs/data and outputs/reports wrote the same ~5 MB again on every run. Hard links give each run
its own path to the same bytes (readers see ordinary files; deleting one path never breaks the
other); a copy is the fallback where a link cannot be made (another file system, no permission).
Artifacts are never modified after their task: sharing their inodes is safe.

A task that is never cached (gate) writes a new file each run, the same bytes when nothing
changed: `share_identical` turns such a file into one more link to the earlier identical one.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

from pipelines.kfp_local_internals import previous_run_folder


def link_or_copy(source: str | Path, target: str | Path) -> str:
    """Put `source` (a file or a folder, recursively) at `target`: hard links when possible,
    else copies. Returns "linked", "copied" or "missing" (no source: nothing written). An
    existing target file is replaced."""
    source, target = Path(source), Path(target)
    if source.is_dir():
        how = {"linked"}
        for path in sorted(source.rglob("*")):
            dest = target / path.relative_to(source)
            if path.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            else:
                how.add(_link_file(path, dest))
        target.mkdir(parents=True, exist_ok=True)
        return "copied" if "copied" in how else "linked"
    if not source.exists():
        return "missing"
    return _link_file(source, target)


def _link_file(source: Path, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and os.path.samefile(source, target):
        return "linked"
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        os.link(source, tmp)
        how = "linked"
    except OSError:  # another file system, or links not allowed: the bytes, once more
        shutil.copy2(source, tmp)
        how = "copied"
    os.replace(tmp, target)  # atomic: a reader never sees a half-written file
    return how


def share_identical(path: str | Path, earlier: list[Path]) -> Path | None:
    """Make the file `path` a hard link to the first of `earlier` with the same bytes (an
    unchanged re-run's report): the new bytes are freed. Returns that file, or None (nothing
    identical, or it cannot be linked: `path` is left as written)."""
    path = Path(path)
    if not path.is_file():
        return None
    size = path.stat().st_size
    for old in earlier:
        try:
            same = old.stat().st_size == size and filecmp.cmp(old, path, shallow=False)
        except OSError:  # removed meanwhile (mlpipe clean)
            continue
        if same:
            return old if link_or_copy(old, path) == "linked" else None
    return None


def share_with_previous_run(run_dir: str | Path) -> int:
    """Each file of kfp.local's folder `run_dir` that the previous run's folder holds at the same
    path with the same bytes becomes a link to it: the never-cached tasks' small outputs
    (blessing, registration, deployment) of an unchanged re-run. Returns how many were shared."""
    run_dir = Path(run_dir)
    before = previous_run_folder(run_dir)
    if before is None:
        return 0
    shared = 0
    for path in run_dir.rglob("*"):
        if path.is_file() and share_identical(path, [before / path.relative_to(run_dir)]):
            shared += 1
    return shared
