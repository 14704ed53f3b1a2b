"""What may import what: no module under components/ imports pipelines/ (a task runs the image's
installed components, and compiling or running pipelines is the CLI's business), the shared
runtime (components/common) imports no stage, and no stage imports another stage (the model
server, components/serve, is a library the deploy stage starts, not a stage)."""

import ast
from pathlib import Path

from components.common.config import REPO_ROOT

COMPONENTS = REPO_ROOT / "components"
LIBRARIES = {"common", "serve"}  # what a stage may import besides itself


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
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


def test_no_import_cycles_between_the_projects_modules():
    """Function-level imports count too: a cycle hidden in a function still ties the modules."""
    paths = [*COMPONENTS.rglob("*.py"), *(REPO_ROOT / "pipelines").rglob("*.py")]
    modules = {_module(p): p for p in paths}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
