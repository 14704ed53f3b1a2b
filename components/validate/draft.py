"""Draft a data schema (config/data_schema.yaml's format) from a dataset: `mlpipe schema infer`.

Plain pandas decides each column's kind and domain; TFDV (its statistics and tfdv.infer_schema,
run in the tfdv environment like the validate job) adds its type and missing counts per column and
the string domain of a text column. Every guess is written as a YAML comment, and the draft is
checked against the config model before it is returned, so it always loads.

A text column with few distinct values (the same limits as integer categories) becomes a
`dtype: string` categorical feature listing its sorted observed values. Not drafted (the schema
cannot say them): text with many distinct values, true/false and timestamp columns; they are
listed under `columns.ignore`, each with a comment saying why. The label must be binary and numeric.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from components.common import tfdv_env
from components.common.artifacts import read_json
from components.common.config import DataSchema, SchemaChecks
from components.common.errors import StageError

# percent and value_examples: the validation messages' formats, shared with the draft notes
from components.validate.checks import (
    Contract,
    duplicate_row_share,
    is_numeric,
    percent,
    value_examples,
)

STAGE = "schema infer"
JOB_MODULE = "components.validate.draft_job"
# an integer column is a category when it has at most this many distinct values (the census
# code lists run to 25: SCHL) and each value repeats on average at least MIN_REPEATS times
MAX_CATEGORICAL_CODES = 25
MIN_REPEATS = 5
WIDEN = 0.1  # numeric ranges: observed min/max widened by this share of the span on each side
DEFAULT_MIN_ROWS = SchemaChecks().min_rows


class DraftError(ValueError):
    """The data cannot be drafted (the message is one line saying why)."""


@dataclass
class Draft:
    """The drafted schema (a dict the config model accepts) and what was guessed."""

    schema: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)  # feature or key -> why
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it is not drafted
    header: list[str] = field(default_factory=list)
    # what validation will block in this very data: the draft cannot declare it away
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- TFDV


def tfdv_statistics(
    df: pd.DataFrame, python: str | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """TFDV's statistics and inferred schema per column (components.validate.draft_job)."""
    python = python or tfdv_env.tfdv_python(STAGE)
    with tempfile.TemporaryDirectory(prefix="mlpipe-schema-infer-") as tmp:
        data, out = Path(tmp) / "data.parquet", Path(tmp) / "tfdv.json"
        df.to_parquet(data, index=False)
        code, last = tfdv_env.run_module(
            python, JOB_MODULE, ["--data", str(data), "--out", str(out)], log, "schema infer:"
        )
        if code:
            raise StageError(STAGE, f"the TFDV job failed (exit code {code}): {last}")
        return read_json(out)


# ---------------------------------------------------------------- guesses per column


def _number(value: float, as_int: bool) -> int | float:
    return int(value) if as_int else float(f"{value:.6g}")


def _outward(lo: float, hi: float, as_int: bool) -> tuple[int | float, int | float]:
    """[lo, hi] widened by WIDEN of the span each side, rounded outward to a 'round' step; never
    below 0 when the data has no negative values (counts, ages, amounts)."""
    span = hi - lo or abs(hi) or 1.0
    step = 10.0 ** (math.floor(math.log10(span)) - 1)
    if as_int:
        step = max(1.0, step)
    new_lo = math.floor((lo - WIDEN * span) / step) * step
    new_hi = math.ceil((hi + WIDEN * span) / step) * step
    if lo >= 0:
        new_lo = max(0.0, new_lo)
    return _number(new_lo, as_int), _number(new_hi, as_int)


def _codes(values: list[int]) -> list[int] | dict[str, int]:
    """A contiguous set as {min, max} (the schema's range form), else the list."""
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return {"min": values[0], "max": values[-1]}
    return values


def _examples(values: list[Any], n: int = 3) -> str:
    shown = ", ".join(repr(v) for v in values[:n])
    return shown + (", ..." if len(values) > n else "")


