"""The `mlpipe run` summary: a tuning study the wall-time cap cut short, the stages' warnings."""

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
