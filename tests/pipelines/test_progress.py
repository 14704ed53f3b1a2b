"""The terminal output of a local run (pipelines/progress.py): kfp.local's whole log to a file
without colour codes or executor input dumps, and short progress lines on screen."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.common.recorder import TaskRecord
from pipelines import progress
from pipelines.local_tasks import cached_record
from pipelines.progress import ProgressTee, original_stdout, strip_ansi
from tests.support.clock import FakeClock


def test_progress_shows_a_stages_warning_lines_and_hides_its_other_output():
    screen, log = io.StringIO(), io.StringIO()
    tee = ProgressTee(log, screen)
    tee.write("validate: read 2,000 rows x 19 columns\nwarning: validate: SEX drift linf 0.5 > ")
    tee.write("0.1 (train 2015 vs test 2016) — report: r.html\nwarning: something else\n")
    assert screen.getvalue().splitlines() == [
        "  warning: validate: SEX drift linf 0.5 > 0.1 (train 2015 vs test 2016) — report: r.html"
    ]
    assert "read 2,000 rows" in log.getvalue()


def test_the_log_has_no_colour_codes_and_a_fanned_out_task_is_named_by_its_record():
    screen, log = io.StringIO(), io.StringIO()
    tee = ProgressTee(log, screen)
    for _ in range(2):
        tee.write("11:19:35 - INFO - Executing task \x1b[96m'tune'\x1b[0m\n")
    for algorithm in ("lightgbm", "xgboost"):
        # the colour code split across two writes, as a stream may deliver it
        tee.write("11:19:54 - INFO - Task \x1b[96m'tune'\x1b")
        tee.write("[0m finished with status \x1b[92mSUCCESS\x1b[0m\n")
        tee.write("11:19:54 - INFO - Task \x1b[96m'tune'\x1b[0m outputs:\n")
        tee.write(f"    metadata={{'task': {{'task': 'tune-{algorithm}', 'rows': None}}}}\n")
    tee.write("11:19:55 - INFO - Executing task \x1b[96m'select'\x1b[0m\n")
    tee.write("trailing line without newline \x1b[1m")
    tee.close()
    assert "\x1b" not in log.getvalue()
    assert "Task 'tune' finished with status SUCCESS" in log.getvalue()
    assert log.getvalue().endswith("trailing line without newline \n")
    done = [x.split("(")[0].strip() for x in screen.getvalue().splitlines() if "[done" in x]
    assert done == ["[done   ] tune-lightgbm", "[done   ] tune-xgboost"]


def test_a_task_that_ran_once_is_reported_when_it_finishes():
    screen = io.StringIO()
    tee = ProgressTee(io.StringIO(), screen)
    tee.write("Executing task 'ingest'\nTask 'ingest' finished with status SUCCESS\n")
    assert screen.getvalue().splitlines()[-1].startswith("  [done   ] ingest (")


def test_a_cached_fanned_out_task_is_named_by_its_cache_entry_with_its_original_time(tmp_path):
    # kfp.local's cache entries, as it writes them: the outputs with our task record in metadata
    for key, algorithm, wall in (("aa11", "lightgbm", 30.9), ("bb22", "xgboost", 41.25)):
        record = {"task": f"tune-{algorithm}", "wall_s": wall, "status": "succeeded"}
        entry = {"result": {"uri": "/x", "metadata": {"algorithm": algorithm, "task": record}}}
        (tmp_path / f"{key}{'0' * 60}.json").write_text(json.dumps(entry))
    screen = io.StringIO()
    tee = ProgressTee(io.StringIO(), screen, cached_record=lambda key: cached_record(tmp_path, key))
    tee.write("11:19:35 - INFO - Task \x1b[96m'tune'\x1b[0m cache hit (key=aa11)\n")
    tee.write("11:19:35 - INFO - Task 'tune' cache hit (key=bb22)\n")
    # no readable entry (removed meanwhile): the task's name alone, no made-up time
    tee.write("11:19:36 - INFO - Task 'train' cache hit (key=cc33)\n")
    assert screen.getvalue().splitlines() == [
        "  [cached ] tune-lightgbm (30.9s)",
        "  [cached ] tune-xgboost (41.2s)",
        "  [cached ] train",
    ]
    assert [name for name, _ in tee.cache_hits] == ["tune", "tune", "train"]


def test_the_log_keeps_one_line_for_an_executor_input_dump_and_everything_else():
    log = io.StringIO()
    tee = ProgressTee(log, io.StringIO())
    body = '    {\n        "inputs": {\n            "parameters": {"x": 1}\n        }\n    }\n'
    tee.write("14:53:24.487 - INFO - Executing task 'gate'\n")
    tee.write("    [KFP Executor 2026-12-03 14:53:24,634 INFO]: Got executor_input:\n" + body)
    tee.write("    [KFP Executor 2026-12-03 14:53:40,718 INFO]: Wrote executor output file\n")
    # a dump that is not the indented JSON expected: nothing after it is lost
    tee.write("    [KFP Executor 2026-12-03 14:53:41,000 INFO]: Got executor_input:\n")
    tee.write("Traceback (most recent call last):\nValueError: boom\n")
    tee.close()
    assert log.getvalue().splitlines() == [
        "14:53:24.487 - INFO - Executing task 'gate'",
        "    [KFP Executor 2026-12-03 14:53:24,634 INFO]: Got executor_input:",
        "    (5 lines of JSON not kept in the log)",
        "    [KFP Executor 2026-12-03 14:53:40,718 INFO]: Wrote executor output file",
        "    [KFP Executor 2026-12-03 14:53:41,000 INFO]: Got executor_input:",
        "Traceback (most recent call last):",
        "ValueError: boom",
    ]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Task durations from a clock the test moves."""
    fake = FakeClock()
    monkeypatch.setattr(progress, "time", SimpleNamespace(perf_counter=fake))
    return fake


