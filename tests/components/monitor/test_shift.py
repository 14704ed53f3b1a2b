"""Unit tests of components/monitor/shift.py: the shifted batch for drift rehearsals (resampled
towards older people and one category, inside the schema's domains, new ids) and label flips."""

from __future__ import annotations

import pandas as pd

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
