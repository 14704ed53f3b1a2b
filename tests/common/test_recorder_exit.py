"""A KFP task process whose records succeeded ends without the interpreter's teardown, with its
output flushed; a failure keeps Python's exit status and its normal ending. Real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from components.common.config import REPO_ROOT
from components.common.recorder import KFP_TASK_ENV

# stands in for a task: an object whose finaliser only the interpreter's teardown runs, a log line
# and unflushed output written after the work, then (per argv[2]) a failure inside or after it
TASK = """
import logging, sys
from components.common.recorder import record_task

class Teardown:
    def __del__(self):
        sys.stderr.write("teardown ran\\n")

kept = Teardown()
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
try:
    with record_task("probe", sys.argv[1]):
        if sys.argv[2].startswith("fail-inside"):
            raise ValueError("bad input")
except ValueError:
    if sys.argv[2] == "fail-inside-exit-3":
        sys.exit(3)
    raise
logging.info("wrote the executor output")
sys.stdout.write("no newline, not flushed")
if sys.argv[2] == "fail-after":
    raise OSError("could not write the executor output")
"""


def _run(tmp_path, how: str, kfp_task: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != KFP_TASK_ENV}
    if kfp_task:
        env[KFP_TASK_ENV] = "true"
    return subprocess.run(
        [sys.executable, "-c", TASK, str(tmp_path), how],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_task_that_succeeded_skips_the_teardown_and_keeps_its_output(tmp_path):
    done = _run(tmp_path, "ok")
    assert done.returncode == 0, done.stderr
    assert "teardown ran" not in done.stderr
    assert done.stdout == "no newline, not flushed"
    assert "wrote the executor output" in done.stderr


@pytest.mark.parametrize(
    ("how", "status", "said", "recorded"),
    [
        ("fail-inside", 1, "ValueError: bad input", "failed"),
        # kfp's executor writes its output file after the stage returned: that can fail too
        # (after the record said succeeded)
        ("fail-after", 1, "OSError: could not write the executor output", "succeeded"),
        # SystemExit prints nothing and leaves no `sys.last_value`: the failed record alone
        # keeps what happened, and the status is the one given to sys.exit
        ("fail-inside-exit-3", 3, None, "failed"),
    ],
)
def test_a_failure_keeps_its_exit_status_and_the_normal_ending(
    tmp_path, how, status, said, recorded
):
    done = _run(tmp_path, how)
    assert done.returncode == status, done.stderr
    if said is None:
        assert "Traceback" not in done.stderr, done.stderr
    else:
        assert said in done.stderr, done.stderr
    assert "teardown ran" in done.stderr
    (record,) = [json.loads(f.read_text()) for f in tmp_path.glob("probe-*.json")]
    assert record["status"] == recorded
    assert ("bad input" in (record["error"] or "")) == (recorded == "failed"), record


def test_outside_a_task_process_the_interpreter_ends_normally(tmp_path):
    # tests and the CLI run stages in-process: their process must not end early
    done = _run(tmp_path, "ok", kfp_task=False)
    assert done.returncode == 0
    assert "teardown ran" in done.stderr
