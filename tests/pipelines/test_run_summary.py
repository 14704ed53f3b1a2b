"""The `mlpipe run` summary: a tuning study the wall-time cap cut short, the stages' warnings."""

import io

from pipelines.local_run import RunResult, format_summary
from pipelines.progress import ProgressTee


def _row(task: str, details: dict) -> dict:
    return {
        "task": task,
        "status": "succeeded",
        "cached": False,
        "wall_s": 1.0,
        "cpu_s": 1.0,
        "peak_rss_mb": 100.0,
        "details": details,
    }


def test_a_study_stopped_by_the_time_budget_is_reported(settings):
    capped = {"stopped_by": "time_budget", "max_trials": 12, "time_budget_s": 300.0}
    counted = {"stopped_by": "max_trials", "max_trials": 12, "time_budget_s": None}
    result = RunResult(
        False,
        2.0,
        tasks=[_row("tune-lightgbm", capped), _row("tune-xgboost", counted)],
        failed_stage="evaluate",
        error="boom",
    )
    lines = format_summary(result, settings).splitlines()
    reported = [x for x in lines if x.startswith("tuning: ")]
    assert reported == [
        "tuning: tune-lightgbm stopped by the time budget (300 s) before 12 trials: "
        "not reproducible on another machine load"
    ]


def test_the_summary_counts_warnings_and_repeats_those_of_a_cached_task(settings):
    line = "warning: validate: SEX drift linf 0.5 > 0.1 (train 2015 vs test 2016) — report: r.html"
    fresh = RunResult(True, 2.0, tasks=[_row("validate", {"warnings": [line, line]})])
    lines = format_summary(fresh, settings).splitlines()
    assert "2 warnings from validate (printed above; not blocking)" in lines
    assert line not in lines  # printed by the task during the run, not again
    cached_row = {**_row("validate", {"warnings": [line]}), "cached": True}
    cached = RunResult(True, 2.0, tasks=[cached_row])
    lines = format_summary(cached, settings).splitlines()
    assert lines[lines.index(line) + 1] == "1 warning from validate (printed above; not blocking)"
    quiet = RunResult(True, 2.0, tasks=[_row("validate", {"warnings": []})])
    assert "warning" not in format_summary(quiet, settings)


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


def _cached(task: str, rows: int | float | None, wall: float) -> dict:
    return {**_row(task, {}), "cached": True, "rows": rows, "wall_s": wall, "cpu_s": wall}


def test_cached_tasks_show_their_original_times_in_brackets_and_whole_numbers(settings):
    result = RunResult(
        True,
        9.0,
        tasks=[_cached("ingest", 137911, 12.5), _row("gate", {})],
        gate={"mode": "absolute"},
        gate_passed=True,
    )
    lines = format_summary(result, settings).splitlines()
    ingest = next(x for x in lines if x.startswith("ingest "))
    assert ingest.split() == ["ingest", "cached", "(12.50)", "(12.50)", "100", "137,911"]
    gate = next(x for x in lines if x.startswith("gate "))
    assert gate.split()[:3] == ["gate", "succeeded", "1.00"]
    assert "(cached: served from an earlier run; its times in brackets)" in lines


def test_a_nothing_new_run_does_not_say_ingest_failed(settings):
    row = {**_row("ingest", {}), "status": "failed"}
    result = RunResult(
        True, 3.0, tasks=[row], failed_stage="ingest", error="nothing new", nothing_new=True
    )
    lines = format_summary(result, settings).splitlines()
    assert next(x for x in lines if x.startswith("ingest ")).split()[1:4] == ["no", "new", "data"]
    assert "failed" not in format_summary(result, settings)


def test_a_failed_source_prints_no_empty_run_id_or_zero_wall_time_and_the_log_ends_with_it(
    tmp_path, capsys, monkeypatch
):
    """Through the CLI: a source that does not exist fails before any task runs."""
    from pipelines.cli import main

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    missing = tmp_path / "missing.parquet"
    code = main(
        [
            "run",
            "--output-dir",
            str(tmp_path / "out"),
            "--set",
            f"data_ingestion.source_url={missing}",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert "None" not in printed
    assert "pipeline wall time" not in printed
    assert "pipeline not started: no task ran" in printed
    assert f"FAILED at stage ingest: file not found: {missing}" in printed
    (log,) = (tmp_path / "out" / "logs").glob("*.log")
    summary = printed[printed.index("\npipeline not started") :].strip()
    assert log.read_text().rstrip("\n").endswith(summary)


def test_a_cached_fanned_out_task_is_named_by_its_cache_entry_with_its_original_time(tmp_path):
    import json

    from pipelines.local_tasks import cached_record

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
