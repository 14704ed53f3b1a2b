"""Launching a job in the tfdv environment: which Python (the variable, this interpreter, the
checkout's .venvs/tfdv, else an error saying what to do), an environment whose `components` is
this checkout's, and the job's output relayed line by line with its exit code. The jobs here are
small modules run by this interpreter: what is tested is the launching, not TFDV."""

import os
import stat
import sys
from pathlib import Path

import pytest

from components.common import tfdv_env
from components.common.errors import StageError
from components.common.tfdv_env import (
    PACKAGE_DIR,
    TFDV_PYTHON_ENV,
    job_environment,
    run_module,
    tfdv_python,
)

PROBE = """\
import os, sys
import components
found = components.__path__[0]
print("mlpipe: components at", found, "->", os.path.realpath(found))
print("a line of the job's library")
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture()
def no_variable(monkeypatch):
    monkeypatch.delenv(TFDV_PYTHON_ENV, raising=False)


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_variable_names_the_python(tmp_path, monkeypatch):
    python = _executable(tmp_path / "python")
    monkeypatch.setenv(TFDV_PYTHON_ENV, str(python))
    assert tfdv_python("validate", local_python=tmp_path / "absent") == str(python)


@pytest.mark.parametrize("kind", ["missing", "not executable", "a folder"])
def test_a_variable_that_is_no_python_is_an_error_naming_it(tmp_path, monkeypatch, kind):
    target = tmp_path / "python"
    if kind == "not executable":
        target.write_text("")
    elif kind == "a folder":
        target.mkdir()
    monkeypatch.setenv(TFDV_PYTHON_ENV, str(target))
    with pytest.raises(StageError, match=f"{TFDV_PYTHON_ENV}=.* is not a Python executable"):
        tfdv_python("monitor")


def test_without_the_variable_the_checkouts_tfdv_env_is_used(tmp_path, no_variable):
    if tfdv_env.importlib.util.find_spec("tensorflow_data_validation") is not None:
        pytest.skip("this interpreter has TFDV: it is the one used (the tfdv image)")
    python = _executable(tmp_path / "python")
    assert tfdv_python("validate", local_python=python) == str(python)


def test_without_any_tfdv_env_the_error_says_how_to_build_one(tmp_path, no_variable):
    if tfdv_env.importlib.util.find_spec("tensorflow_data_validation") is not None:
        pytest.skip("this interpreter has TFDV: it is the one used (the tfdv image)")
    with pytest.raises(StageError, match="validate needs the tfdv environment .*make setup"):
        tfdv_python("validate", local_python=tmp_path / "absent")


def test_the_job_environment_puts_this_checkouts_components_first(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    before = dict(os.environ)
    with job_environment() as env:
        first, rest = env["PYTHONPATH"].split(os.pathsep)
        assert (Path(first) / "components").resolve() == PACKAGE_DIR
        assert os.listdir(first) == ["components"]
        assert rest == "/elsewhere"
        assert env["TF_CPP_MIN_LOG_LEVEL"] == "3" and env["PYTHONUNBUFFERED"] == "1"
    assert not Path(first).exists()
    assert dict(os.environ) == before


@pytest.mark.parametrize("code", [0, 3])
def test_a_job_runs_this_checkouts_code_and_its_output_and_exit_code_come_back(
    tmp_path, monkeypatch, code
):
    (tmp_path / "probe_job.py").write_text(PROBE)
    monkeypatch.chdir(tmp_path)  # `-m` finds the probe here, not `components`
    lines: list[str] = []
    returned, last = run_module(
        sys.executable, "probe_job", [str(code)], log=lines.append, own_prefix="mlpipe:"
    )
    assert returned == code
    assert last == "a line of the job's library"
    own, other = lines
    # through the job's own PYTHONPATH entry, not an installed copy of the project
    found, real = own.removeprefix("mlpipe: components at ").split(" -> ")
    assert Path(found).parent.name.startswith("mlpipe-tfdv-path-")
    assert Path(real) == PACKAGE_DIR
    assert other == "[tfdv] a line of the job's library"


def test_a_job_that_cannot_start_reports_its_last_line(tmp_path):
    lines: list[str] = []
    code, last = run_module(sys.executable, "components.no_such_job", [], log=lines.append)
    assert code != 0
    assert "No module named components.no_such_job" in last
    assert all(line.startswith("[tfdv]") for line in lines)
