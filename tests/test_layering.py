"""What may import what: no module under components/ imports pipelines/ (a task runs the image's
installed components, and compiling or running pipelines is the CLI's business), the shared
runtime (components/common) imports no stage, and no stage imports another stage (the model
server, components/serve, is a library the deploy stage starts, not a stage). No import cycle
between the project's modules, and no module imports another module's private (_underscore)
name."""

import ast
from pathlib import Path

from components.common.config import REPO_ROOT

COMPONENTS = REPO_ROOT / "components"
LIBRARIES = {"common", "serve"}  # what a stage may import besides itself


def _package(path: Path) -> str:
    """The package a relative import in `path` starts from."""
    rel = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else Path(path.name)
    return ".".join(rel.parent.parts)


def _from_module(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module of `from <module> import ...` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = _package(path).split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(path: Path) -> set[str]:
    """Every module `path` may import, at module level or inside a function: `from a import b`
    counts as `a` and as `a.b` (b may be a module; names that are not drop out against the
    list of modules)."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(node, path)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "components" and len(parts) > 1 else None


def test_components_never_import_pipelines_and_stages_stay_apart():
    problems = []
    for path in sorted(COMPONENTS.rglob("*.py")):
        own = path.relative_to(COMPONENTS).parts[0]
        for module in _imports(path):
            where = f"{path.relative_to(REPO_ROOT)} imports {module}"
            if module == "pipelines" or module.startswith("pipelines."):
                problems.append(where)
            other = _stage(module)
            allowed = {"common"} if own == "common" else LIBRARIES | {own}
            if other and other not in allowed:
                problems.append(where)
    assert not problems, "\n".join(problems)


def test_the_check_sees_an_import_of_pipelines(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pipelines.kfp_package import compile_package\n")
    assert "pipelines.kfp_package" in _imports(bad)


def _module(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each once, by depth-first search from each module."""
    found: set[tuple[str, ...]] = set()
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for dep in graph.get(node, ()):
                if dep == start:
                    i = path.index(min(path))  # one rotation per cycle
                    found.add(tuple(path[i:] + path[:i]))
                elif dep not in path and dep > start:
                    stack.append((dep, [*path, dep]))
    return [list(c) for c in sorted(found)]


def _project_modules() -> dict[str, Path]:
    paths = [*COMPONENTS.rglob("*.py"), *(REPO_ROOT / "pipelines").rglob("*.py")]
    return {_module(p): p for p in paths}


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_no_import_cycles_between_the_projects_modules():
    """Function-level imports count too: a cycle hidden in a function still ties the modules."""
    modules = _project_modules()
    graph = _graph(modules)
    assert "pipelines.cli_args" in graph["pipelines.cli"]  # the graph sees the project's imports
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_check_sees_from_package_import_module_and_relative_imports(tmp_path):
    """`from pipelines import cli` ties to pipelines.cli; `from . import x` to the package's x."""
    pkg = REPO_ROOT / "pipelines"
    bad = tmp_path / "bad.py"
    bad.write_text("from pipelines import cli\n")
    assert "pipelines.cli" in _imports(bad)
    node = ast.parse("from .outputs import link_or_copy").body[0]
    assert _from_module(node, pkg / "local_run.py") == "pipelines.outputs"


def _private_imports(path: Path, modules: set[str]) -> list[str]:
    """`from <project module> import _name`: a name its module keeps to itself."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            module = _from_module(node, path)
            if module in modules:
                private = [a.name for a in node.names if a.name.startswith("_")]
                found += [f"{module}.{name}" for name in private if not name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_name():
    modules = _project_modules()
    problems = [
        f"{m} imports {name}"
        for m, p in sorted(modules.items())
        for name in _private_imports(p, set(modules))
    ]
    assert not problems, "\n".join(problems)


def test_the_private_name_check_sees_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from components.common.config import _merge, load_settings\n")
    found = _private_imports(bad, {"components.common.config"})
    assert found == ["components.common.config._merge"]
