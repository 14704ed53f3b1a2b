"""String categories <-> integer codes: the one mapping used by every stage and the server.

A `dtype: string` feature's code is the position of its text in the declared `values` list, so
the mapping is the list itself: it rides inside the model's feature spec (`spec["features"]`).
A text not in the list maps to UNSEEN; each caller decides what that means (a blocking finding,
HTTP 400, re-coding or refusing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

UNSEEN = -1  # the code of a text not in `values` (never a real code: codes start at 0)
# a Dataset of codes names the mapping its codes follow here (DataFrame.attrs: pandas keeps them
# in the Parquet file), so a model trained on another mapping can be re-coded or refused
ATTRS_KEY = "mlpipe_categories"


def is_string(spec: Any) -> bool:
    """`spec` (a FeatureSpec, or its dict in a model's feature spec) is a string feature."""
    dtype = spec.get("dtype") if isinstance(spec, Mapping) else getattr(spec, "dtype", None)
    return dtype == "string"


def _values(spec: Any) -> list[str]:
    values = spec.get("values") if isinstance(spec, Mapping) else spec.values
    return list(values or [])


def mapping(spec: Any) -> dict[str, int]:
    """text -> code for a string feature."""
    return {text: code for code, text in enumerate(_values(spec))}


def encode(series: pd.Series, spec: Any) -> pd.Series:
    """Texts as int64 codes; missing stays missing (float NaN), unknown texts become UNSEEN."""
    codes = mapping(spec)
    present = series.notna()
    out = series.map(lambda v: codes.get(v, UNSEEN) if isinstance(v, str) else UNSEEN)
    if present.all():
        return out.astype("int64")
    return out.where(present).astype("float64")


def unseen(series: pd.Series, spec: Any) -> list[Any]:
    """The distinct present values of `series` that are not declared texts (sorted as text)."""
    known = set(_values(spec))
    present = series.dropna().unique()
    return sorted({v for v in present if not (isinstance(v, str) and v in known)}, key=str)


def decode(codes: Iterable[Any], spec: Any) -> list[str | None]:
    """Codes back to texts (None for UNSEEN or missing)."""
    values = _values(spec)
    out: list[str | None] = []
    for c in codes:
        # pd.isna: None, NaN and pandas' NA (a nullable Int64 column of codes, as a user's
        # Parquet batch may hold) are missing; comparing pd.NA with a number would raise
        ok = not pd.isna(c) and 0 <= c < len(values)
        out.append(values[int(c)] if ok else None)
    return out


def encode_frame(df: pd.DataFrame, features: Mapping[str, Any]) -> pd.DataFrame:
    """`df` with every string feature of `features` (name -> spec) present in it encoded."""
    names = [n for n, s in features.items() if is_string(s) and n in df.columns]
    if not names:
        return df
    df = df.copy()
    for name in names:
        df[name] = encode(df[name], features[name])
    return df


def recode(codes: pd.Series, old: Any, new: Any) -> pd.Series:
    """Codes under spec `new` re-coded for a model trained with spec `old`: the text decides.
    A text `old` does not know becomes UNSEEN."""
    table = {code: mapping(old).get(text, UNSEEN) for text, code in mapping(new).items()}
    present = codes.notna()
    out = codes.map(lambda c: table.get(int(c), UNSEEN) if pd.notna(c) else c)
    return out.astype("int64") if present.all() else out.astype("float64")


def same_mapping(old: Any, new: Any) -> bool:
    """Both specs give every text the same code (appending to `values` keeps old codes)."""
    return _values(old) == _values(new)


def mark(df: pd.DataFrame, features: Mapping[str, Any]) -> pd.DataFrame:
    """`df` (codes) labelled with the mapping of each string feature in it: {name: values}."""
    df = df.copy()
    df.attrs[ATTRS_KEY] = {
        n: _values(s) for n, s in features.items() if is_string(s) and n in df.columns
    }
    return df


def for_model(df: pd.DataFrame, model_features: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows marked by `mark` with each string feature re-coded to the model's own mapping (its
    feature spec). Raises ValueError (one line) when that cannot be done right: the rows carry no
    mapping, or hold a text the model has no code for."""
    marked = df.attrs.get(ATTRS_KEY)
    out = df
    for entry in model_features:
        name = entry["name"]
        if not is_string(entry):
            if marked and name in marked:
                raise ValueError(f"feature {name!r}: the model takes integer codes, the rows texts")
            continue
        if marked is None or name not in marked:
            raise ValueError(f"feature {name!r}: the rows do not say which texts their codes mean")
        rows = {"values": marked[name]}
        if same_mapping(entry, rows):
            continue
        recoded = recode(df[name], entry, rows)
        lost = df[name][(recoded == UNSEEN) & df[name].notna()]
        if len(lost):
            texts = sorted(set(decode(lost.unique(), rows)), key=str)
            raise ValueError(
                f"feature {name!r}: the model has no code for {texts[:3]} "
                f"({len(lost)} rows): its values are {_values(entry)[:8]}"
            )
        if out is df:
            out = df.copy()
        out[name] = recoded
    return out


def as_texts(df: pd.DataFrame) -> pd.DataFrame:
    """Rows marked by `mark` with each string feature's codes back as texts (for display)."""
    marked = df.attrs.get(ATTRS_KEY) or {}
    if not marked:
        return df
    out = df.copy()
    for name, values in marked.items():
        if name in out.columns:
            out[name] = decode(out[name], {"values": values})
    return out


def _text_column(series: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)


def to_texts(df: pd.DataFrame, model_features: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in either form (raw texts, or a request log's codes) with every string feature of the
    model's spec as texts: the form of the training statistics a batch is compared with."""
    out = df
    for entry in model_features:
        name = entry["name"]
        if is_string(entry) and name in df.columns and not _text_column(df[name]):
            out = out.copy() if out is df else out
            out[name] = pd.Series(decode(df[name], entry), index=df.index, dtype=object)
    return out


def to_codes(df: pd.DataFrame, model_features: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in either form with every string feature of the model's spec as its codes: what the
    model scores (an undeclared text becomes UNSEEN)."""
    out = df
    for entry in model_features:
        name = entry["name"]
        if is_string(entry) and name in df.columns and _text_column(df[name]):
            out = out.copy() if out is df else out
            out[name] = encode(df[name], entry)
    return out
