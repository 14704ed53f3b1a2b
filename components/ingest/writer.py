"""Write a Dataset chunk by chunk: filter (window, watermark), write Parquet incrementally, digest.

The writer holds one chunk at a time: rows are appended to a Parquet file with pyarrow's
ParquetWriter (one row group per chunk), the content digest is updated per chunk, and the
watermark, freshness and row counts are running aggregates. The caller owns the temporary file
and its rename (see `components.common.artifacts.atomic_path`).

Content digest (the dataset version): sha256 over a canonical form of the rows, independent of the
file format, compression and chunking: the column names and Arrow types, then for each row in
order its 64-bit pandas row hash (`pandas.util.hash_pandas_object`, fixed key, index excluded).
The same rows with the same types give the same version whether they came from Parquet, CSV, SQL
or an API; a different order gives another version (SQL sources are ordered by the watermark).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from components.common import timekeys
from components.common.errors import DataError

STAGE = "ingest"


def json_value(value: Any) -> tuple[Any, str]:
    """A watermark value as JSON and its kind (int, float, timestamp, date, string)."""
    if isinstance(value, bool):
        return int(value), "int"
    if isinstance(value, int):
        return value, "int"
    if isinstance(value, float):
        return value, "float"
    if isinstance(value, dt.datetime):
        return value.isoformat(), "timestamp"
    if isinstance(value, dt.date):
        return value.isoformat(), "date"
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat(), "timestamp"
    if hasattr(value, "__float__") and not isinstance(value, str):  # Decimal
        return float(value), "float"
    return str(value), "string"


def scalar_for(column_type: pa.DataType, value: Any) -> pa.Scalar:
    """`value` (a JSON watermark) as a scalar comparable with a column of `column_type`."""
    if pa.types.is_integer(column_type) and isinstance(value, int):
        return pa.scalar(value, pa.int64())
    if pa.types.is_integer(column_type) or pa.types.is_floating(column_type):
        return pa.scalar(float(value), pa.float64())
    if pa.types.is_decimal(column_type):
        return pa.scalar(float(value), pa.float64())
    if pa.types.is_timestamp(column_type):
        import pandas as pd

        ts = pd.Timestamp(value)
        if column_type.tz and ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        elif not column_type.tz and ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return pa.scalar(ts.to_pydatetime(), column_type)
    if pa.types.is_date(column_type):
        return pa.scalar(dt.date.fromisoformat(str(value)[:10]), column_type)
    return pa.scalar(str(value), pa.string())


def _comparable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_decimal(column.type):
        return pc.cast(column, pa.float64())
    if pa.types.is_large_string(column.type):
        return pc.cast(column, pa.string())
    return column


def epoch_seconds(value: Any) -> float | None:
    """A freshness value (timestamp, date, ISO string or epoch seconds) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.timestamp()