def _screen(tee_screen: io.StringIO) -> list[str]:
    return tee_screen.getvalue().splitlines()


def test_colour_codes_are_stripped_and_plain_text_kept():
    assert (
        strip_ansi("Task \x1b[96m'tune'\x1b[0m \x1b[1;31mFAILURE\x1b[0m") == "Task 'tune' FAILURE"
    )
    assert strip_ansi("no codes [0m here") == "no codes [0m here"


def test_each_task_is_reported_with_the_time_from_its_start(clock):
    screen = io.StringIO()
    tee = ProgressTee(io.StringIO(), screen)
    assert tee.write("Executing task 'ingest'\n") == len("Executing task 'ingest'\n")
    clock.sleep(2.25)
    tee.write("Executing task 'validate'\n")
    clock.sleep(1.0)
    tee.write("Task 'ingest' finished with status SUCCESS\n")
    tee.write("Task 'validate' finished with status FAILURE\n")
    assert _screen(screen) == [
        "  [running] ingest ...",
        "  [running] validate ...",
        "  [done   ] ingest (3.2s)",
        "  [FAILED ] validate (1.0s)",
    ]


def test_a_fanned_out_tasks_runs_are_timed_first_in_first_out(clock):
    screen = io.StringIO()
    tee = ProgressTee(io.StringIO(), screen)
    tee.write("Executing task 'tune'\n")
    clock.sleep(1.0)
    tee.write("Executing task 'tune'\n")
    clock.sleep(4.0)
    tee.write("Task 'tune' finished with status SUCCESS\n")
    tee.write("    metadata={'task': {'task': 'tune-lightgbm'}}\n")
    tee.write("Task 'tune' finished with status SUCCESS\n")
    tee.write("    metadata={'task': {'task': 'tune-xgboost'}}\n")
    assert _screen(screen)[2:] == [
        "  [done   ] tune-lightgbm (5.0s)",
        "  [done   ] tune-xgboost (4.0s)",
    ]


def test_a_fanned_out_task_without_its_record_is_named_by_its_task_when_the_next_starts(clock):
    screen = io.StringIO()
    tee = ProgressTee(io.StringIO(), screen)
    tee.write("Executing task 'tune'\nExecuting task 'tune'\n")
    tee.write("Task 'tune' finished with status SUCCESS\n")
    # another task's record does not name it; the next event reports it first
    tee.write("    metadata={'task': {'task': 'train-final'}}\n")
    tee.write("Executing task 'select'\n")
    tee.write("Task 'tune' finished with status SUCCESS\n")
    assert _screen(screen)[2:] == ["  [done   ] tune (0.0s)", "  [running] select ..."]
    tee.close()  # the last one, still waiting for its name, is reported at the end
    assert _screen(screen)[-1] == "  [done   ] tune (0.0s)"