def _not_drafted(series: pd.Series, tfdv: dict[str, Any] | None) -> str | None:
    """Why a column cannot be a feature of the current schema, or None when it can."""
    non_null = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "true/false values (re-encode them as 0/1 to use the column)"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp values (not a feature; a time column: --time-column)"
    if not is_numeric(series):
        if _few_texts(series):
            return None
        domain = (tfdv or {}).get("string_domain")
        uniques = sorted(map(str, non_null.unique()))
        found = f"{len(uniques)} distinct, e.g. {_examples(uniques)}"
        if domain:
            found += f"; TFDV infers a string domain of {len(domain)} values"
        return (
            f"string values ({found}); too many distinct values for a category (at most "
            f"{MAX_CATEGORICAL_CODES}, each seen {MIN_REPEATS}+ times on average)"
        )
    if non_null.empty:
        return "no values"
    infinite = int(np.isinf(non_null.to_numpy(dtype="float64")).sum())
    if infinite:
        return f"{infinite} infinite values (validation blocks them: clean them first)"
    return None


def _few_texts(series: pd.Series) -> bool:
    """Only texts, few enough distinct ones to be a category (the integer codes' limits)."""
    non_null = series.dropna()
    if non_null.empty or not all(isinstance(v, str) for v in non_null):
        return False
    distinct = int(non_null.nunique())
    return distinct <= MAX_CATEGORICAL_CODES and distinct * MIN_REPEATS <= len(non_null)


def _feature(
    series: pd.Series, rows: int, tfdv: dict[str, Any] | None
) -> tuple[dict[str, Any], str]:
    """The feature's spec and the comment saying what was guessed."""
    non_null = series.dropna()
    if not is_numeric(series):  # _not_drafted let only few texts through
        values = sorted(non_null.unique())
        spec: dict[str, Any] = {"kind": "categorical", "dtype": "string", "values": values}
        note = (
            f"guessed categorical: {len(values)} distinct text value{'s' * (len(values) != 1)} "
            "(code = position in values: append new values at the end)"
        )
        return _missing_and_tfdv(spec, note, series, rows, tfdv)
    whole = bool((non_null == non_null.round()).all())
    dtype = "int" if pd.api.types.is_integer_dtype(series) else "float"
    distinct = int(non_null.nunique())
    if whole and distinct <= MAX_CATEGORICAL_CODES and distinct * MIN_REPEATS <= len(non_null):
        codes = sorted(int(v) for v in non_null.unique())
        spec = {"kind": "categorical", "dtype": dtype, "values": _codes(codes)}
        stored = "integer" if dtype == "int" else "whole-number float"
        note = f"guessed categorical: {distinct} distinct {stored} value{'s' * (distinct != 1)}"
        if distinct == 1:
            note += " (constant: is it useful?)"
        holes = sorted(set(range(codes[0], codes[-1] + 1)) - set(codes))
        if holes and len(holes) <= 5:
            note += f"; codes {holes} not seen: add them if valid"
    else:
        lo, hi = float(non_null.min()), float(non_null.max())
        spec = {"kind": "numeric", "dtype": dtype}
        spec["min"], spec["max"] = _outward(lo, hi, dtype == "int")
        kind = "integer" if dtype == "int" else "float"
        note = (
            f"guessed numeric: {distinct} distinct {kind} values, observed "
            f"{_number(lo, dtype == 'int')}..{_number(hi, dtype == 'int')}, range widened by "
            f"{WIDEN:.0%} of the span"
        )
        if lo >= 0 and lo - WIDEN * (hi - lo) < 0:
            note += " (not below 0: no negative value seen)"
        if whole and distinct == len(series):
            note += f"; every value distinct: an id? then --id-column {series.name}"
    return _missing_and_tfdv(spec, note, series, rows, tfdv)


def _missing_and_tfdv(
    spec: dict[str, Any], note: str, series: pd.Series, rows: int, tfdv: dict[str, Any] | None
) -> tuple[dict[str, Any], str]:
    missing = rows - int(series.notna().sum())
    if missing:
        # a little above what was seen: the default allows no missing value at all
        allowed = min(1.0, math.ceil((missing / rows) * 1.5 * 100) / 100)
        spec["max_missing_fraction"] = allowed
        note += f"; {percent(missing / rows)} missing, allowed up to {allowed:g}"
    if tfdv:
        tfdv_missing = tfdv.get("missing", 0)
        note += f"; TFDV: {tfdv.get('inferred_type', tfdv.get('type'))}, {tfdv_missing} missing"
    return spec, note


# ---------------------------------------------------------------- the draft


