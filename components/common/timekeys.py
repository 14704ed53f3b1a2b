"""The time column's values and the windows' bounds as comparable keys: the one place that knows
how a time value is read (the schema's `time` block: components.common.config.TimeSpec).

kind `number` (the default): values and bounds are numbers (e.g. integer years), compared as they
are. kind `timestamp`: values are ISO date/datetime strings, Parquet/pandas timestamps (naive ones
are in `timezone`, aware ones are converted) or epoch numbers in `unit` (s or ms); bounds are ISO
dates or datetimes (naive: in `timezone`), and an end given as a date covers that whole day.
ISO strings are read with `datetime.fromisoformat` (Python 3.11: dates, "T" or space, offsets,
"Z"; fractions below a microsecond are dropped); "01/02/2013" is refused, not guessed.
Timestamp keys are tz-aware UTC pandas Timestamps. A value that cannot be read becomes a missing
key (NaN/NaT): it belongs to no window, and validation reports it (`unparseable`).

Plain pandas: it also runs in the tfdv environment (validation's windows).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a timestamp is read: number windows (the config's
    import pandas as pd  # checks, in every task that loads it) need no pandas


NUMBER, TIMESTAMP = "number", "timestamp"
_DEFAULTS = {"kind": NUMBER, "timezone": "UTC", "unit": "s"}


def spec(time: Mapping[str, Any] | None) -> dict[str, Any]:
    """The schema's `time` block (a dict or None) with its defaults filled in."""
    return {**_DEFAULTS, **{k: v for k, v in dict(time or {}).items() if v is not None}}


def is_timestamp(time: Mapping[str, Any] | None) -> bool:
    return spec(time)["kind"] == TIMESTAMP


def _stamp(value: Any, tz: str) -> pd.Timestamp:
    """One ISO string / date / datetime as a UTC Timestamp (naive: in `tz`); NaT if unreadable.
    Strings must be ISO 8601: a day-first or month-first "01/02/2013" is refused, not guessed."""
    import pandas as pd

    try:  # fromisoformat: strict in every pandas (the tfdv environment has pandas 1.5)
        ts = pd.Timestamp(dt.datetime.fromisoformat(value) if isinstance(value, str) else value)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if ts is pd.NaT:
        return pd.NaT
    return (ts.tz_localize(tz) if ts.tzinfo is None else ts).tz_convert("UTC")


def keys(values: pd.Series, time: Mapping[str, Any] | None = None) -> pd.Series:
    """The column's values as comparable keys (same index); unreadable values are missing."""
    import pandas as pd

    s = spec(time)
    if s["kind"] == NUMBER:
        return pd.to_numeric(values, errors="coerce")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.dt.tz_localize(s["timezone"]).dt.tz_convert("UTC")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        return pd.to_datetime(values, unit=s["unit"], utc=True, errors="coerce")
    # strings, dates, mixed objects: each distinct value parsed once (dates repeat a lot)
    distinct = values.dropna().unique()
    lookup = {v: _stamp(v, s["timezone"]) for v in distinct}
    return pd.to_datetime(values.map(lookup), utc=True)


def unparseable(values: pd.Series, time: Mapping[str, Any] | None = None) -> tuple[int, Any]:
    """(how many present values cannot be read as time keys, the first such value)."""
    bad = values.notna() & keys(values, time).isna()
    n = int(bad.sum())
    return n, (values[bad].iloc[0] if n else None)


def _is_date_only(value: Any) -> bool:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return True
    return isinstance(value, str) and len(value.strip()) == 10  # YYYY-MM-DD


def bound(value: Any, time: Mapping[str, Any] | None = None, *, end: bool = False) -> Any:
    """A window bound as a key. ValueError (one line) when it does not fit the column's kind."""
    s = spec(time)
    if s["kind"] == NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(
                f"window bound {value!r}: the time column is a number (time.kind: number), "
                "so windows are numbers like 2015"
            )
        return value
    if isinstance(value, bool | int | float):
        raise ValueError(
            f"window bound {value!r}: the time column is a timestamp (time.kind: timestamp), "
            "so windows are ISO dates or datetimes like '2013-01-01'"
        )
    import pandas as pd

    key = _stamp(value, s["timezone"])
    if key is pd.NaT:
        raise ValueError(f"window bound {value!r} is not an ISO date or datetime")
    if end and _is_date_only(value):  # an end date covers its whole day
        key = key + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return key


def in_window(
    values: pd.Series, start: Any, end: Any, time: Mapping[str, Any] | None = None
) -> pd.Series:
    """Whether each value lies in [start, end] (bounds as configured); unreadable: False."""
    k = keys(values, time)
    return ((k >= bound(start, time)) & (k <= bound(end, time, end=True))).fillna(False)


def check_window(start: Any, end: Any, time: Mapping[str, Any] | None = None) -> None:
    """ValueError (one line) when a bound does not fit the column's kind or start > end."""
    lo, hi = bound(start, time), bound(end, time, end=True)
    if lo > hi:
        raise ValueError(f"start {start} is after end {end}")


def overlap(a: Any, b: Any, time: Mapping[str, Any] | None = None) -> bool:
    """Whether windows a=(start, end) and b=(start, end) share any time."""
    a0, a1 = bound(a[0], time), bound(a[1], time, end=True)
    b0, b1 = bound(b[0], time), bound(b[1], time, end=True)
    return not (a1 < b0 or b1 < a0)
