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