def _label(df: pd.DataFrame, name: str) -> tuple[dict[str, Any], str]:
    if name not in df.columns:
        raise DraftError(f"label column {name!r} not found (columns: {_examples(list(df), 8)})")
    series = df[name]
    values = series.dropna()
    if not is_numeric(series):
        raise DraftError(
            f"label {name!r} holds {'true/false' if pd.api.types.is_bool_dtype(series) else 'text'}"
            f" values (e.g. {_examples(sorted(map(str, values.unique())))}): encode it as 0/1"
        )
    distinct = sorted(values.unique())
    if len(distinct) != 2 or not all(float(v).is_integer() for v in distinct):
        raise DraftError(
            f"label {name!r} is not binary: {len(distinct)} distinct values "
            f"(e.g. {value_examples(distinct)}); "
            "the pipeline trains binary classifiers on two integer values"
        )
    codes = [int(v) for v in distinct]
    rate = float((values == codes[-1]).mean())
    # half-way to 0 and to 1 from the observed rate: a window far outside has a broken label
    lo, hi = math.floor(rate / 2 * 100) / 100, math.ceil((1 + rate) / 2 * 100) / 100
    spec = {"name": name, "values": codes, "min_positive_rate": lo, "max_positive_rate": hi}
    note = (
        f"positive value {codes[-1]}, observed positive rate {rate:.3f}; bounds half-way to 0 and 1"
    )
    return spec, note


def _time_block(series: pd.Series) -> dict[str, str] | None:
    """The schema's `time` block for a date/timestamp time column; None for a number one (the
    default kind; epoch numbers look like any number: declare `kind: timestamp` by hand)."""
    from components.common import timekeys

    if is_numeric(series) and not pd.api.types.is_datetime64_any_dtype(series):
        return None
    tz = getattr(series.dtype, "tz", None)  # a tz-aware column: its own zone
    block = {"kind": "timestamp", "timezone": str(tz) if tz is not None else "UTC"}
    n, example = timekeys.unparseable(series, block)
    if n:
        raise DraftError(
            f"time column {series.name!r}: {n:,} value{'s' * (n != 1)} neither a number nor an "
            f"ISO date/datetime, e.g. {example!r}"
        )
    return block


def _column(df: pd.DataFrame, name: str | None, role: str) -> None:
    if name is not None and name not in df.columns:
        raise DraftError(f"{role} column {name!r} not found (columns: {_examples(list(df), 8)})")


