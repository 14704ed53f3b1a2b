"""What the local runners rely on in kfp.local (2.17) beyond its public API: the lines it logs,
its cache entries, its pipeline root's layout, its `print` replacement. Each is checked against a
real kfp.local run by tests/pipelines/test_kfp_local_internals.py: a kfp upgrade that changes one
fails there, not silently in `mlpipe run`'s progress and summary."""

import builtins
import contextlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# kfp/local/logging_utils.py colours task names and statuses
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# kfp/local/task_dispatcher.py; the cache hit: orchestrator/task_executor.py (the key's first 12)
EXECUTING = re.compile(r"Executing task '?([\w-]+)'?")
CACHE_HIT = re.compile(r"Task '?([\w-]+)'? cache hit \(key=([0-9a-f]+)\)")
FINISHED = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
# kfp/dsl/executor.py: each executed task's whole input follows as indented JSON
EXECUTOR_INPUT = re.compile(r"^(\s*)\[KFP Executor [^\]]*\]: Got executor_input:\s*$")
# logging_utils.py `make_log_lines_for_outputs`: a finished task's outputs, metadata as a dict
# (our stages' task record there names a fanned-out task)
RECORD_NAME = re.compile(r"'task': '([\w-]+)'")
# kfp/local/executor_input_utils.py: <root>/<pipeline name>-<this stamp>/<task>/<output name>
RUN_STAMP = "2026-12-03-14-53-24-460659"  # strftime("%Y-%m-%d-%H-%M-%S-%f")


def cache_entry(cache_root: Path, key_prefix: str) -> dict[str, Any] | None:
    """The outputs kfp.local cached under the key starting with `key_prefix` (kfp/local/cache.py:
    `<cache root>/<key>.json`, an artifact as a dict with its `metadata`); None if unreadable."""
    for entry in cache_root.glob(f"{key_prefix}*.json"):
        try:
            return json.loads(entry.read_text())
        except (OSError, json.JSONDecodeError):
            return None
    return None


def run_folder(artifact_path: str | Path) -> Path:
    """The pipeline run's folder that an output artifact's file lies in."""
    return Path(artifact_path).parents[1]


def previous_run_folder(run_dir: Path) -> Path | None:
    """The same pipeline's run folder just before `run_dir` (the names end in a timestamp)."""
    pipeline = run_dir.name[: -len(RUN_STAMP)]
    before = sorted(
        p for p in run_dir.parent.glob(f"{pipeline}*") if p.is_dir() and p.name < run_dir.name
    )
    return before[-1] if pipeline and before else None


@contextlib.contextmanager
def info_logging(stream: Any) -> Iterator[None]:
    """kfp.local logs cache hits at INFO outside its own logging context: catch them too. And
    put `print` back afterwards: kfp.local indents task output by replacing `builtins.print`
    for the process (kfp/local/logging_utils.py `indented_print`), and a replacement left in
    place prefixes every later print, on any stream, with four spaces on stdout."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    level = root.level
    original_print = builtins.print
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        builtins.print = original_print