class DatasetWriter:
    """Append filtered chunks to a Parquet file; track rows, digest, watermark and freshness."""

    def __init__(
        self,
        path: str,
        *,
        name: str,
        time_column: str | None = None,
        window: dict[str, Any] | None = None,
        time_spec: dict[str, Any] | None = None,
        watermark_column: str | None = None,
        watermark_from: Any = None,
        freshness_column: str | None = None,
    ) -> None:
        self.path, self.name = path, name
        self.time_column, self.window, self.time_spec = time_column, window, time_spec
        self.wm_column, self.wm_from = watermark_column, watermark_from
        # a watermark on a timestamp time column compares time keys (UTC), not raw values: ISO
        # strings with other offsets or a naive zone order correctly and the JSON state holds
        # an ISO datetime with offset
        self.wm_keys = bool(watermark_column) and watermark_column == time_column
        self.wm_keys = self.wm_keys and timekeys.is_timestamp(time_spec)
        self.fresh_column = freshness_column
        self.schema: pa.Schema | None = None
        self.source_schema: pa.Schema | None = None
        self.writer: Any = None
        self.digest = hashlib.sha256()
        self.rows_read = self.rows = self.rows_null_watermark = self.chunks = 0
        self.rows_after_window = 0
        self.wm_max: Any = None
        self.fresh_max: float | None = None
        self.check_result: dict[str, Any] = {}

    # ------------------------------------------------------------ per chunk

    def write(self, table: pa.Table) -> None:
        table = table.replace_schema_metadata(None)
        if self.source_schema is None:
            self.source_schema = table.schema
            self._check_columns(table.schema)
        self.rows_read += table.num_rows
        table = self._filter(table)
        if table.num_rows == 0:
            return
        table = self._conform(table)
        if self.writer is None:
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(self.path, self.schema)
            self._digest_header()
        self.writer.write_table(table)
        self._digest_rows(table)
        self._aggregate(table)
        self.rows += table.num_rows
        self.chunks += 1

    def _check_columns(self, schema: pa.Schema) -> None:
        if schema.names == [] and self.rows_read == 0:
            return
        if self.window and (not self.time_column or self.time_column not in schema.names):
            raise DataError(
                STAGE,
                f"column {self.time_column!r} is missing: the window needs it",
                subject=self.time_column,
            )
        for what, column in (("watermark", self.wm_column), ("freshness", self.fresh_column)):
            if column and column not in schema.names:
                raise DataError(
                    STAGE,
                    f"{self.name}: {what} column {column!r} is missing "
                    f"(columns: {', '.join(schema.names[:20])})",
                    subject=column,
                )

    def _filter(self, table: pa.Table) -> pa.Table:
        if self.window and table.num_rows:
            times = table[self.time_column].to_pandas()
            start, end = self.window["start"], self.window["end"]
            try:
                keep = timekeys.in_window(times, start, end, self.time_spec)
            except ValueError as exc:  # a bound that does not fit the column's kind
                raise DataError(STAGE, str(exc), subject=self.time_column) from None
            table = table.filter(pa.array(keep.to_numpy(dtype=bool)))
        self.rows_after_window += table.num_rows
        if self.wm_keys and table.num_rows:
            keys = timekeys.keys(table[self.wm_column].to_pandas(), self.time_spec)
            nulls = int(keys.isna().sum())
            if self.wm_from is not None:
                keys = keys.where(keys > timekeys.bound(self.wm_from, self.time_spec))
            table = table.filter(pa.array(keys.notna().to_numpy()))
            self.rows_null_watermark += nulls
        elif self.wm_column and table.num_rows:
            column = _comparable(table[self.wm_column])
            nulls = column.null_count
            if self.wm_from is None:
                keep = pc.is_valid(column)
            else:
                keep = pc.greater(column, scalar_for(column.type, self.wm_from))
            table = table.filter(pc.fill_null(keep, False))
            self.rows_null_watermark += nulls
        return table

    def _conform(self, table: pa.Table) -> pa.Table:
        """Give every chunk the first chunk's schema (column order, types)."""
        if self.schema is None:
            fields = [
                pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                for f in table.schema
            ]
            self.schema = pa.schema(fields)
        if table.schema.equals(self.schema):
            return table
        extra = [n for n in table.schema.names if n not in self.schema.names]
        if extra:
            raise DataError(
                STAGE,
                f"{self.name}: column(s) {extra} appear after row {self.rows_read - table.num_rows}"
                " but not in the first batch",
                subject=self.name,
            )
        arrays = []
        for field in self.schema:
            if field.name not in table.schema.names:
                arrays.append(pa.nulls(table.num_rows, field.type))
                continue
            column = table[field.name]
            if column.type != field.type:
                try:
                    column = pc.cast(column, field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise DataError(
                        STAGE,
                        f"{self.name}: column {field.name!r} changes type from {field.type} to "
                        f"{column.type} after row {self.rows_read - table.num_rows} ({exc})",
                        subject=field.name,
                    ) from exc
            arrays.append(column)
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _digest_header(self) -> None:
        assert self.schema is not None
        header = ";".join(f"{f.name}:{f.type}" for f in self.schema)
        self.digest.update(header.encode())

    def _digest_rows(self, table: pa.Table) -> None:
        import pandas as pd

        frame = table.to_pandas()
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        self.digest.update(hashes.astype("<u8").tobytes())

    def _aggregate(self, table: pa.Table) -> None:
        if self.wm_column:
            if self.wm_keys:
                top = timekeys.keys(table[self.wm_column].to_pandas(), self.time_spec).max()
            else:
                top = pc.max(_comparable(table[self.wm_column])).as_py()
            if top is not None and (self.wm_max is None or top > self.wm_max):
                self.wm_max = top
        if self.fresh_column:
            column = table[self.fresh_column]
            if pa.types.is_large_string(column.type) or pa.types.is_string(column.type):
                import pandas as pd

                parsed = pd.to_datetime(column.to_pandas(), errors="coerce", utc=True)
                top = None if parsed.isna().all() else parsed.max()
            else:
                top = pc.max(_comparable(column)).as_py()
            seconds = epoch_seconds(top)
            if seconds is not None and (self.fresh_max is None or seconds > self.fresh_max):
                self.fresh_max = seconds

    # ------------------------------------------------------------ end

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    @property
    def content_sha256(self) -> str:
        return self.digest.hexdigest()

    @property
    def columns(self) -> list[str]:
        schema = self.schema or self.source_schema
        return list(schema.names) if schema is not None else []
