"""The chunked Dataset writer (ingest/writer.py) on real Arrow tables and Parquet files: rows,
chunks and schema, the window and watermark filters, schema drift between chunks, the content
digest (format and chunking independent), freshness, and the watermark value helpers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.common.errors import DataError
from components.ingest.writer import DatasetWriter, epoch_seconds, json_value, scalar_for

TS = {"kind": "timestamp", "timezone": "UTC", "unit": "s"}


def _write(path, *chunks: pa.Table, **kwargs) -> DatasetWriter:
    writer = DatasetWriter(str(path), name="src", **kwargs)
    for chunk in chunks:
        writer.write(chunk)
    writer.close()
    return writer


def _table(**columns) -> pa.Table:
    return pa.table(columns)


# ---------------------------------------------------------------- json_value / scalar_for


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, (1, "int")),
        (7, (7, "int")),
        (2.5, (2.5, "float")),
        (dt.datetime(2020, 1, 2, 3, 4, 5), ("2020-01-02T03:04:05", "timestamp")),
        (dt.date(2020, 1, 2), ("2020-01-02", "date")),
        (pd.Timestamp("2020-01-02 03:04", tz="UTC"), ("2020-01-02T03:04:00+00:00", "timestamp")),
        (Decimal("1.25"), (1.25, "float")),
        ("abc", ("abc", "string")),
        ("12", ("12", "string")),  # a string stays a string, even a numeric one
    ],
)
def test_json_value(value, expected):
    out = json_value(value)
    assert out == expected and type(out[0]) is type(expected[0])


def test_scalar_for_every_column_kind():
    assert scalar_for(pa.int32(), 5) == pa.scalar(5, pa.int64())
    assert scalar_for(pa.int64(), 5.5) == pa.scalar(5.5, pa.float64())  # a float watermark
    assert scalar_for(pa.float32(), 2) == pa.scalar(2.0, pa.float64())
    assert scalar_for(pa.decimal128(10, 2), 1.5) == pa.scalar(1.5, pa.float64())
    assert scalar_for(pa.date32(), "2020-01-02T00:00:00") == pa.scalar(
        dt.date(2020, 1, 2), pa.date32()
    )
    assert scalar_for(pa.string(), 12) == pa.scalar("12", pa.string())


def test_scalar_for_timestamps_converts_to_the_columns_zone():
    aware = pa.timestamp("us", tz="UTC")
    naive = pa.timestamp("us")
    # a naive JSON value against an aware column is UTC
    assert scalar_for(aware, "2020-01-02T03:00:00").as_py() == dt.datetime(
        2020, 1, 2, 3, tzinfo=dt.UTC
    )
    # an offset value against a naive column: converted to UTC, then naive
    assert scalar_for(naive, "2020-01-02T03:00:00+02:00").as_py() == dt.datetime(2020, 1, 2, 1)
    assert scalar_for(naive, "2020-01-02T03:00:00").type == naive


def test_scalar_for_an_unreadable_timestamp_raises():
    with pytest.raises(ValueError):
        scalar_for(pa.timestamp("us"), "not a time")


# ---------------------------------------------------------------- epoch_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (1_600_000_000, 1_600_000_000.0),
        (1.5, 1.5),
        ("2020-01-01T00:00:00Z", 1577836800.0),
        ("2020-01-01T02:00:00+02:00", 1577836800.0),
        ("2020-01-01", 1577836800.0),  # naive: UTC
        (dt.date(2020, 1, 1), 1577836800.0),
        (pd.Timestamp("2020-01-01", tz="UTC"), 1577836800.0),
        ("yesterday-ish", None),
        (object(), None),
    ],
)
def test_epoch_seconds(value, seconds):
    assert epoch_seconds(value) == seconds


# ---------------------------------------------------------------- writing


def test_chunks_are_appended_to_one_parquet_file(tmp_path):
    path = tmp_path / "out.parquet"
    w = _write(path, _table(a=[1, 2], b=["x", "y"]), _table(a=[3], b=["z"]))
    assert (w.rows_read, w.rows, w.chunks) == (3, 3, 2)
    assert w.columns == ["a", "b"]
    back = pq.read_table(path)
    assert back.to_pydict() == {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    assert pq.ParquetFile(path).num_row_groups == 2  # one row group per chunk
    assert len(w.content_sha256) == 64


def test_no_rows_writes_no_file_but_keeps_the_source_columns(tmp_path):
    path = tmp_path / "out.parquet"
    w = _write(path, _table(a=pa.array([], pa.int64()), b=pa.array([], pa.string())))
    assert not path.exists()
    assert (w.rows_read, w.rows, w.chunks) == (0, 0, 0) and w.columns == ["a", "b"]
    assert DatasetWriter(str(path), name="src").columns == []  # nothing seen at all


def test_the_digest_ignores_chunking_but_not_order_or_types(tmp_path):
    one = _write(tmp_path / "1.parquet", _table(a=[1, 2, 3], b=["x", "y", "z"]))
    two = _write(tmp_path / "2.parquet", _table(a=[1], b=["x"]), _table(a=[2, 3], b=["y", "z"]))
    assert one.content_sha256 == two.content_sha256
    reordered = _write(tmp_path / "3.parquet", _table(a=[2, 1, 3], b=["y", "x", "z"]))
    assert reordered.content_sha256 != one.content_sha256
    narrower = _write(
        tmp_path / "4.parquet", _table(a=pa.array([1, 2, 3], pa.int32()), b=["x", "y", "z"])
    )
    assert narrower.content_sha256 != one.content_sha256
    renamed = _write(tmp_path / "5.parquet", _table(c=[1, 2, 3], b=["x", "y", "z"]))
    assert renamed.content_sha256 != one.content_sha256


def test_schema_metadata_does_not_change_the_digest(tmp_path):
    plain = _table(a=[1, 2])
    tagged = plain.replace_schema_metadata({"pandas": "{}", "origin": "csv"})
    a = _write(tmp_path / "a.parquet", plain)
    b = _write(tmp_path / "b.parquet", tagged)
    assert a.content_sha256 == b.content_sha256
    assert pq.read_schema(tmp_path / "b.parquet").metadata is None or (
        b"origin" not in pq.read_schema(tmp_path / "b.parquet").metadata
    )


# ---------------------------------------------------------------- schema drift between chunks


def test_a_later_chunk_with_a_missing_column_gets_nulls(tmp_path):
    path = tmp_path / "out.parquet"
    _write(path, _table(a=[1], b=["x"]), _table(a=[2]))
    assert pq.read_table(path).to_pydict() == {"a": [1, 2], "b": ["x", None]}


def test_a_later_chunk_with_columns_in_another_order_is_conformed(tmp_path):
    path = tmp_path / "out.parquet"
    _write(path, _table(a=[1], b=["x"]), _table(b=["y"], a=[2]))
    assert pq.read_table(path).to_pydict() == {"a": [1, 2], "b": ["x", "y"]}


def test_a_later_chunk_with_a_new_column_is_refused(tmp_path):
    w = DatasetWriter(str(tmp_path / "out.parquet"), name="src")
    w.write(_table(a=[1, 2]))
    with pytest.raises(DataError, match=r"src: column\(s\) \['c'\] appear after row 2"):
        w.write(_table(a=[3], c=[4]))
    w.close()


def test_a_safe_type_change_is_cast_an_unsafe_one_refused(tmp_path):
    path = tmp_path / "out.parquet"
    _write(path, _table(a=pa.array([1], pa.int64())), _table(a=pa.array([2], pa.int32())))
    assert pq.read_table(path).schema.field("a").type == pa.int64()
    w = DatasetWriter(str(tmp_path / "bad.parquet"), name="src")
    w.write(_table(a=pa.array([1], pa.int64())))
    with pytest.raises(DataError, match="column 'a' changes type from int64 to string after row 1"):
        w.write(_table(a=["one"]))
    # a fraction is never truncated into the first chunk's integers
    with pytest.raises(DataError, match="column 'a' changes type from int64 to double"):
        w.write(_table(a=[2.5]))
    w.close()


def test_an_all_null_first_chunk_is_a_string_column(tmp_path):
    path = tmp_path / "out.parquet"
    _write(path, _table(a=[1], b=pa.nulls(1)), _table(a=[2], b=["x"]))
    back = pq.read_table(path)
    assert back.schema.field("b").type == pa.string()
    assert back.to_pydict()["b"] == [None, "x"]


# ---------------------------------------------------------------- filters


def test_the_window_keeps_rows_in_range_inclusive(tmp_path):
    path = tmp_path / "out.parquet"
    w = _write(
        path,
        _table(year=[2014, 2015, 2016], v=[1, 2, 3]),
        _table(year=[2017, 2018], v=[4, 5]),
        time_column="year",
        window={"start": 2015, "end": 2017},
    )
    assert pq.read_table(path).to_pydict() == {"year": [2015, 2016, 2017], "v": [2, 3, 4]}
    assert (w.rows_read, w.rows_after_window, w.rows) == (5, 3, 3)


def test_a_timestamp_window_reads_iso_strings_in_any_offset(tmp_path):
    path = tmp_path / "out.parquet"
    times = ["2020-01-01T23:30:00-01:00", "2020-01-02T12:00:00Z", "2020-01-03T00:00:00Z"]
    _write(
        path,
        _table(t=times, v=[1, 2, 3]),
        time_column="t",
        time_spec=TS,
        window={"start": "2020-01-02", "end": "2020-01-02"},  # an end date covers its day
    )
    assert pq.read_table(path).to_pydict()["v"] == [1, 2]


def test_a_window_bound_of_the_wrong_kind_is_a_data_error(tmp_path):
    w = DatasetWriter(
        str(tmp_path / "out.parquet"),
        name="src",
        time_column="year",
        window={"start": "2015-01-01", "end": "2016-01-01"},
    )
    with pytest.raises(DataError, match="the time column is a number"):
        w.write(_table(year=[2015]))


def test_a_window_without_its_time_column_is_refused(tmp_path):
    w = DatasetWriter(
        str(tmp_path / "out.parquet"),
        name="src",
        time_column="year",
        window={"start": 2015, "end": 2016},
    )
    with pytest.raises(DataError, match="column 'year' is missing: the window needs it"):
        w.write(_table(v=[1]))


@pytest.mark.parametrize("what", ["watermark", "freshness"])
def test_a_missing_watermark_or_freshness_column_is_refused(tmp_path, what):
    w = DatasetWriter(str(tmp_path / "out.parquet"), name="src", **{f"{what}_column": "ts"})
    with pytest.raises(DataError, match=f"src: {what} column 'ts' is missing \\(columns: a\\)"):
        w.write(_table(a=[1]))


def test_the_watermark_keeps_only_newer_rows_and_counts_nulls(tmp_path):
    path = tmp_path / "out.parquet"
    w = _write(
        path,
        _table(id=pa.array([1, 2, None, 6], pa.int64()), v=[1, 2, 3, 4]),
        _table(id=pa.array([5, None], pa.int64()), v=[5, 6]),  # a later chunk may be lower
        watermark_column="id",
        watermark_from=2,
    )
    assert pq.read_table(path).to_pydict() == {"id": [6, 5], "v": [4, 5]}
    assert (w.rows_null_watermark, w.wm_max) == (2, 6)


def test_without_a_previous_watermark_only_null_rows_are_dropped(tmp_path):
    path = tmp_path / "out.parquet"
    w = _write(
        path,
        _table(id=pa.array([3.5, None, 1.0]), v=[1, 2, 3]),
        watermark_column="id",
    )
    assert pq.read_table(path).to_pydict()["v"] == [1, 3]
    assert (w.rows_null_watermark, w.wm_max) == (1, 3.5)


def test_a_decimal_watermark_compares_as_a_number(tmp_path):
    amounts = pa.array([Decimal("1.10"), Decimal("2.50"), Decimal("3.00")], pa.decimal128(5, 2))
    w = _write(
        tmp_path / "out.parquet",
        _table(amount=amounts),
        watermark_column="amount",
        watermark_from=2.5,
    )
    assert w.rows == 1 and w.wm_max == 3.0 and type(w.wm_max) is float  # JSON-ready


def test_a_timestamp_time_column_watermark_compares_utc_keys(tmp_path):
    """Watermark on the timestamp time column: ISO strings in other offsets order by UTC time."""
    path = tmp_path / "out.parquet"
    w = _write(
        path,
        _table(t=["2020-01-01T10:00:00+02:00", "2020-01-01T09:00:00Z", None, "junk"]),
        time_column="t",
        time_spec=TS,
        watermark_column="t",
        watermark_from="2020-01-01T09:00:00+01:00",  # the first row's time (08:00 UTC)
    )
    assert pq.read_table(path).to_pydict()["t"] == ["2020-01-01T09:00:00Z"]
    assert w.rows_null_watermark == 2  # null and unreadable: no key
    assert w.wm_max == pd.Timestamp("2020-01-01T09:00:00Z")


def test_everything_filtered_writes_nothing(tmp_path):
    path = tmp_path / "out.parquet"
    w = _write(path, _table(id=[1, 2]), watermark_column="id", watermark_from=5)
    assert not path.exists() and w.rows == 0 and w.rows_read == 2 and w.wm_max is None


# ---------------------------------------------------------------- freshness


def test_freshness_is_the_newest_time_over_all_chunks(tmp_path):
    w = _write(
        tmp_path / "out.parquet",
        _table(updated=["2020-01-01T00:00:00Z", "garbage"]),
        _table(updated=["2019-12-31T00:00:00Z", None]),
        freshness_column="updated",
    )
    assert w.fresh_max == 1577836800.0


def test_freshness_of_a_timestamp_or_epoch_column(tmp_path):
    stamps = pa.array([dt.datetime(2020, 1, 1), dt.datetime(2019, 1, 1)], pa.timestamp("s"))
    w = _write(tmp_path / "a.parquet", _table(updated=stamps), freshness_column="updated")
    assert w.fresh_max == 1577836800.0  # naive: UTC
    w = _write(tmp_path / "b.parquet", _table(updated=[10, 30, 20]), freshness_column="updated")
    assert w.fresh_max == 30.0


def test_unreadable_freshness_leaves_it_unknown(tmp_path):
    w = _write(tmp_path / "out.parquet", _table(updated=["n/a", None]), freshness_column="updated")
    assert w.fresh_max is None
