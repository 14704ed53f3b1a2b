"""components.common.timekeys: time column values and window bounds as comparable keys."""

from __future__ import annotations

import datetime as dt
import io
import subprocess

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.common import timekeys
from components.common.config import REPO_ROOT
from tests.conftest import TFDV_PYTHON, needs_tfdv

TS = {"kind": "timestamp", "timezone": "UTC"}
BERLIN = {"kind": "timestamp", "timezone": "Europe/Berlin"}


def _via_parquet(column: pa.Array) -> pd.Series:
    """The column as pandas reads it back from a real Parquet file."""
    buf = io.BytesIO()
    pq.write_table(pa.table({"t": column}), buf)
    return pq.read_table(io.BytesIO(buf.getvalue())).to_pandas()["t"]


def test_iso_strings_with_and_without_time_and_offset():
    values = pd.Series(["2013-01-05", "2013-01-05T10:30:00", "2013-01-05T10:30:00+02:00", None])
    got = timekeys.keys(values, TS)
    assert list(got[:3]) == [
        pd.Timestamp("2013-01-05", tz="UTC"),
        pd.Timestamp("2013-01-05 10:30", tz="UTC"),
        pd.Timestamp("2013-01-05 08:30", tz="UTC"),
    ]
    assert pd.isna(got[3])


def test_naive_values_are_in_the_stated_timezone():
    got = timekeys.keys(pd.Series(["2013-07-01T12:00:00"]), BERLIN)
    assert got[0] == pd.Timestamp("2013-07-01 10:00", tz="UTC")  # CEST = UTC+2


def test_naive_and_aware_parquet_timestamps():
    moment = dt.datetime(2013, 7, 1, 12, 0)
    naive = _via_parquet(pa.array([moment], pa.timestamp("us")))
    aware = _via_parquet(pa.array([moment], pa.timestamp("us", tz="UTC")))
    assert timekeys.keys(naive, BERLIN)[0] == pd.Timestamp("2013-07-01 10:00", tz="UTC")
    # an aware value keeps its instant whatever the stated zone
    assert timekeys.keys(aware, BERLIN)[0] == pd.Timestamp("2013-07-01 12:00", tz="UTC")
    dates = _via_parquet(pa.array([dt.date(2013, 7, 1)], pa.date32()))
    assert timekeys.keys(dates, TS)[0] == pd.Timestamp("2013-07-01", tz="UTC")


def test_epoch_seconds_and_milliseconds():
    s = pd.Series([1357344000, 1357344060])  # 2013-01-05 00:00 and 00:01 UTC
    assert timekeys.keys(s, TS)[1] == pd.Timestamp("2013-01-05 00:01", tz="UTC")
    ms = timekeys.keys(s * 1000, {**TS, "unit": "ms"})
    assert ms[0] == pd.Timestamp("2013-01-05", tz="UTC")


def test_bad_values_are_missing_keys_and_reported():
    values = pd.Series(["2013-01-05", "not a date", None, "2013-02-30"])
    got = timekeys.keys(values, TS)
    assert got.isna().tolist() == [False, True, True, True]
    assert timekeys.unparseable(values, TS) == (2, "not a date")  # None is missing, not bad
    assert timekeys.unparseable(pd.Series(["2013-01-05"]), TS) == (0, None)


def test_an_end_date_covers_its_whole_day_a_datetime_end_does_not():
    values = pd.Series(["2013-09-30T23:59:59", "2013-10-01T00:00:00", "2013-01-01"])
    assert timekeys.in_window(values, "2013-01-01", "2013-09-30", TS).tolist() == [
        True,
        False,
        True,
    ]
    inside = timekeys.in_window(values, "2013-01-01", "2013-09-30T12:00:00", TS)
    assert inside.tolist() == [False, False, True]
    # the same with dates parsed by YAML (datetime.date), and a bad row in no window
    values[3] = "garbage"
    assert not timekeys.in_window(values, dt.date(2013, 1, 1), dt.date(2013, 9, 30), TS)[3]


def test_number_kind_compares_as_today():
    years = pd.Series([2014, 2015, 2016])
    assert timekeys.in_window(years, 2015, 2016).tolist() == [False, True, True]
    assert timekeys.in_window(years, 2015, 2016, {"kind": "number"}).tolist() == [
        False,
        True,
        True,
    ]


def test_a_bound_of_the_wrong_kind_is_a_one_line_error():
    with pytest.raises(ValueError, match="time column is a number .* windows are numbers"):
        timekeys.bound("2013-01-01", {"kind": "number"})
    with pytest.raises(ValueError, match="time column is a timestamp .* ISO dates"):
        timekeys.bound(2015, TS)
    with pytest.raises(ValueError, match="'2013-13-01' is not an ISO date or datetime"):
        timekeys.bound("2013-13-01", TS)
    with pytest.raises(ValueError, match="start 2013-02-01 is after end 2013-01-31"):
        timekeys.check_window("2013-02-01", "2013-01-31", TS)
    timekeys.check_window("2013-01-31", "2013-01-31", TS)  # one day


def test_overlap_uses_the_whole_end_day():
    assert timekeys.overlap(("2013-01-01", "2013-06-30"), ("2013-06-30T12:00", "2013-12-31"), TS)
    assert not timekeys.overlap(("2013-01-01", "2013-06-30"), ("2013-07-01", "2013-12-31"), TS)


@pytest.mark.tfdv
@needs_tfdv()
def test_the_tfdv_environment_reads_the_same_keys():
    """Validation splits in the tfdv environment (older pandas): same keys, same refusals."""
    code = (
        "import pandas as pd; from components.common import timekeys as t; "
        "v = pd.Series(['2013-01-05', '2013-01-05T10:30:00+02:00', '31/12/2013', None]); "
        "k = t.keys(v, {'kind': 'timestamp', 'timezone': 'Europe/Berlin'}); "
        "print([str(x) for x in k], t.unparseable(v, {'kind': 'timestamp'}))"
    )
    proc = subprocess.run(
        [str(TFDV_PYTHON), "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "['2013-01-04 23:00:00+00:00', '2013-01-05 08:30:00+00:00', 'NaT', 'NaT'] (1, '31/12/2013')"
    )
