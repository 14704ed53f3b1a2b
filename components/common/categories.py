"""String categories <-> integer codes: the one mapping used by every stage and the server.

A `dtype: string` feature's code is the position of its text in the declared `values` list, so
the mapping is the list itself: it rides inside the model's feature spec (`spec["features"]`).
A text not in the list maps to UNSEEN; each caller decides what that means (a blocking finding,
HTTP 400, re-coding or refusing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

UNSEEN = -1  # the code of a text not in `values` (never a real code: codes start at 0)


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
        ok = c is not None and not (isinstance(c, float) and np.isnan(c)) and 0 <= c < len(values)
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