def draft_schema(
    df: pd.DataFrame,
    label: str,
    time_column: str | None = None,
    id_column: str | None = None,
    tfdv: dict[str, Any] | None = None,
) -> Draft:
    """Draft the data schema of `df`. `tfdv`: tfdv_statistics(df), or None to go without."""
    if df.empty or not len(df.columns):
        raise DraftError("the data has no rows" if len(df.columns) else "the data has no columns")
    label_spec, label_note = _label(df, label)
    _column(df, time_column, "time")
    _column(df, id_column, "id")
    time_block = _time_block(df[time_column]) if time_column else None
    rows = len(df)
    per_column = (tfdv or {}).get("features", {})
    draft = Draft(schema={})
    draft.notes["label"] = label_note
    features: dict[str, Any] = {}
    for name in map(str, df.columns):
        if name in (label, time_column, id_column):
            continue
        why = _not_drafted(df[name], per_column.get(name))
        if why:
            draft.skipped[name] = why
            continue
        features[name], draft.notes[name] = _feature(df[name], rows, per_column.get(name))
    if not features:
        raise DraftError(f"no column can be a feature: {'; '.join(draft.skipped.values())}")
    for name, role in ((label, "label"), (id_column, "id"), (time_column, "time")):
        missing = int(df[name].isna().sum()) if name else 0
        if missing:
            draft.warnings.append(
                f"{role} column {name!r} has {missing:,} row{'s' * (missing != 1)} without a "
                "value: validation blocks them, drop those rows"
            )

    checks: dict[str, Any] = SchemaChecks().model_dump()
    # windows hold a part of the rows: on small data a fixed 100 would fail every run
    checks["min_rows"] = min(DEFAULT_MIN_ROWS, max(1, rows // 10))
    draft.notes["min_rows"] = f"{rows:,} rows in this data"
    if id_column:
        dup = float(df[id_column].duplicated().mean())
        if dup:
            checks["max_duplicate_id_fraction"] = math.ceil(dup * 100) / 100
            draft.notes["max_duplicate_id_fraction"] = f"ids repeat in {percent(dup)} of rows"
    contract = Contract(id_column, time_column, None, SchemaChecks(), None)
    share = duplicate_row_share(df.drop(columns=list(draft.skipped)), contract)
    draft.notes["duplicate_rows"] = f"{percent(share)} of rows repeat another's features and label"
    if share > checks["warn_duplicate_row_fraction"]:
        checks["warn_duplicate_row_fraction"] = min(1.0, math.ceil(share * 100) / 100)
    if share > checks["max_duplicate_row_fraction"]:
        checks["max_duplicate_row_fraction"] = min(1.0, math.ceil(share * 100) / 100)
        draft.notes["duplicate_rows"] += ": blocking limit raised to pass, is the data copied?"

    draft.schema = {
        "id_column": id_column,
        "time_column": time_column,
        **({"time": time_block} if time_block else {}),
        "label": label_spec,
        "checks": checks,
        "features": features,
    }
    if draft.skipped:  # read and dropped before validation: the run goes on without them
        draft.schema["columns"] = {"ignore": list(draft.skipped)}
    DataSchema.model_validate(draft.schema)  # a draft that does not load is a bug here
    tfdv_part = (
        f"TFDV {tfdv['tfdv_version']} statistics and infer_schema: types, missing counts, "
        "string domains"
        if tfdv
        else "no TFDV (--no-tfdv)"
    )
    draft.header = [
        f"{rows:,} rows, {len(df.columns)} columns; {len(features)} features drafted, "
        f"{len(draft.skipped)} not drafted",
        f"kinds and domains: pandas; {tfdv_part}",
    ]
    return draft


# ---------------------------------------------------------------- YAML


def _flow(value: Any) -> str:
    """One YAML value on one line, in the flow style config/data_schema.yaml uses."""
    text = yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=1 << 20)
    return text.strip()[1:-1]


def render(draft: Draft, source: str) -> str:
    """The draft as data_schema.yaml text: the same layout, comments saying what was guessed."""
    s = draft.schema
    out = [
        "# DRAFT data schema written by `mlpipe schema infer`: REVIEW IT before use.",
        f"# data: {source}",
        "# Kinds, domains and bounds below are guesses from this data only (each says why); a",
        "# value outside a declared domain stops a training run, so widen what may grow.",
        *(f"# {line}" for line in draft.header),
        *(f"# WARNING: {line}" for line in draft.warnings),
        f"id_column: {_flow(s['id_column'])}",
        f"time_column: {_flow(s['time_column'])}",
        *(
            [f"time: {_flow(s['time'])}  # windows: ISO dates (an end date: its whole day)"]
            if "time" in s
            else []
        ),
        "label:",
        f"  # {draft.notes['label']}",
    ]
    out += [f"  {key}: {_flow(value)}" for key, value in s["label"].items()]
    out.append("checks:")
    comments = {
        "min_rows": draft.notes.get("min_rows"),
        "max_duplicate_id_fraction": draft.notes.get("max_duplicate_id_fraction"),
        "warn_duplicate_row_fraction": draft.notes.get("duplicate_rows"),
    }
    for key, value in s["checks"].items():
        comment = f"  # {comments[key]}" if comments.get(key) else ""
        out.append(f"  {key}: {_flow(value)}{comment}")
    out.append("features:")
    for name, spec in s["features"].items():
        out.append(f"  # {draft.notes[name]}")
        out.append(f"  {_flow(name)}: {_flow(spec)}")
    if draft.skipped:
        out += [
            "columns:",
            "  # not drafted, so ignored: read and dropped before validation, never features",
            "  ignore:",
        ]
        for name, why in draft.skipped.items():
            out += [f"    # {_flow(name)}: not drafted: {why}", f"    - {_flow(name)}"]
    return "\n".join(out) + "\n"


def infer(
    df: pd.DataFrame,
    label: str,
    time_column: str | None = None,
    id_column: str | None = None,
    source: str = "the data",
    use_tfdv: bool = True,
    python: str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Draft, str]:
    """Draft and render; TFDV's part runs after the cheap refusals (label, columns) passed."""
    draft_schema(df, label, time_column, id_column)  # refuse before the 10 s TFDV start
    tfdv = tfdv_statistics(df, python, log) if use_tfdv else None
    draft = draft_schema(df, label, time_column, id_column, tfdv)
    return draft, render(draft, source)
