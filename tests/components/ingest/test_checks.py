"""Unit tests of components/ingest/checks.py: `evaluate` on its own, with a fixed clock.

Covers what tests/components/ingest/test_ingest_incremental.py (one stale, short batch through
the stage) leaves out: the shipped config checking nothing, freshness at and just past
`max_age`, a batch without any freshness value, a newest row in the future or of this very
second, the exact messages, their age units and UTC times, completeness at and around
`min_rows` / `max_rows`, one bound alone (including a bound of 0), the severity under
`blocking`, and the real clock when `now` is left out.
"""

from __future__ import annotations

import time

import pytest

from components.common.config import IngestChecks
from components.ingest.checks import evaluate

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86400.0


def freshness(max_age: str = "1d", **more) -> IngestChecks:
    return IngestChecks(freshness_column="updated_at", max_age=max_age, **more)


def test_the_shipped_config_checks_nothing_but_still_counts_rows(settings):
    out = evaluate(settings.pipeline.data_ingestion.checks, 0, None, now=NOW)
    assert out == {"checks": {}, "metrics": {"ingest_rows": 0.0}, "anomalies": []}


def test_freshness_at_its_limit_passes_and_a_millisecond_older_fails():
    at = evaluate(freshness(), 10, NOW - DAY, now=NOW)
    assert at["anomalies"] == []
    assert at["checks"]["freshness"] == {
        "column": "updated_at",
        "newest": "2023-11-13T22:13:20Z",
        "age_s": DAY,
        "max_age_s": DAY,
        "passed": True,
    }
    assert at["metrics"] == {"ingest_rows": 10.0, "ingest_newest_age_s": DAY}
    past = evaluate(freshness(), 10, NOW - DAY - 0.001, now=NOW)
    assert past["checks"]["freshness"]["passed"] is False
    assert past["anomalies"] == [
        {
            "check": "freshness",
            "severity": "warning",
            "subject": "updated_at",
            "message": "stale data: the newest row (2023-11-13T22:13:19Z) is 1.0d old, "
            "more than the allowed 1d",
        }
    ]


@pytest.mark.parametrize(
    ("max_age", "age_s", "shown"),
    [
        ("30s", 45.0, "45s"),
        ("30s", 60.0, "1.0m"),  # a whole unit is told in that unit
        ("1m", 90.0, "1.5m"),
        ("90m", 7200.0, "2.0h"),
        ("1w", 9 * DAY, "9.0d"),
    ],
)
def test_the_age_is_told_in_its_largest_unit(max_age, age_s, shown):
    (anomaly,) = evaluate(freshness(max_age), 1, NOW - age_s, now=NOW)["anomalies"]
    assert f" is {shown} old, more than the allowed {max_age}" in anomaly["message"]


def test_no_freshness_value_at_all_is_stale_and_has_no_age_metric():
    out = evaluate(freshness(), 5, None, now=NOW)
    assert out["checks"]["freshness"]["newest"] is None
    assert out["checks"]["freshness"]["age_s"] is None
    assert out["checks"]["freshness"]["passed"] is False
    assert "ingest_newest_age_s" not in out["metrics"]
    assert [a["message"] for a in out["anomalies"]] == [
        "stale data: no value in 'updated_at', more than the allowed 1d"
    ]


def test_a_newest_row_in_the_future_is_fresh_with_a_negative_age():
    # freshness judges staleness only: even further ahead than max_age is not stale
    out = evaluate(freshness(), 5, NOW + 2 * DAY, now=NOW)
    assert out["anomalies"] == [] and out["metrics"]["ingest_newest_age_s"] == -2 * DAY


def test_a_newest_row_of_this_very_second_has_an_age_metric_of_zero():
    out = evaluate(freshness(), 5, NOW, now=NOW)
    assert out["metrics"]["ingest_newest_age_s"] == 0.0 and out["anomalies"] == []


@pytest.fixture()
def clock_away_from_utc(monkeypatch):
    """The process's local time zone five hours ahead of UTC (a POSIX TZ needs no tz data)."""
    monkeypatch.setenv("TZ", "XYZ-5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_told_in_utc_whatever_the_local_zone(clock_away_from_utc):
    out = evaluate(freshness(), 5, NOW - 2 * DAY, now=NOW)
    assert out["checks"]["freshness"]["newest"] == "2023-11-12T22:13:20Z"
    assert "(2023-11-12T22:13:20Z)" in out["anomalies"][0]["message"]


def test_a_newest_row_at_the_epoch_is_reported_as_such():
    out = evaluate(freshness("1w"), 5, 0.0, now=NOW)
    assert out["checks"]["freshness"]["newest"] == "1970-01-01T00:00:00Z"
    assert "(1970-01-01T00:00:00Z) is 19675.9d old" in out["anomalies"][0]["message"]


@pytest.mark.parametrize(
    ("rows", "passed"),
    [(99, False), (100, True), (1000, True), (1001, False)],
)
def test_completeness_bounds_are_inclusive(rows, passed):
    out = evaluate(IngestChecks(min_rows=100, max_rows=1000), rows, None, now=NOW)
    assert out["checks"] == {
        "completeness": {"rows": rows, "min_rows": 100, "max_rows": 1000, "passed": passed}
    }
    assert [a["check"] for a in out["anomalies"]] == ([] if passed else ["completeness"])


@pytest.mark.parametrize(
    ("checks", "rows", "message"),
    [
        (IngestChecks(min_rows=5000), 1234, "incomplete data: 1,234 rows, expected 5000-any"),
        (IngestChecks(max_rows=10), 11, "incomplete data: 11 rows, expected 0-10"),
        (IngestChecks(max_rows=0), 1, "incomplete data: 1 rows, expected 0-0"),
    ],
)
def test_one_bound_alone_and_its_message(checks, rows, message):
    (anomaly,) = evaluate(checks, rows, None, now=NOW)["anomalies"]
    assert anomaly == {
        "check": "completeness",
        "severity": "warning",
        "subject": "rows",
        "message": message,
    }


def test_a_bound_of_zero_is_still_a_check():
    out = evaluate(IngestChecks(min_rows=0), 0, None, now=NOW)
    assert out["checks"]["completeness"]["passed"] is True and out["anomalies"] == []


def test_blocking_makes_every_anomaly_blocking_in_order():
    checks = freshness(min_rows=10, blocking=True)
    out = evaluate(checks, 3, NOW - 2 * DAY, now=NOW)
    assert [(a["check"], a["severity"]) for a in out["anomalies"]] == [
        ("freshness", "blocking"),
        ("completeness", "blocking"),
    ]


def test_the_real_clock_is_used_when_now_is_left_out():
    out = evaluate(freshness("1h"), 1, time.time() - 10)
    assert out["anomalies"] == []
    assert 10 <= out["checks"]["freshness"]["age_s"] < 70
