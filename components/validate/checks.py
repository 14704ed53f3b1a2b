"""The project's own data checks: what TFDV cannot express, on plain pandas.

TFDV checks types, presence and an int range per feature; it cannot check an exact set of codes
(ANC's codes 1, 2, 3, 4, 8 leave a hole at 5-7), unique ids, the label's positive rate, non-finite
values or a renamed column. These checks run on the DataFrame before TFDV does, in the tfdv
environment (pandas 1.5) as well as the main one (pandas 2), so only APIs both versions share.

A finding is a plain dict: {window, feature, check, kind, description, source}. `window` is
"dataset" (the whole Dataset), "train" or "test"; `feature` is None for a finding about the whole
table; `kind` is "blocking" or "drift" (README "Two kinds of data checks"). The description
leaves the window out: the message that names the window is built from the parts.
"""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.common import categories, timekeys
from components.common.config import (
    ColumnsSpec,
    DataSchema,
    FeatureSpec,
    LabelSpec,
    SchemaChecks,
    TimeSpec,
)
from components.common.errors import DataError
from components.common.splitting import split

BLOCKING = "blocking"
DRIFT = "drift"
DATASET = "dataset"
MAX_EXAMPLES = 3
HASH_CHUNK_ROWS = 200_000  # rows hashed at a time by duplicate_row_share


def finding(
    window: str,
    feature: str | None,
    check: str,
    description: str,
    kind: str = BLOCKING,
    source: str = "project",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "window": window,
        "feature": feature,
        "check": check,
        "kind": kind,
        "description": description,
        "source": source,
        **extra,
    }


@dataclass(frozen=True)
class Contract:
    """What the checks need from the data schema; `features` is None when none was given."""

    id_column: str | None = None
    time_column: str | None = None
    label: LabelSpec | None = None
    checks: SchemaChecks = field(default_factory=SchemaChecks)
    features: dict[str, FeatureSpec] | None = None
    ignore: tuple[str, ...] = ()  # columns.ignore: dropped before any check (`usable`)
    time: dict[str, Any] = field(default_factory=dict)  # the schema's `time` block (timekeys)

    @classmethod
    def from_dict(cls, data_schema: dict[str, Any] | None) -> Contract:
        """A full data schema (with `features`) is validated by the config model; without
        `features` only id/time/label/checks are read and the TFDV schema is inferred."""
        data_schema = dict(data_schema or {})
        if data_schema.get("features"):
            schema = DataSchema.model_validate(data_schema)
            return cls(
                schema.id_column,
                schema.time_column,
                schema.label,
                schema.checks,
                dict(schema.features),
                tuple(schema.columns.ignore),
                schema.time.model_dump(),
            )
        label = data_schema.get("label")
        return cls(
            id_column=data_schema.get("id_column"),
            time_column=data_schema.get("time_column"),
            label=LabelSpec.model_validate(label) if label else None,
            checks=SchemaChecks.model_validate(data_schema.get("checks") or {}),
            ignore=tuple(ColumnsSpec.model_validate(data_schema.get("columns") or {}).ignore),
            time=TimeSpec.model_validate(data_schema.get("time") or {}).model_dump(),
        )

    @property
    def declared(self) -> bool:
        return self.features is not None

    @property
    def label_name(self) -> str | None:
        return self.label.name if self.label else None

    @property
    def required_columns(self) -> list[str]:
        cols = [c for c in (self.id_column, self.time_column) if c]
        cols += list(self.features or {})
        if self.label:
            cols.append(self.label.name)
        return list(dict.fromkeys(cols))

    def usable(self, df: pd.DataFrame) -> pd.DataFrame:
        """`df` without the columns the schema ignores: no check, statistic, window or feature
        ever sees them (a column neither declared nor ignored stays an unexpected column)."""
        dropped = [c for c in df.columns if str(c) in self.ignore]
        return df.drop(columns=dropped) if dropped else df

    def max_missing(self, column: str) -> float:
        spec = (self.features or {}).get(column)
        if spec is not None and spec.max_missing_fraction is not None:
            return spec.max_missing_fraction
        return self.checks.max_missing_fraction

    def positive_value(self) -> int:
        """The label value counted as positive: the last declared one (1 for [0, 1])."""
        assert self.label is not None
        return self.label.values[-1]


# ---------------------------------------------------------------- formatting helpers


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def percent(fraction: float) -> str:
    """0.0123 as '1.2%'; three decimals below 0.1% so a small share never reads as 0.0%."""
    if fraction == 0:
        return "0%"
    return f"{fraction:.1%}" if fraction >= 0.001 else f"{fraction:.3%}"


