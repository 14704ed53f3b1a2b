"""A shifted batch for drift rehearsals (`mlpipe simulate --shift`, tests): real rows resampled
so that distributions change while every value stays inside the schema's domains — drift, not
bad data. Year-over-year drift in the bundled data is tiny (AGEP JSD ~0.0001), so demos need this.

- age: rows are drawn with weights growing with AGEP (towards older people);
- category proportions: one category's shares are tilted (default: MAR, towards code 1).
Ids are renumbered above the source's so the batch never repeats an id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def shift_batch(
    df: pd.DataFrame,
    strength: float = 0.5,
    tilt_feature: str = "MAR",
    tilt_code: int = 1,
    id_column: str | None = "id",
    id_start: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The same number of rows, resampled with replacement towards older people and towards
    `tilt_feature == tilt_code`. `strength` 0 keeps the distribution (up to resampling)."""
    rng = np.random.default_rng(seed)
    age = df["AGEP"].to_numpy(dtype=float)
    weights = np.exp(strength * (age - age.mean()) / 12.0)
    if tilt_feature in df.columns:
        weights = weights * np.where(df[tilt_feature].to_numpy() == tilt_code, 1 + strength, 1.0)
    weights = weights / weights.sum()
    picked = rng.choice(len(df), size=len(df), replace=True, p=weights)
    out = df.iloc[picked].reset_index(drop=True)
    if id_column and id_column in out.columns:
        start = int(df[id_column].max()) + 1 if id_start is None else id_start
        out[id_column] = np.arange(start, start + len(out), dtype=df[id_column].dtype)
    return out


def flip_labels(df: pd.DataFrame, label: str, share: float, seed: int = 0) -> pd.DataFrame:
    """A label shift: `share` of the rows get the other label (features untouched)."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    flip = rng.random(len(out)) < share
    out.loc[flip, label] = 1 - out.loc[flip, label]
    return out
