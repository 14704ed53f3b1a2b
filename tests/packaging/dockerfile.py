"""A small Dockerfile reader and the project's rules for its image Dockerfiles.

`parse` joins continuation lines, drops comments and splits the file into build stages;
`dockerfile_errors` says what breaks the rules (empty: none):
- every base image pinned by version, no `:latest` anywhere;
- the final stage installs Python packages only from its own `images/<image>/requirements.lock`
  (`--no-deps`, plus `--require-hashes` when the lock carries hashes) and the project wheel with
  `--no-deps`; the lock is copied and installed before the project code (layer caching);
- a builder stage installs only from `images/build-requirements.lock` with hashes;
- a numeric non-root USER before CMD/ENTRYPOINT; the OCI labels source, version and title.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

OCI_LABELS = (
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
    "org.opencontainers.image.title",
)
BUILD_LOCK = "images/build-requirements.lock"


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    """Stages in order; instructions before the first FROM (ARG) are ignored."""
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue  # comments vanish even inside a continuation, as in Docker
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        logical.append((start, buffer))
        buffer = ""
    if buffer:
        logical.append((start, buffer))
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args.strip(), number))
    return stages


def _labels(stage: Stage) -> dict[str, str]:
    labels = {}
    for instruction in stage.all("LABEL"):
        for token in shlex.split(instruction.args):
            key, sep, value = token.partition("=")
            if sep:
                labels[key] = value
    return labels


def _pip_installs(instruction: Instruction) -> list[list[str]]:
    """The argument lists of each `pip install` in a RUN (commands split at && ; ||)."""
    found = []
    for command in re.split(r"&&|\|\||;", instruction.args):
        tokens = shlex.split(command)
        for i in range(len(tokens) - 1):
            if tokens[i] == "pip" and tokens[i + 1] == "install":
                found.append(tokens[i + 2 :])
                break
    return found


def _lock_has_hashes(lock: Path) -> bool:
    return "--hash=sha256:" in lock.read_text()


def _copied(stage: Stage, source: str) -> tuple[int, str] | None:
    """(index, destination) of the COPY of `source` in the stage."""
    for index, instruction in enumerate(stage.instructions):
        if instruction.keyword == "COPY":
            parts = [p for p in instruction.args.split() if not p.startswith("--")]
            if source in parts[:-1]:
                return index, parts[-1]
    return None


def _check_install(
    args: list[str], allowed_lock: str | None, needs_hashes: bool, where: str
) -> list[str]:
    errors = []
    flags = {a for a in args if a.startswith("-")}
    positional = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in ("-r", "--requirement"):
            if args[i + 1] != allowed_lock:
                errors.append(f"{where}: installs from {args[i + 1]}, not its lock")
            skip = True
        elif not arg.startswith("-"):
            positional.append(arg)
    uses_lock = "-r" in args or "--requirement" in args
    if "--no-deps" not in flags:
        errors.append(f"{where}: pip install without --no-deps: {' '.join(args)}")
    if uses_lock and needs_hashes and "--require-hashes" not in flags:
        errors.append(f"{where}: the lock has hashes but --require-hashes is missing")
    for package in positional:
        if not re.fullmatch(r"/tmp/dist/mlpipe-\*?[\w.\-]*\.whl", package):
            errors.append(f"{where}: installs {package!r} outside its lock")
    if not uses_lock and not positional:
        errors.append(f"{where}: pip install of nothing known: {' '.join(args)}")
    return errors


def dockerfile_errors(path: Path, image: str, repo_root: Path) -> list[str]:
    text = path.read_text()
    errors = []
    if ":latest" in text:
        errors.append(f"{path.name}: mentions :latest")
    stages = parse(text)
    if not stages:
        return [f"{path.name}: no FROM"]
    aliases = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.base in aliases:
            continue
        match = re.fullmatch(r"[\w.\-/]+:(?P<tag>[\w.\-]+)(@sha256:[0-9a-f]{64})?", stage.base)
        if not match or not re.search(r"\d+\.\d+", match.group("tag")):
            errors.append(f"FROM {stage.base}: not pinned by version")

    final, builders = stages[-1], stages[:-1]
    lock = f"images/{image}/requirements.lock"
    copied = _copied(final, lock)
    if copied is None:
        errors.append(f"final stage does not COPY {lock}")
        return errors
    lock_index, lock_dest = copied
    needs_hashes = _lock_has_hashes(repo_root / lock)
    install_index = None
    for index, instruction in enumerate(final.instructions):
        if instruction.keyword != "RUN":
            continue
        for args in _pip_installs(instruction):
            where = f"line {instruction.line}"
            errors += _check_install(args, lock_dest, needs_hashes, where)
            if ("-r" in args or "--requirement" in args) and install_index is None:
                install_index = index
    if install_index is None or install_index < lock_index:
        errors.append(f"final stage never installs {lock} after copying it")
    project_copies = [
        i
        for i, ins in enumerate(final.instructions)
        if ins.keyword == "COPY"
        and ("--from=" in ins.args or any(p in ins.args.split() for p in ("components", ".")))
    ]
    if not project_copies:
        errors.append("final stage never copies the project")
    elif install_index is not None and min(project_copies) < install_index:
        errors.append("the project is copied before the lock is installed (breaks layer caching)")

    for stage in builders:
        copied_build = _copied(stage, BUILD_LOCK)
        for instruction in stage.all("RUN"):
            for args in _pip_installs(instruction):
                dest = copied_build[1] if copied_build else None
                errors += _check_install(args, dest, True, f"builder line {instruction.line}")

    users = final.all("USER")
    starts = [i.line for i in final.instructions if i.keyword in ("CMD", "ENTRYPOINT")]
    if not users:
        errors.append("no USER in the final stage")
    else:
        user = users[-1].args.split(":")[0]
        if user in ("root", "0") or not user.isdigit():
            errors.append(f"USER {users[-1].args}: must be a numeric non-root uid")
        if starts and users[-1].line > min(starts):
            errors.append("USER comes after CMD/ENTRYPOINT")
    if not starts:
        errors.append("no CMD or ENTRYPOINT")
    labels = _labels(final)
    errors += [f"missing LABEL {key}" for key in OCI_LABELS if not labels.get(key)]
    return errors
