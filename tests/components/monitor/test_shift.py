"""Unit tests of components/monitor/shift.py: the shifted batch for drift rehearsals (resampled
towards older people and one category, inside the schema's domains, new ids) and label flips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.monitor import shift


def test_the_shifted_batch_stays_inside_the_declared_domains(full_data, schema):
    y = full_data[full_data.year == 2017].sample(5000, random_state=0)
    out = shift.shift_batch(y, seed=3)
    assert len(out) == len(y) and out["id"].is_unique and out["id"].min() > y["id"].max()
    assert out["AGEP"].mean() > y["AGEP"].mean() + 5
    for name, spec in schema.features.items():
        if spec.kind == "categorical":
            assert set(out[name].unique()) <= set(spec.codes()), name
        else:
            assert out[name].between(spec.min, spec.max).all(), name


def test_flipping_labels_changes_only_the_label(full_data):
    y = full_data[full_data.year == 2017].head(2000)
    out = shift.flip_labels(y, "employed", 0.3, seed=0)
    changed = (out["employed"] != y["employed"]).mean()
    assert 0.25 < changed < 0.35
    pd.testing.assert_frame_equal(out.drop(columns="employed"), y.drop(columns="employed"))


def people(n: int = 400) -> pd.DataFrame:
    """`n` rows: ages 0..99 evenly, MAR codes 1..5 evenly, ids from 1000, a 0/1 label."""
    i = np.arange(n)
    return pd.DataFrame(
        {"id": 1000 + i, "AGEP": i % 100, "MAR": 1 + i % 5, "employed": i % 2},
        index=pd.RangeIndex(50, 50 + n),
    )


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    df = people()
    pd.testing.assert_frame_equal(shift.shift_batch(df, seed=4), shift.shift_batch(df, seed=4))
    assert not shift.shift_batch(df, seed=4).equals(shift.shift_batch(df, seed=5))


def test_strength_moves_ages_and_tilts_the_category_and_zero_keeps_them():
    df = pd.concat([people()] * 10, ignore_index=True)  # 4,000 rows: stable means
    older = shift.shift_batch(df, strength=1.0, seed=0)
    younger = shift.shift_batch(df, strength=-1.0, tilt_feature="none", seed=0)
    kept = shift.shift_batch(df, strength=0.0, seed=0)
    base_age, base_share = df["AGEP"].mean(), (df["MAR"] == 1).mean()
    assert older["AGEP"].mean() > base_age + 10 and younger["AGEP"].mean() < base_age - 10
    assert abs(kept["AGEP"].mean() - base_age) < 2
    assert abs((kept["MAR"] == 1).mean() - base_share) < 0.03
    tilted = shift.shift_batch(df, strength=1.0, tilt_feature="MAR", tilt_code=3, seed=0)
    assert (tilted["MAR"] == 3).mean() > base_share + 0.05  # code 3: 20 % before


def test_rows_are_whole_source_rows_and_the_input_is_left_alone():
    df = people()
    before = df.copy()
    out = shift.shift_batch(df, id_column=None, seed=2)
    assert list(out.columns) == list(df.columns) and len(out) == len(df)
    assert out.index.equals(pd.RangeIndex(len(df)))
    # every row is a source row (ids kept: id_column None), drawn with replacement
    source = set(map(tuple, df.to_numpy()))
    assert set(map(tuple, out.to_numpy())) <= source and not out["id"].is_unique
    pd.testing.assert_frame_equal(df, before)


def test_ids_start_where_told_keep_their_dtype_and_a_frame_without_ids_is_fine():
    df = people().astype({"id": "int32"})
    out = shift.shift_batch(df, id_start=7, seed=1)
    assert out["id"].tolist() == list(range(7, 7 + len(df))) and out["id"].dtype == "int32"
    assert shift.shift_batch(df, seed=1)["id"].min() == df["id"].max() + 1
    no_ids = shift.shift_batch(df.drop(columns="id"), seed=1)
    assert "id" not in no_ids.columns and len(no_ids) == len(df)


def test_a_batch_without_ages_is_refused():
    with pytest.raises(KeyError, match="AGEP"):
        shift.shift_batch(people().drop(columns="AGEP"))


def test_flipping_none_or_all_labels_and_the_input_is_left_alone():
    df = people(200)
    before = df.copy()
    pd.testing.assert_frame_equal(shift.flip_labels(df, "employed", 0.0), df)
    flipped = shift.flip_labels(df, "employed", 1.0)
    assert (flipped["employed"] == 1 - df["employed"]).all()
    assert flipped.index.equals(df.index)
    assert shift.flip_labels(df, "employed", 0.5, seed=3).equals(
        shift.flip_labels(df, "employed", 0.5, seed=3)
    )
    pd.testing.assert_frame_equal(df, before)
    with pytest.raises(KeyError):
        shift.flip_labels(df, "nope", 0.5)
