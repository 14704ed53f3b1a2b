"""benchmarks/scale.py's 10x data: unique ids, other people rather than copies, the label
relationship kept."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.scale import BLOCKS, BUNDLED, STRATUM, scaled
from components.common.config import load_settings
from components.validate.checks import Contract, duplicate_row_share

FACTOR = 3


@pytest.fixture(scope="module")
def original() -> pd.DataFrame:
    df = pd.read_parquet(BUNDLED)
    return df[df["year"] == 2015].reset_index(drop=True)  # one year: ~69k rows, fast


@pytest.fixture(scope="module")
def big(original) -> pd.DataFrame:
    return scaled(original, FACTOR, seed=0)


def _copy(big: pd.DataFrame, n: int, k: int) -> pd.DataFrame:
    return big.iloc[k * n : (k + 1) * n].reset_index(drop=True)


def test_copies_have_unique_ids_and_copy_zero_is_the_original(original, big):
    assert len(big) == FACTOR * len(original)
    assert big["id"].is_unique
    pd.testing.assert_frame_equal(_copy(big, len(original), 0), original)


def test_copies_are_far_fewer_duplicates_than_exact_copies(original, big):
    """Exact copies repeat ~80 % of rows at 3x (2015 alone: ~40 %)."""
    contract = Contract.from_dict(load_settings().schema_.model_dump(mode="json"))
    exact = pd.concat([original] * FACTOR, ignore_index=True)
    natural = duplicate_row_share(original, contract)
    assert duplicate_row_share(exact, contract) > 0.75
    assert duplicate_row_share(big, contract) < natural + 0.12


def test_each_copy_keeps_labels_strata_and_each_blocks_mix(original, big):
    """Labels and strata are untouched, each block keeps its mix within each stratum (so its
    link to the label), AGEP moves by at most one year within the data's range."""
    strata = original[STRATUM].assign(decade=original["AGEP"] // 10)
    for k in range(1, FACTOR):
        copy = _copy(big, len(original), k)
        assert copy["employed"].equals(original["employed"])
        for block in BLOCKS:
            want = pd.concat([strata, original[block]], axis=1).value_counts().sort_index()
            got = pd.concat([strata, copy[block]], axis=1).value_counts().sort_index()
            pd.testing.assert_series_equal(got, want)
        step = (copy["AGEP"] - original["AGEP"]).abs()
        assert step.max() == 1 and step.mean() > 0.5
        assert copy["AGEP"].between(original["AGEP"].min(), original["AGEP"].max()).all()


def test_a_copy_is_other_people_not_near_copies(original, big):
    """Each block comes from another person: a synthetic row seldom keeps the answers of the row
    it started from (a near-copy would keep all of them)."""
    answers = [c for block in BLOCKS for c in block]
    for k in range(1, FACTOR):
        copy = _copy(big, len(original), k)
        kept = (copy[answers] == original[answers]).all(axis=1).mean()
        assert kept < 0.1, kept
        for block in BLOCKS:
            assert (copy[block] != original[block]).any(axis=1).mean() > 0.2, block