def test_a_failed_run_of_a_fanned_out_task_is_reported_at_once(clock):
    screen = io.StringIO()
    tee = ProgressTee(io.StringIO(), screen)
    tee.write("Executing task 'tune'\nExecuting task 'tune'\n")
    tee.write("Task 'tune' finished with status FAILURE\n")
    assert _screen(screen)[-1] == "  [FAILED ] tune (0.0s)"


def test_a_task_finishing_without_a_start_seen_takes_no_time(clock):
    screen = io.StringIO()
    clock.sleep(100.0)
    ProgressTee(io.StringIO(), screen).write("Task 'gate' finished with status SUCCESS\n")
    assert _screen(screen) == ["  [done   ] gate (0.0s)"]


def test_each_tuning_trial_gets_one_line():
    screen = io.StringIO()
    tee = ProgressTee(io.StringIO(), screen)
    tee.write("    [tune lightgbm] trial 3: auc 0.8123 (1.2s)\n")
    tee.write("    [tune random-forest] trial 11 failed: MemoryError\n")
    tee.write("    [tune lightgbm] study done\n")
    assert _screen(screen) == [
        "      tune lightgbm #3: auc 0.8123 (1.2s)",
        "      tune random-forest #11: failed: MemoryError",
    ]


def test_a_cached_task_whose_entry_names_another_task_is_shown_by_its_own_name(tmp_path):
    record = TaskRecord(task="tuner", wall_s=9.0)  # a task of its own, not a run of `tune`
    entry = {"result": {"metadata": {"task": record.to_dict()}}}
    (tmp_path / f"aa11{'0' * 60}.json").write_text(json.dumps(entry))
    screen = io.StringIO()
    tee = ProgressTee(io.StringIO(), screen, cached_record=lambda key: cached_record(tmp_path, key))
    for task in ("tune", "train", "tuner"):
        tee.write(f"Task '{task}' cache hit (key=aa11)\n")
    ProgressTee(io.StringIO(), screen).write("Task 'ingest' cache hit (key=bb22)\n")
    assert _screen(screen) == [
        "  [cached ] tune",
        "  [cached ] train",
        "  [cached ] tuner (9.0s)",
        "  [cached ] ingest",  # no way to read the cache: the name alone
    ]
    assert tee.cache_hits == [("tune", "aa11"), ("train", "aa11"), ("tuner", "aa11")]


def test_verbose_shows_everything_as_written_and_no_progress_lines():
    screen, log = io.StringIO(), io.StringIO()
    tee = ProgressTee(log, screen, verbose=True)
    text = "Executing task \x1b[96m'ingest'\x1b[0m\nwarning: validate: x: drift\npartial"
    tee.write(text)
    assert screen.getvalue() == text
    assert log.getvalue() == "Executing task 'ingest'\nwarning: validate: x: drift\n"
    tee.close()
    assert screen.getvalue() == text and log.getvalue().endswith("partial\n")


def test_the_log_file_has_every_line_once_flushed_and_the_tee_is_no_terminal(tmp_path: Path):
    path = tmp_path / "run.log"
    with path.open("w") as log:
        tee = ProgressTee(log, io.StringIO())
        tee.write("one\ntw")
        tee.flush()
        assert path.read_text() == "one\n"  # on disk before the run ends
        tee.write("o\n")
        tee.close()
        tee.close()  # twice: nothing written again
        assert path.read_text() == "one\ntwo\n"
    assert tee.isatty() is False  # kfp.local must not colour for a terminal we filter


def test_the_original_stdout_is_the_interpreters(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert original_stdout() is sys.__stdout__
    monkeypatch.setattr(sys, "__stdout__", None)  # e.g. pythonw: no console
    assert original_stdout() is sys.stdout
