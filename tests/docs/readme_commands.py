"""The shell commands the READMEs show, and a static check of each one.

Extraction rule (README.md and every components/*/README.md):
- a ```bash block: every line is a command, except blank and comment-only lines; a line ending
  in `\\` continues on the next; a trailing `  # comment` is dropped; a leading `$ ` is dropped.
- any other fenced block without a language: only its lines starting with `$ ` are commands (the
  others are the output the docs show). Blocks in other languages (python, yaml, json, ini) are
  not shell commands.
- a quote left open continues on the next lines (a multi-line JSON body of curl `-d '...'`).
- an inline code span starting with `mlpipe `, `uv run mlpipe ` or `make ` is a command; there,
  synopsis notation is allowed: `[--flag X]` (optional) and `a|b` (alternatives: each is checked),
  and a span without flags may name a command without its required arguments (`mlpipe approve`).

The static check (no cluster, no pipeline run): `uv run [--frozen]` means the project's venv; a
`make` target must exist (`make -n TARGET` succeeds); an `mlpipe` or `python -m
components.serve` command must parse with the real argparse parser (subcommand and every flag);
`pytest` must name existing paths and known markers; `mlflow` subcommands and flags must exist;
`kubectl VERB` must exist and accept its flags (`kubectl VERB --help`, client-only); `curl` must
name a V1 or V2 route of the server; every repository path a command names must exist (paths under
outputs/ and placeholders such as `<run>`, `RUN_ID`, `...` are produced by runs or are the
reader's to fill in).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from components.common.config import REPO_ROOT

VENV_BIN = REPO_ROOT / ".venv" / "bin"
READMES = [REPO_ROOT / "README.md", *sorted(REPO_ROOT.glob("components/*/README.md"))]
_INLINE = re.compile(r"`((?:uv run (?:--frozen )?)?(?:mlpipe|make) [^`]+)`")
# first path segments of repository files a command may name
_REPO_DIRS = ("config/", "data/", "components/", "pipelines/", "tests/", "manifests/", "images/")
_PLACEHOLDER = re.compile(r"<[^>]+>|\.\.\.|…")


@dataclass(frozen=True)
class Command:
    where: str  # README path:line
    text: str
    inline: bool = False

    def argv(self) -> list[str]:
        """The words, `uv run [--frozen]` and leading VAR=value assignments removed."""
        words = shlex.split(self.text)
        if words[:2] == ["uv", "run"]:
            words = words[2:]
            if words[:1] == ["--frozen"]:
                words = words[1:]
        while words and re.match(r"^[A-Z_]+=", words[0]):
            words = words[1:]
        return words


def _strip_comment(line: str) -> str:
    """`line` without a trailing shell comment (a `#` after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def extract(path: Path) -> list[Command]:
    """The commands of one README, by the rule in the module docstring."""
    shown = str(path.relative_to(REPO_ROOT))
    lines = path.read_text().splitlines()
    out: list[Command] = []
    fence: str | None = None  # the open block's language ("" = none)
    pending, start = "", 0
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence is None:
            for m in _INLINE.finditer(line):
                out.append(Command(f"{shown}:{number}", m.group(1), inline=True))
            continue
        if fence not in ("bash", "") or (fence == "" and not pending and not line.startswith("$ ")):
            continue
        text = line.removeprefix("$ ") if not pending else line
        if not pending:
            start = number
            if not text.strip() or text.lstrip().startswith("#"):
                continue
        if text.rstrip().endswith("\\"):
            pending += text.rstrip()[:-1].rstrip() + " "
            continue
        full = (pending + _strip_comment(text).strip()).strip()
        try:
            shlex.split(full)
        except ValueError:  # a quote still open (a JSON body over several lines): read on
            pending = full + "\n"
            continue
        pending = ""
        if full:
            out.append(Command(f"{shown}:{start}", full))
    return out


def all_commands() -> list[Command]:
    return [c for readme in READMES for c in extract(readme)]


def expand_synopsis(cmd: Command) -> list[list[str]]:
    """An inline command's argv: `[...]` brackets dropped, `a|b` words as one argv each."""
    text = cmd.text.replace("[", "").replace("]", "") if cmd.inline else cmd.text
    words = Command(cmd.where, text).argv()
    variants: list[list[str]] = [[]]
    for word in words:
        options = word.split("|") if cmd.inline and "|" in word else [word]
        variants = [[*v, o] for v in variants for o in options]
    return variants


def _no_abbreviations(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser` and its subcommands refusing abbreviated flags: a README's `--no-cach` would
    otherwise pass as `--no-cache`."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _no_abbreviations(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """argparse's complaint about `argv`, or None when it parses."""
    _no_abbreviations(parser)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1]
    return None


@functools.cache
def _make_target_ok(target: str) -> bool:
    proc = subprocess.run(
        ["make", "-n", target], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    return proc.returncode == 0


@functools.cache
def _kubectl_help(verb: str) -> str | None:
    proc = subprocess.run(
        [str(VENV_BIN / "kubectl"), verb, "--help"], capture_output=True, text=True, timeout=30
    )
    return proc.stdout if proc.returncode == 0 else None


@functools.cache
def _kubectl_global_flags() -> str:
    return subprocess.run(
        [str(VENV_BIN / "kubectl"), "options"], capture_output=True, text=True, timeout=30
    ).stdout


def _path_problems(argv: list[str]) -> list[str]:
    problems = []
    for word in argv:
        value = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
        if (
            value.startswith(_REPO_DIRS)
            and not _PLACEHOLDER.search(value)
            and not any(ch in value for ch in "*?")
            and not (REPO_ROOT / value.split("::")[0]).exists()
        ):
            problems.append(f"{value}: no such file in the repository")
    return problems


def _flags(argv: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in argv if w.startswith("-") and len(w) > 1]


def _check_mlpipe(argv: list[str]) -> list[str]:
    from pipelines.cli import build_parser

    problem = _parse(build_parser(), argv[1:])
    return [problem] if problem else []


def _names_a_command(cmd: Command, problem: str) -> bool:
    """An inline `mlpipe approve` names the command (its arguments are elsewhere in the text):
    fine if only required arguments are missing and it has no flag."""
    return cmd.inline and "required" in problem and not _flags(cmd.argv())


def _check_serve_module(argv: list[str]) -> list[str]:
    from components.serve.__main__ import build_parser

    problem = _parse(build_parser(), argv[3:])
    return [problem] if problem else []


def _check_pytest(argv: list[str]) -> list[str]:
    import tomllib

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    markers = {m.split(":")[0] for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    problems = []
    if "-m" in argv:
        expression = argv[argv.index("-m") + 1]
        unknown = set(re.findall(r"\w+", expression)) - markers - {"not", "and", "or"}
        problems += [f"pytest -m: unknown marker {m!r}" for m in sorted(unknown)]
    return problems


def _check_mlflow(argv: list[str]) -> list[str]:
    from mlflow.cli import cli

    command = cli.get_command(None, argv[1]) if len(argv) > 1 else None  # resolves aliases (ui)
    if command is None:
        return [f"mlflow: no subcommand {argv[1:2]}"]
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    return [f"mlflow {argv[1]}: no option {f}" for f in _flags(argv[2:]) if f not in known]


def _check_kubectl(argv: list[str]) -> list[str]:
    words, i = argv[1:], 0
    verb = None
    while i < len(words):  # global flags with a value come before the verb
        if words[i] in ("--context", "-n", "--namespace"):
            i += 2
        elif words[i].startswith("-"):
            i += 1
        else:
            verb = words[i]
            break
    help_text = _kubectl_help(verb) if verb else None
    if help_text is None:
        return [f"kubectl: no command {verb!r}"]
    known = help_text + _kubectl_global_flags()
    return [f"kubectl {verb}: no flag {f}" for f in _flags(words) if f not in known]


def _check_curl(argv: list[str]) -> list[str]:
    urls = [w for w in argv[1:] if "/v1/models/" in w or "/v2/models/" in w]
    ok = re.compile(r"/v1/models/[\w-]+:predict$|/v2/models/[\w-]+/infer$")
    if not urls or not all(ok.search(u) for u in urls):
        return [f"curl: not a V1 predict or V2 infer URL: {urls}"]
    return []


def _check_make(argv: list[str]) -> list[str]:
    targets = [w for w in argv[1:] if not w.startswith("-") and "=" not in w]
    return [f"make: no target {t!r} (make -n {t} fails)" for t in targets if not _make_target_ok(t)]


def _check_export(argv: list[str]) -> list[str]:
    """An exported variable must be one the project reads."""
    name = argv[1].split("=", 1)[0]
    sources = [*REPO_ROOT.glob("pipelines/*.py"), *REPO_ROOT.glob("components/**/*.py")]
    if not any(name in p.read_text() for p in sources):
        return [f"export {name}: no code reads it"]
    return []


CHECKS = {
    "mlpipe": _check_mlpipe,
    "make": _check_make,
    "pytest": _check_pytest,
    "mlflow": _check_mlflow,
    "kubectl": _check_kubectl,
    "curl": _check_curl,
    "export": _check_export,
    "sed": lambda argv: [],  # reads a file an earlier command wrote: run by the docs test
}


def check(cmd: Command) -> list[str]:
    """What is wrong with `cmd` without running it; [] when nothing is."""
    problems = []
    for argv in expand_synopsis(cmd):
        if argv[:3] == ["python", "-m", "components.serve"]:
            found = _check_serve_module(argv)
        elif argv and argv[0] in CHECKS:
            found = CHECKS[argv[0]](argv)
        else:
            found = [f"no check for {argv[:1]} (teach tests/docs/readme_commands.py)"]
        found = [p for p in found if not _names_a_command(cmd, p)]
        problems += found + _path_problems(argv)
    return [f"{cmd.where}: {cmd.text}: {p}" for p in problems]
