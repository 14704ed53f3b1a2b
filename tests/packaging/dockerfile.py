"""A small Dockerfile reader and the project's rules for its image Dockerfiles.

`parse` joins continuation lines, drops comments and splits the file into build stages;
`dockerfile_errors` says what breaks the rules (empty: none):
- every base image pinned by version (FROM read through the global ARG defaults, as Docker does),
  no `:latest` anywhere;
- the final stage installs Python packages only from its own `images/<image>/requirements.lock`
  (`--no-deps`, plus `--require-hashes` when the lock carries hashes) and the project wheel with
  `--no-deps`; the lock is copied and installed before the project code (layer caching);
- a builder stage installs only from `images/build-requirements.lock` with hashes;
- wheels the final stage installs with `--find-links` come from a builder stage (`COPY --from=`),
  and the final image (its stage and the stages it derives from) installs no compiler;
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
# pip options that take a value (the value is not a package)
PIP_VALUE_OPTIONS = {
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-f",
    "--find-links",
    "-i",
    "--index-url",
    "--extra-index-url",
    "--only-binary",
    "--no-binary",
    "-t",
    "--target",
    "--prefix",
    "--root",
}
# Debian packages that put a compiler or build headers into an image
COMPILER_PACKAGES = re.compile(
    r"^(gcc|g\+\+|cpp|clang|build-essential|gfortran|make|cmake|python3?(\.\d+)?-dev|"
    r"libpython3(\.\d+)?-dev)(=.*)?$"
)


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


def parse(text: str, resolve_args: bool = True) -> list[Stage]:
    """Stages in order. ARGs before the first FROM are not instructions of a stage; as in Docker,
    their defaults fill `${NAME}`/`$NAME` in FROM (unless `resolve_args` is false)."""
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
    global_args: dict[str, str] = {}
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = args.strip().partition("=")
            global_args[name] = default
        if keyword == "FROM":
            if resolve_args:
                args = re.sub(
                    r"\$\{(\w+)\}|\$(\w+)",
                    lambda m: global_args.get(m.group(1) or m.group(2), m.group(0)),
                    args,
                )
            parts = args.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args.strip(), number))
    return stages


def lineage(stages: list[Stage], stage: Stage) -> list[Stage]:
    """The stage and the stages it derives from (`FROM <alias>`), nearest first."""
    by_name = {s.name: s for s in stages if s.name}
    chain = [stage]
    while chain[-1].base in by_name and by_name[chain[-1].base] not in chain:
        chain.append(by_name[chain[-1].base])
    return chain


def root_base(stages: list[Stage], stage: Stage) -> str:
    """The image a stage finally builds on, through stage aliases."""
    return lineage(stages, stage)[-1].base


def _labels(stage: Stage) -> dict[str, str]:
    labels = {}
    for instruction in stage.all("LABEL"):
        for token in shlex.split(instruction.args):
            key, sep, value = token.partition("=")
            if sep:
                labels[key] = value
    return labels


def _commands(script: str) -> list[list[str]]:
    """A RUN's shell commands as token lists, split at && || ; | & outside quotes."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _pip_installs(instruction: Instruction) -> list[list[str]]:
    """The argument lists of each `pip install` in a RUN."""
    found = []
    for tokens in _commands(instruction.args):
        for i in range(len(tokens) - 1):
            if tokens[i] == "pip" and tokens[i + 1] == "install":
                found.append(tokens[i + 2 :])
                break
    return found


def _options(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """pip arguments as ({option: [values]}, positionals); `--opt=value` and `--opt value`."""
    options: dict[str, list[str]] = {}
    positional = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            name, sep, value = arg.partition("=")
            if not sep and name in PIP_VALUE_OPTIONS and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            options.setdefault(name, []).append(value)
        else:
            positional.append(arg)
        i += 1
    return options, positional


def _apt_installs(instruction: Instruction) -> list[str]:
    """The packages of each `apt-get install` in a RUN."""
    found = []
    for tokens in _commands(instruction.args):
        for i in range(len(tokens) - 1):
            if tokens[i] in ("apt-get", "apt") and tokens[i + 1] == "install":
                found += [t for t in tokens[i + 2 :] if not t.startswith("-")]
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


def _copy_source_stage(instruction: Instruction) -> str | None:
    for part in instruction.args.split():
        if part.startswith("--from="):
            return part.removeprefix("--from=")
    return None


def _copies_project(stage: Stage) -> bool:
    """The stage copies the project's code (components/ or the whole context)."""
    for instruction in stage.all("COPY"):
        if _copy_source_stage(instruction) is not None:
            continue
        sources = [p for p in instruction.args.split() if not p.startswith("--")][:-1]
        if any(p.rstrip("/") in ("components", ".") for p in sources):
            return True
    return False


def _copied_from_builders(final: Stage, builders: list[Stage]) -> list[str]:
    """Destinations of the final stage's `COPY --from=<builder stage>`."""
    names = {s.name for s in builders if s.name}
    return [
        [p for p in ins.args.split() if not p.startswith("--")][-1]
        for ins in final.all("COPY")
        if _copy_source_stage(ins) in names
    ]


def _under(path: str, directory: str) -> bool:
    path, directory = path.rstrip("/"), directory.rstrip("/")
    return path == directory or path.startswith(directory + "/")


def _check_install(
    args: list[str], allowed_lock: str | None, needs_hashes: bool, where: str
) -> list[str]:
    errors = []
    options, positional = _options(args)
    flags = set(options)
    locks = options.get("-r", []) + options.get("--requirement", [])
    for lock in locks:
        if lock != allowed_lock:
            errors.append(f"{where}: installs from {lock}, not its lock")
    uses_lock = bool(locks)
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
    from_builders = _copied_from_builders(final, builders)
    for index, instruction in enumerate(final.instructions):
        if instruction.keyword != "RUN":
            continue
        for args in _pip_installs(instruction):
            where = f"line {instruction.line}"
            errors += _check_install(args, lock_dest, needs_hashes, where)
            options, _ = _options(args)
            for links in options.get("-f", []) + options.get("--find-links", []):
                if not any(_under(links, dest) for dest in from_builders):
                    errors.append(f"{where}: --find-links {links} is not copied from a builder")
            if ("-r" in options or "--requirement" in options) and install_index is None:
                install_index = index
    if install_index is None or install_index < lock_index:
        errors.append(f"final stage never installs {lock} after copying it")
    project_stages = {s.name for s in builders if _copies_project(s)}
    project_copies = [
        i
        for i, ins in enumerate(final.instructions)
        if ins.keyword == "COPY"
        and (_copy_source_stage(ins) in project_stages or _copies_project(Stage("", None, [ins])))
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

    for stage in lineage(stages, final):
        for instruction in stage.all("RUN"):
            compilers = [p for p in _apt_installs(instruction) if COMPILER_PACKAGES.match(p)]
            if compilers:
                errors.append(
                    f"line {instruction.line}: the final image installs {', '.join(compilers)} "
                    "(build in a builder stage, ship wheels)"
                )

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
