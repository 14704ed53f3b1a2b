"""The `mlpipe run` summary reports a tuning study that the wall-time cap cut short."""

from pipelines.local_run import RunResult, format_summary


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
