"""A task's start-up (process start to its work: interpreter, kfp executor, imports) is recorded
apart from its own time, in a real fresh process, and only in a KFP task's process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from components.common.config import REPO_ROOT
from components.common.recorder import KFP_TASK_ENV
from components.ingest.component import commit_ingest

# stands in for a task: 1 s of "imports" before its work, 0.05 s of work
TASK = """
import sys, time
time.sleep(1.0)
from components.common.recorder import record_task
with record_task("probe", sys.argv[1]):
    time.sleep(0.05)
"""


def _record(tmp_path, kfp_task: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != KFP_TASK_ENV}
    if kfp_task:
        env[KFP_TASK_ENV] = "true"
    subprocess.run(
        [sys.executable, "-c", TASK, str(tmp_path)], check=True, cwd=REPO_ROOT, env=env, timeout=60
    )
    (file,) = tmp_path.glob("probe-*.json")
    return json.loads(file.read_text())


def test_a_task_process_records_its_start_up_apart_from_its_own_time(tmp_path):
    rec = _record(tmp_path, kfp_task=True)
    assert rec["startup_s"] >= 1.0  # the "imports" before the work
    assert 0.05 <= rec["wall_s"] < 1.0  # the task's own time leaves them out


def test_outside_a_task_process_there_is_no_start_up_figure(tmp_path):
    # a test or the CLI running a stage in-process: the process age is not a task's start-up
    assert _record(tmp_path, kfp_task=False)["startup_s"] is None


def test_the_command_kfp_generates_for_a_task_sets_the_variable():
    command = " ".join(commit_ingest.component_spec.implementation.container.command)
    assert f"{KFP_TASK_ENV}=true" in command
