"""Launching a job in the tfdv environment (README "Two environments"): which Python, and with
which environment, so the job runs this checkout's code.

TFDV cannot share an environment with kfp 2.17, so stages that need it (validate, monitor) start
`python -m <module>` with the tfdv environment's Python, relay its output line by line and read
the JSON files it writes. Only the standard library here: importable in both environments.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from components.common.errors import StageError

TFDV_PYTHON_ENV = "MLPIPE_TFDV_PYTHON"
# the source tree this module belongs to; its `components` package is what a job must run
PACKAGE_DIR = Path(__file__).resolve().parents[1]
LOCAL_TFDV_PYTHON = PACKAGE_DIR.parent / ".venvs" / "tfdv" / "bin" / "python"


def tfdv_python(stage: str, local_python: Path = LOCAL_TFDV_PYTHON) -> str:
    """The Python that runs a TFDV job.

    $MLPIPE_TFDV_PYTHON if set (the CLI sets it); else this interpreter if it has TFDV (the tfdv
    image); else the checkout's .venvs/tfdv (built by `make setup`).
    """
    configured = os.environ.get(TFDV_PYTHON_ENV)
    if configured:
        if not os.access(configured, os.X_OK) or not Path(configured).is_file():
            raise StageError(
                stage,
                f"{TFDV_PYTHON_ENV}={configured} is not a Python executable: run `make setup` to "
                "build the tfdv environment, or point the variable at its bin/python",
                subject=TFDV_PYTHON_ENV,
            )
        return configured
    if importlib.util.find_spec("tensorflow_data_validation") is not None:
        return sys.executable
    if Path(local_python).is_file():
        return str(local_python)
    raise StageError(
        stage,
        f"{stage} needs the tfdv environment (TensorFlow Data Validation), which is not "
        f"installed: run `make setup`, or set {TFDV_PYTHON_ENV} to the Python of an environment "
        "with tensorflow-data-validation",
        subject=TFDV_PYTHON_ENV,
    )


@contextmanager
def job_environment(prefix: str = "mlpipe-tfdv-path-") -> Iterator[dict[str, str]]:
    """The environment of a TFDV job process.

    Its PYTHONPATH starts with a folder holding only a link to this checkout's `components`
    package, so the job runs the same code as the caller whichever checkout installed the tfdv
    environment, and nothing else of the caller's environment leaks into it.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as path_dir:
        os.symlink(PACKAGE_DIR, Path(path_dir) / "components")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path_dir, env.get("PYTHONPATH")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env["PYTHONUNBUFFERED"] = "1"
        yield env


def run_module(
    python: str,
    module: str,
    args: list[str],
    log: Callable[[str], None] = print,
    own_prefix: str = "",
) -> tuple[int, str]:
    """Run `python -m module args...` in the job environment, relaying each output line to `log`
    (lines not starting with `own_prefix` are marked `[tfdv]`). Returns (exit code, last line)."""
    tail: deque[str] = deque(maxlen=30)
    with (
        job_environment() as env,
        subprocess.Popen(
            [python, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            bufsize=1,
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            log(line if own_prefix and line.startswith(own_prefix) else f"[tfdv] {line}")
    last = next((t.strip() for t in reversed(tail) if t.strip()), "no output")
    return proc.returncode, last
