"""A task imports only what it uses (issue 16, per-task start-up).

kfp.local starts every task in a fresh interpreter (`_KFP_RUNTIME=true python -m
kfp.dsl.executor_main`), so the modules a component imports before its work starts are paid for
on every run. Checked the way a task starts, by `sys.modules` in a fresh interpreter: no timing
asserts (the machine is shared). Each component's imports are read from its own body, so a new
import there is checked too.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest

from components.common.config import REPO_ROOT
from components.deploy.component import deploy
from components.ingest.component import commit_ingest
from components.register.component import register
from components.select.component import select_model
from components.track.component import track
from components.validate.component import validate

# heavy libraries (about 0.3-3 s each to import on the 2-core machine)
DATAFRAMES = {"pandas", "pyarrow", "numpy"}
MODELLING = {"sklearn", "scipy", "mlflow"}


def _body_imports(component) -> list[str]:
    """The modules the component function imports at the top of its body (every run does)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(component.python_func)))
    body = tree.body[0].body
    found = [n.module for n in body if isinstance(n, ast.ImportFrom) and n.module]
    found += [a.name for n in body if isinstance(n, ast.Import) for a in n.names]
    return found


def _loaded_after(modules: list[str], then: str = "") -> set[str]:
    """Top-level packages in `sys.modules` of a fresh task-like interpreter after importing
    `modules` and running `then`."""
    script = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        f"{then}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *modules],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "_KFP_RUNTIME": "true"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_config_loads_without_dataframe_or_model_libraries():
    # every task and the CLI load it; number windows are checked without pandas
    loaded = _loaded_after(
        ["components.common.config"],
        "from components.common.config import load_settings; load_settings()",
    )
    assert "pydantic" in loaded  # the check is not vacuous: the config did load
    assert not loaded & (DATAFRAMES | MODELLING), sorted(loaded & (DATAFRAMES | MODELLING))


@pytest.mark.parametrize(
    ("component", "unused"),
    [
        # advances a watermark in the state store: no Parquet, no config model
        (commit_ingest, DATAFRAMES | MODELLING | {"pydantic"}),
        # the TFDV job runs in its own environment: this side only relays and installs
        (validate, DATAFRAMES | MODELLING),
        (select_model, DATAFRAMES | MODELLING),
        # these use MLflow, but import it inside their work, not on start-up
        (track, DATAFRAMES | MODELLING),
        (register, DATAFRAMES | MODELLING),
        (deploy, DATAFRAMES | MODELLING),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_a_light_task_starts_without_libraries_it_does_not_use(component, unused):
    modules = _body_imports(component)
    assert any(m.startswith("components.") for m in modules), modules
    loaded = _loaded_after(modules)
    assert not loaded & unused, f"{component.name} imports {sorted(loaded & unused)}"