def _num(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def value_examples(values: Any) -> str:
    """Up to MAX_EXAMPLES distinct values, sorted where possible, as '3' or '-1, 150, ...'."""
    uniques = list(pd.unique(pd.Series(values)))
    with contextlib.suppress(TypeError):
        uniques.sort()
    shown = ", ".join(
        _num(v) if not isinstance(v, str) else repr(v) for v in uniques[:MAX_EXAMPLES]
    )
    return shown + (", ..." if len(uniques) > MAX_EXAMPLES else "")


def format_codes(codes: list[int]) -> str:
    """[1, 2] / [1, 2, 3, 4, 8] / [0..24] for a long contiguous range."""
    codes = sorted(codes)
    if len(codes) > 6 and codes == list(range(codes[0], codes[-1] + 1)):
        return f"[{codes[0]}..{codes[-1]}]"
    if len(codes) > 12:
        return "[" + ", ".join(map(str, codes[:10])) + ", ...]"
    return "[" + ", ".join(map(str, codes)) + "]"


def _kind_of(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "true/false values"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "dates"
    if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
        return "text"
    return f"{series.dtype} values"


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def as_float(series: pd.Series) -> np.ndarray:
    """Numeric values as float64 with NaN for missing (numpy and nullable dtypes alike)."""
    return series.to_numpy(dtype="float64", na_value=np.nan)


# ---------------------------------------------------------------- dataset-level checks


def dataset_checks(df: pd.DataFrame, contract: Contract) -> list[dict[str, Any]]:
    """Checks on the whole Dataset: rows, columns, column types, duplicate ids.

    Returns early (with the one finding) when the Dataset has no rows or no columns.
    """
    if len(df) == 0 or len(df.columns) == 0:
        what = "0 rows" if len(df.columns) else "no columns"
        return [finding(DATASET, None, "empty", f"the dataset has {what}")]
    out: list[dict[str, Any]] = []
    columns = [str(c) for c in df.columns]
    required = contract.required_columns
    missing = [c for c in required if c not in columns]
    extra = [c for c in columns if c not in required] if contract.declared else []
    for col in missing:
        hint = _renamed_to(col, extra)
        out.append(
            finding(
                DATASET,
                col,
                "missing_column",
                "column is missing" + (f" (renamed to {hint!r}?)" if hint else ""),
            )
        )
    for col in extra:
        out.append(finding(DATASET, col, "unexpected_column", "not declared in the data schema"))
    for col in _typed_columns(contract):
        if col in columns and _wrong_type(df[col], contract):
            out.append(_type_finding(df[col], col, _declared_dtype(contract, col)))
    if contract.time_column in columns and timekeys.is_timestamp(contract.time):
        out.extend(_unparseable_times(df[contract.time_column], contract))
    if contract.time_column in columns:
        n = int(df[contract.time_column].isna().sum())
        if n:
            out.append(
                finding(
                    DATASET,
                    contract.time_column,
                    "missing_values",
                    f"{_plural(n, 'row')} without a value: they belong to no window",
                )
            )
    if contract.id_column in columns:
        out.extend(_duplicate_ids(df[contract.id_column], contract))
    out.extend(_duplicate_rows(df, contract))
    return out


def _renamed_to(column: str, candidates: list[str]) -> str | None:
    lowered = {c.lower(): c for c in candidates}
    if column.lower() in lowered:
        return lowered[column.lower()]
    close = difflib.get_close_matches(column, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def _typed_columns(contract: Contract) -> list[str]:
    cols = list(contract.features or {})
    if contract.label:
        cols.append(contract.label.name)
    if contract.time_column and not timekeys.is_timestamp(contract.time):
        cols.append(contract.time_column)  # a timestamp one: `_unparseable_times` checks it
    return cols


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)


def _wrong_type(series: pd.Series, contract: Contract) -> bool:
    """A string feature must hold text, every other typed column numbers."""
    if _declared_dtype(contract, str(series.name)) == "string":
        return not _is_text(series) or not all(isinstance(v, str) for v in series.dropna())
    return not is_numeric(series)


def _declared_dtype(contract: Contract, column: str) -> str:
    spec = (contract.features or {}).get(column)
    return spec.dtype if spec is not None else "int"


def _type_finding(series: pd.Series, column: str, dtype: str) -> dict[str, Any]:
    kind = _kind_of(series)
    non_null = series.dropna()
    if kind == "text" and dtype != "string":
        as_num = pd.to_numeric(non_null.astype(str), errors="coerce")
        bad = non_null[as_num.isna().to_numpy()]
        if len(bad):
            shown = value_examples(bad.astype(str))
            detail = f"{_plural(len(bad), 'non-numeric value')} (e.g. {shown})"
        else:
            shown = value_examples(non_null.astype(str).head(50))
            detail = f"numbers stored as text (e.g. {shown})"
        description = f"expected {dtype} values, found text: {detail}"
    else:
        description = f"expected {dtype} values, found {kind}"
    if dtype == "string" and kind == "text":  # text mixed with numbers or other objects
        bad = non_null[[not isinstance(v, str) for v in non_null]]
        description = f"expected string values, found {_plural(len(bad), 'non-text value')} "
        description += f"(e.g. {value_examples(bad.astype(str))})"
    return finding(DATASET, column, "wrong_type", description)


def _duplicate_ids(ids: pd.Series, contract: Contract) -> list[dict[str, Any]]:
    dup = ids[ids.duplicated(keep="first") & ids.notna()]
    fraction = len(dup) / len(ids)
    if len(dup) == 0 or fraction <= contract.checks.max_duplicate_id_fraction:
        return []
    allowed = percent(contract.checks.max_duplicate_id_fraction)
    return [
        finding(
            DATASET,
            str(ids.name),
            "duplicate_ids",
            f"{_plural(len(dup), 'duplicate id')} ({percent(fraction)}, at most {allowed} allowed; "
            f"e.g. {value_examples(dup)})",
        )
    ]


def duplicate_row_share(
    df: pd.DataFrame, contract: Contract, chunk_rows: int = HASH_CHUNK_ROWS
) -> float:
    """The share of rows repeating an earlier row's features and label (the declared features,
    else every column but the id and the time column)."""
    if len(df) == 0:
        return 0.0
    skip = {contract.id_column, contract.time_column}
    if contract.features is not None:
        cols = [c for c in contract.features if c in df.columns]
    else:
        cols = [c for c in df.columns if c not in skip and c != contract.label_name]
    if contract.label_name in df.columns:
        cols.append(contract.label_name)
    if not cols:
        return 0.0
    # one 8-byte hash per row, computed a slice at a time: the transient copy of the columns
    # stays one slice, not the whole table (10x the bundled data: 2.8 M rows)
    hashed = np.concatenate(
        [
            pd.util.hash_pandas_object(
                df.iloc[start : start + chunk_rows][cols], index=False
            ).to_numpy()
            for start in range(0, len(df), chunk_rows)
        ]
    )
    return float(pd.Series(hashed).duplicated().mean())


def _duplicate_rows(df: pd.DataFrame, contract: Contract) -> list[dict[str, Any]]:
    share = duplicate_row_share(df, contract)
    warn = contract.checks.warn_duplicate_row_fraction
    limit = contract.checks.max_duplicate_row_fraction
    if share <= min(warn, limit):
        return []
    blocking = share > limit
    bound = f"at most {percent(limit)} allowed" if blocking else f"reported above {percent(warn)}"
    return [
        finding(
            DATASET,
            None,
            "duplicate_rows",
            f"{percent(share)} of rows repeat an earlier row's features and label ({bound}): "
            "copied data? Exact copies leak across cross-validation folds",
            kind=BLOCKING if blocking else DRIFT,
            share=round(share, 4),
        )
    ]


# ---------------------------------------------------------------- per-window checks


def window_checks(
    df: pd.DataFrame, window: str, contract: Contract, skip: set[str] = frozenset()
) -> list[dict[str, Any]]:
    """Checks on one window (train or test): rows, missing values, domains, the label.

    `skip` names columns already reported with a wrong type (their values are not numbers).
    """
    out: list[dict[str, Any]] = []
    min_rows = contract.checks.min_rows
    if len(df) < min_rows:
        out.append(
            finding(
                window,
                None,
                "min_rows",
                f"only {_plural(len(df), 'row')}, fewer than min_rows {min_rows}",
            )
        )
    if len(df) == 0:
        return out
    for name, spec in (contract.features or {}).items():
        if name in df.columns and name not in skip:
            out.extend(_feature_checks(df[name], window, spec, contract.max_missing(name)))
    label = contract.label
    if label and label.name in df.columns and label.name not in skip:
        out.extend(_label_checks(df[label.name], window, contract))
    if contract.id_column in df.columns and contract.declared:
        out.extend(
            _missing(df[contract.id_column], window, contract.max_missing(contract.id_column))
        )
    return out


def _missing(series: pd.Series, window: str, allowed: float) -> list[dict[str, Any]]:
    n = int(series.isna().sum())
    if n == 0 or n / len(series) <= allowed:
        return []
    return [
        finding(
            window,
            str(series.name),
            "missing_values",
            f"{_plural(n, 'missing value')} ({percent(n / len(series))}, "
            f"at most {percent(allowed)} allowed)",
        )
    ]


def _feature_checks(
    series: pd.Series, window: str, spec: FeatureSpec, allowed_missing: float
) -> list[dict[str, Any]]:
    name = str(series.name)
    out = _missing(series, window, allowed_missing)
    if spec.dtype == "string":
        unseen = categories.unseen(series, spec)
        if unseen:
            n = int((~series.isin(spec.values or []) & series.notna()).sum())
            out.append(
                finding(
                    window,
                    name,
                    "unseen_value",
                    f"{_plural(n, 'value')} not in the declared values: {value_examples(unseen)}",
                )
            )
        return out
    values = as_float(series)
    present = values[~np.isnan(values)]
    infinite = present[np.isinf(present)]
    if len(infinite):
        out.append(
            finding(
                window,
                name,
                "not_finite",
                f"{_plural(len(infinite), 'infinite value')} ({value_examples(infinite)})",
            )
        )
    finite = present[np.isfinite(present)]
    if spec.dtype == "int" or spec.kind == "categorical":
        fractional = finite[finite != np.floor(finite)]
        if len(fractional):
            out.append(
                finding(
                    window,
                    name,
                    "not_integer",
                    f"{_plural(len(fractional), 'non-integer value')} in an int column "
                    f"(e.g. {value_examples(fractional)})",
                )
            )
    if spec.kind == "categorical":
        codes = spec.codes()
        whole = finite[finite == np.floor(finite)]  # a fraction is already a finding
        outside = whole[~np.isin(whole, codes)]
        if len(outside):
            out.append(
                finding(
                    window,
                    name,
                    "unseen_code",
                    f"{_plural(len(outside), 'value')} outside the domain {format_codes(codes)} "
                    f"({value_examples(outside)})",
                )
            )
    else:
        lo = -np.inf if spec.min is None else spec.min
        hi = np.inf if spec.max is None else spec.max
        outside = finite[(finite < lo) | (finite > hi)]
        if len(outside):
            out.append(
                finding(
                    window,
                    name,
                    "out_of_range",
                    f"{_plural(len(outside), 'value')} outside the range "
                    f"[{_num(spec.min) if spec.min is not None else '-inf'}, "
                    f"{_num(spec.max) if spec.max is not None else 'inf'}] "
                    f"({value_examples(outside)})",
                )
            )
    return out


def _label_checks(series: pd.Series, window: str, contract: Contract) -> list[dict[str, Any]]:
    label = contract.label
    assert label is not None
    name = label.name
    out = _missing(series, window, contract.max_missing(name))
    values = as_float(series)
    present = values[~np.isnan(values)]
    outside = present[~np.isin(present, label.values)]
    if len(outside):
        out.append(
            finding(
                window,
                name,
                "label_values",
                f"{_plural(len(outside), 'value')} outside {format_codes(label.values)} "
                f"({value_examples(outside)})",
            )
        )
    if len(present):
        rate = float(np.mean(present == contract.positive_value()))
        lo, hi = label.min_positive_rate, label.max_positive_rate
        if not lo <= rate <= hi:
            out.append(
                finding(
                    window,
                    name,
                    "positive_rate",
                    f"positive rate {rate:.3f} outside [{lo:g}, {hi:g}]",
                )
            )
    return out


# ---------------------------------------------------------------- all of them


def _unparseable_times(values: pd.Series, contract: Contract) -> list[dict[str, Any]]:
    """Time values the schema's `time` block cannot read: they would silently leave every
    window, so they block."""
    n, example = timekeys.unparseable(values, contract.time)
    if not n:
        return []
    kind = timekeys.spec(contract.time)["kind"]
    return [
        finding(
            DATASET,
            contract.time_column,
            "unparseable_time",
            f"{_plural(n, 'value')} not readable as time.kind {kind}, e.g. {example!r}",
        )
    ]


def split_windows(
    df: pd.DataFrame, contract: Contract, split_cfg: dict[str, Any], reported: set[str]
) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """{"train": ..., "test": ...} by components.common.splitting (the rows features will use),
    or no windows and a finding when the split is impossible. `reported` names columns already
    found missing or mistyped (no second finding for them)."""
    method = split_cfg.get("method", "time")
    key = contract.time_column if method == "time" else contract.label_name
    if key in reported:
        return {}, []
    if key is None or key not in df.columns:
        what = "a time column" if method == "time" else "the label"
        return {}, [finding(DATASET, key, "split", f"a {method} split needs {what}")]
    try:
        train, test = split(
            df,
            split_cfg,
            contract.label_name or "",
            contract.time_column,
            "validate",
            contract.time,
        )
    except DataError as exc:
        return {}, [finding(DATASET, exc.subject, "empty_window", str(exc))]
    return {"train": train, "test": test}, []


def project_findings(
    df: pd.DataFrame, contract: Contract, split_cfg: dict[str, Any]
) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """Every project check: the Dataset's, then each window's. Returns (windows, findings)."""
    out = dataset_checks(df, contract)
    if any(f["check"] == "empty" for f in out):
        return {}, out
    reported = {f["feature"] for f in out if f["check"] in ("missing_column", "wrong_type")}
    windows, split_findings = split_windows(df, contract, split_cfg, reported)
    out += split_findings
    skip = {c for c in df.columns if c in _typed_columns(contract) and _wrong_type(df[c], contract)}
    for name, part in windows.items():
        out += window_checks(part, name, contract, skip)
    out += constant_findings(df, windows, contract)
    return windows, assign_roles(out, contract)


def _features(df: pd.DataFrame, contract: Contract) -> list[str]:
    """The declared features present in `df`, else every column but id, time and label."""
    if contract.features is not None:
        return [c for c in contract.features if c in df.columns]
    skip = {contract.id_column, contract.time_column, contract.label_name}
    return [str(c) for c in df.columns if c not in skip]


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (the finding goes to JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def constant_findings(
    df: pd.DataFrame, windows: dict[str, pd.DataFrame], contract: Contract
) -> list[dict[str, Any]]:
    """A feature with one value in the whole Dataset, or in one window only: it cannot inform
    the model (or the window is a broken extract). Reported, never blocking: a legitimately
    rare value can make a small window constant. A column with no value at all is left to the
    missing-values check."""
    out: list[dict[str, Any]] = []

    def constant(where: str, name: str, check: str, message: str, value: Any) -> None:
        out.append(
            finding(
                where, name, check, f"one value ({_num(value)}) {message}", kind=DRIFT, value=value
            )
        )

    for name in _features(df, contract):
        values = df[name].dropna().unique()
        if len(values) == 1:
            constant(
                DATASET,
                name,
                "constant",
                "in every row: it cannot inform the model",
                _plain(values[0]),
            )
            continue
        for window, part in windows.items():
            if name not in part.columns:
                continue
            in_window = part[name].dropna().unique()
            if len(in_window) == 1:
                constant(
                    window,
                    name,
                    "constant_in_window",
                    "in every row of this window only, "
                    f"{_plural(len(values), 'distinct value')} in the dataset",
                    _plain(in_window[0]),
                )
    return out


def assign_roles(findings: list[dict[str, Any]], contract: Contract) -> list[dict[str, Any]]:
    """Set each finding's `role`: feature, label, id, time, column (undeclared) or None."""
    roles = {name: "feature" for name in contract.features or {}}
    for name, role in (
        (contract.id_column, "id"),
        (contract.time_column, "time"),
        (contract.label_name, "label"),
    ):
        if name:
            roles[name] = role
    for f in findings:
        f["role"] = roles.get(f["feature"], "column") if f["feature"] else None
    return findings


def mark_corroborating(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark each blocking TFDV finding on a column a blocking project finding already names
    (the whole table for a finding without a column) with `corroborates`: the project checks it
    repeats. The project's check decides severity and the message; a corroborating finding is
    shown beside it and never counted again. A TFDV finding no project check made stays a
    blocking finding of its own."""
    project: dict[str | None, list[str]] = {}
    for f in findings:
        if f["kind"] == BLOCKING and f.get("source") != "tfdv":
            project.setdefault(f["feature"], []).append(f["check"])
    for f in findings:
        if f["kind"] == BLOCKING and f.get("source") == "tfdv" and f["feature"] in project:
            f["corroborates"] = list(dict.fromkeys(project[f["feature"]]))
    return findings


def counted_blocking(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocking findings that decide and count: all but the corroborating ones."""
    return [f for f in findings if f["kind"] == BLOCKING and not f.get("corroborates")]
