"""The TFDV helpers the validate and monitor jobs share: the copy of a frame TFDV can read, and
the JSON summary of its statistics. `for_tfdv` is plain pandas (checked here directly); the
summary is checked on statistics real TFDV computed, in one tfdv-env process."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from components.common.tfdv_env import job_environment
from components.common.tfdv_stats import for_tfdv
from tests.conftest import TFDV_PYTHON, needs_tfdv

# the frame the job summarizes: 10 rows; a numeric column with a missing value, a text column
# with one, a pandas categorical, a datetime, and an object column mixing numbers and text
RUNNER = """\
import json, sys
import numpy as np, pandas as pd
from components.common.tfdv_stats import for_tfdv, import_tfdv, summarize_stats

tfdv = import_tfdv()
df = pd.DataFrame({
    "age": [20.0, 30.0, 40.0, 50.0, np.nan, 20.0, 30.0, 40.0, 50.0, 60.0],
    "job": ["a", "b", "a", None, "a", "b", "a", "c", "a", "b"],
    "state": pd.Categorical(["x", "y"] * 5),
    "when": pd.date_range("2020-01-01", periods=10, freq="D"),
    "mixed": ["1", 2, "three", 4.5, None, "1", 2, "1", 2, "1"],
})
out = {"summary": summarize_stats(tfdv.generate_statistics_from_dataframe(for_tfdv(df)))}
try:  # what the copy is for: TFDV on the frame as it is
    tfdv.generate_statistics_from_dataframe(df)
    out["raw"] = "accepted"
except Exception as exc:
    out["raw"] = type(exc).__name__
print(json.dumps(out))
"""


def test_categorical_and_datetime_columns_become_objects():
    df = pd.DataFrame(
        {
            "state": pd.Categorical(["x", "y", "x"]),
            "when": pd.to_datetime(["2020-01-01", "2020-01-02", None]),
            "n": [1, 2, 3],
        }
    )
    out = for_tfdv(df)
    assert out["state"].dtype == object and out["state"].tolist() == ["x", "y", "x"]
    assert out["when"].dtype == object
    assert out["n"].dtype == np.int64
    assert df["state"].dtype == "category"  # the caller's frame is untouched


def test_numbers_among_texts_become_texts_and_missing_stays_missing():
    df = pd.DataFrame({"mixed": ["a", 1, 2.5, None, np.nan], "text": ["a", "b", None, "c", "d"]})
    out = for_tfdv(df)
    assert out["mixed"].tolist()[:3] == ["a", "1", "2.5"]
    assert out["mixed"][3] is None and out["mixed"][4] != out["mixed"][4]  # None, NaN
    assert out["text"].tolist() == ["a", "b", None, "c", "d"]


def test_column_names_become_strings():
    assert list(for_tfdv(pd.DataFrame({1: [1.0], "b": [2.0]})).columns) == ["1", "b"]


@pytest.fixture(scope="module")
def computed() -> dict:
    with job_environment() as env:
        proc = subprocess.run(
            [str(TFDV_PYTHON), "-c", RUNNER], env=env, capture_output=True, text=True, check=False
        )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.tfdv
@needs_tfdv()
def test_tfdv_refuses_the_raw_frame_the_copy_is_for(computed):
    assert computed["raw"] != "accepted"


@pytest.mark.tfdv
@needs_tfdv()
def test_a_numeric_summary_has_counts_moments_and_a_histogram(computed):
    summary = computed["summary"]
    assert summary["rows"] == 10
    assert set(summary["features"]) == {"age", "job", "state", "when", "mixed"}
    age = summary["features"]["age"]
    assert (age["kind"], age["type"]) == ("numeric", "FLOAT")
    assert (age["count"], age["missing"], age["min"], age["max"]) == (9, 1, 20.0, 60.0)
    assert age["mean"] == pytest.approx(340 / 9)
    # bucket counts are kept to 2 decimals (TFDV spreads a value over the buckets it touches)
    assert sum(bucket[2] for bucket in age["histogram"]) == pytest.approx(9, abs=0.1)
    assert age["histogram"][0][0] == 20.0 and age["histogram"][-1][1] == 60.0


@pytest.mark.tfdv
@needs_tfdv()
def test_a_categorical_summary_has_its_values_by_frequency(computed):
    features = computed["summary"]["features"]
    job = features["job"]
    assert (job["kind"], job["count"], job["missing"], job["unique"]) == ("categorical", 9, 1, 3)
    assert job["top_values"] == [["a", 5], ["b", 3], ["c", 1]]
    assert dict(features["state"]["top_values"]) == {"x": 5, "y": 5}
    assert features["mixed"]["kind"] == "categorical"
    assert dict(features["mixed"]["top_values"]) == {"1": 4, "2": 3, "three": 1, "4.5": 1}
    json.dumps(computed["summary"])  # JSON-able as it is written
