"""Shared fixtures: small real samples of the bundled data, the default config and schema."""

from __future__ import annotations

import builtins
import contextlib
import os
import subprocess
import warnings
from pathlib import Path

import pandas as pd
import pytest

from components.common.config import REPO_ROOT, load_data_schema, load_settings
from tests.support.mlflow_env import tracking_uri_global, use_local_store, use_tracking_uri


@pytest.fixture(autouse=True)
def _print_is_builtin():
    """Every test starts and ends with the real `print`: kfp.local, run in this process by some
    tests, swaps in an indenting one for the process (kfp/local/logging_utils.py), and a later
    test's exact stdout would carry its four spaces."""
    original = builtins.print
    yield
    builtins.print = original


DATA_FILE = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
# MLflow's usage telemetry would try to reach the internet from every client and server the
# tests start (and once failed a server start with a KeyError on its session id)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow 3's server-side job runners (8 more processes per `mlflow server`, ~600 MiB, seconds of
# start-up): nothing here uses them, and the manifests switch them off too
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
# set by mlflow_utils.configure on its first call when unset: set here, the first test to call
# it does not change the environment the leak guard below compares
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

TFDV_PYTHON = Path(os.environ.get("MLPIPE_TFDV_PYTHON", REPO_ROOT / ".venvs/tfdv/bin/python"))


def needs_tfdv() -> pytest.MarkDecorator:
    """Skip (visibly) without the tfdv environment — except in CI, where it must exist."""
    missing = not TFDV_PYTHON.exists() and os.environ.get("CI") != "true"
    return pytest.mark.skipif(
        missing, reason=f"tfdv environment missing ({TFDV_PYTHON}): make setup"
    )


@pytest.fixture(scope="session")
def full_data() -> pd.DataFrame:
    return pd.read_parquet(DATA_FILE)


@pytest.fixture(scope="session")
def sample_data(full_data: pd.DataFrame) -> pd.DataFrame:
    """2,000 rows of each of 2015 and 2016: the default train and test windows."""
    parts = [
        full_data[full_data.year == year].sample(2000, random_state=year) for year in (2015, 2016)
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def schema():
    return load_data_schema()


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    """A real MLflow store (SQLite in a temporary folder) as this test's tracking URI."""
    import mlflow

    use_local_store(monkeypatch, tmp_path, "t")
    return mlflow.MlflowClient()


@pytest.fixture()
def mlflow_server(tmp_path, monkeypatch):
    """A real MLflow tracking server (`mlflow server`, SQLite behind it) on 127.0.0.1 as this
    test's tracking URI: the REST checks a server makes that a local store skips."""
    import mlflow

    from tests.support.servers import mlflow_server_process

    with contextlib.ExitStack() as stack:
        try:
            uri = stack.enter_context(mlflow_server_process(tmp_path))
        except RuntimeError as exc:
            pytest.fail(str(exc))
        use_tracking_uri(monkeypatch, uri)
        mlflow.set_experiment("t")
        yield mlflow.MlflowClient()


# ---------------------------------------------------------------- no test leaves state behind

GUARDED_ENV = ("MLFLOW_", "AWS_", "MLPIPE_")
# generated or cached where a test run may write them; everything else new in the tree is a leak
IGNORED_PATHS = ("outputs/", "local_outputs/", ".hypothesis/", ".pytest_cache/", ".benchmarks/")
_START = pytest.StashKey[tuple]()
# A leak fails the test (and the session); MLPIPE_TEST_LEAKS=warn turns that into a warning in the
# summary, to list every leak of a run at once.
STRICT = os.environ.get("MLPIPE_TEST_LEAKS", "fail") != "warn"


class LeakedStateWarning(UserWarning):
    """A test or fixture left global state changed (MLPIPE_TEST_LEAKS=warn: reported, not fatal)."""


def _guarded_state() -> dict[str, str | None]:
    state: dict[str, str | None] = {
        k: v for k, v in os.environ.items() if k.startswith(GUARDED_ENV)
    }
    state["mlflow.set_tracking_uri"] = tracking_uri_global()
    return state


def _leaks(before: dict[str, str | None], after: dict[str, str | None]) -> list[str]:
    return [
        f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


@pytest.fixture(autouse=True)
def _no_leaked_state():
    """Fail a test that leaves an MLFLOW_*/AWS_*/MLPIPE_* variable or MLflow's global tracking
    URI other than it found them (compared with the test's start, so a broader fixture may set
    them before; it restores them at its own teardown, which the session-end check sees).
    Autouse and requesting nothing: set up before, torn down after the test's own fixtures."""
    before = _guarded_state()
    yield
    leaks = _leaks(before, _guarded_state())
    if leaks:
        message = (
            "the test or one of its fixtures left global state changed (restore it with "
            "monkeypatch or at fixture teardown; MLflow: tests.support.mlflow_env."
            "use_tracking_uri):\n  " + "\n  ".join(leaks)
        )
        if STRICT:
            pytest.fail(message, pytrace=False)
        warnings.warn(message, LeakedStateWarning, stacklevel=1)


def _untracked() -> set[str] | None:
    """New or changed files in the repository (git status), None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    paths = {line[3:] for line in out.splitlines()}
    return {p for p in paths if not p.startswith(IGNORED_PATHS) and "__pycache__/" not in p}


def pytest_sessionstart(session):
    session.config.stash[_START] = (_guarded_state(), _untracked(), (REPO_ROOT / "mlruns").exists())


def pytest_sessionfinish(session, exitstatus):
    """After every fixture's teardown: the environment is as the session found it, and the
    tests wrote nothing into the repository (./mlruns is git-ignored, so checked by name)."""
    if _START not in session.config.stash:
        return
    before, files, had_mlruns = session.config.stash[_START]
    problems = [f"environment or MLflow URI: {leak}" for leak in _leaks(before, _guarded_state())]
    after = _untracked()
    if files is not None and after is not None:
        problems += [f"new file in the repository: {p}" for p in sorted(after - files)]
    if not had_mlruns and (REPO_ROOT / "mlruns").exists():
        problems.append("new folder in the repository: mlruns/ (an MLflow call with no store)")
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.section("state left behind by the test session", red=True)
            for line in problems:
                reporter.line(line, red=True)
        if STRICT:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
