"""Monitor drift against TFDV's own comparators and scipy, on the same two windows.

The monitor measures drift in the main environment from statistics summaries (the reference is
validate's train_stats.json, the batch's comes from the monitor's TFDV job). Here the same windows
go through TFDV itself: validate's job runs `tfdv.validate_statistics` with the schema's drift
comparators (L-infinity for categorical features, Jensen-Shannon for AGEP) on train against test,
and the monitor's stats job summarizes the test window as a batch. One tfdv-env process does both.

Tolerances, and why they differ:
- project vs TFDV: the same buckets go through the same rebinning (the union of both windows'
  bucket edges, mass spread uniformly within a bucket), so only the summaries' rounding (6
  significant digits) separates them: 1e-4 absolute.
- project vs scipy on the raw values: value shares are exact counts, so L-infinity agrees to
  1e-6. Jensen-Shannon depends on binning: TFDV keeps 10 equal-width buckets per window, over
  each window's own range, and assumes uniform mass within a bucket; scipy here sees every age
  (an integer 0..99) as its own bin. Merging bins can only lower the divergence (it is a
  convexity bound), so TFDV's value sits below scipy's, never above it by more than rounding:
  within 10 % or 0.005, whichever is larger (shifted AGEP: 0.151 against 0.158; year over year
  0.00007 against 0.002: one bin per age sees each cohort move up a year). On TFDV's own buckets
  scipy agrees to 1e-4 (scipy's `jensenshannon` returns the square root of the divergence: it is
  squared here, base 2 as in TFDV).
- a constant window (all ages 40): TFDV's histogram is one zero-width bucket, which its comparator
  keeps apart from every range of the other window (spread uniformly, a range puts no mass on one
  point), so TFDV reads 1.0. The monitor used to spread that point into the reference's bin
  starting at 40 and read 0.78; it now aligns as TFDV does (drift.aligned). scipy, one bin per
  age, sees the 2 % of the reference aged exactly 40: 0.957.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from components.monitor import drift, shift
from components.validate import validate
from tests.conftest import TFDV_PYTHON, needs_tfdv
from tests.fixtures.bad_data import DEFAULT_SPLIT, TEST_YEAR, TRAIN_YEAR

requires_tfdv = needs_tfdv()
PROJECT_VS_TFDV = 1e-4
LINF_VS_SCIPY = 1e-6
# (relative, absolute) tolerance of the monitor's AGEP value against scipy's, one bin per age
JSD_VS_SCIPY = {
    "year_over_year": (0.10, 0.005),
    "shifted": (0.10, 0.005),
    # the definitions differ: a zero-width bucket shares no mass with a range (1.0), while 2 %
    # of the reference is aged exactly 40 (scipy 0.957); both far above the threshold
    "constant_age": (0.0, 0.05),
}
CASES = ["year_over_year", "shifted", "constant_age"]
RUNNER = (
    "import json, sys\n"
    "from components.monitor import stats_job\n"
    "from components.validate import tfdv_job\n"
    "jobs = json.load(open(sys.argv[1]))\n"
    "codes = [tfdv_job.main(a) for a in jobs['validate']]\n"
    "codes += [stats_job.main(a) for a in jobs['monitor']]\n"
    "sys.exit(max(codes))\n"
)


def _windows(full: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """{case: dataset of a train year and a test year}: year over year, a shifted test year
    (older people, more MAR=1: `mlpipe simulate --shift`), and a test year with one age."""
    train, test = full[full.year == TRAIN_YEAR], full[full.year == TEST_YEAR]
    shifted = shift.shift_batch(test, seed=1, id_start=int(full["id"].max()) + 1)
    return {
        "year_over_year": pd.concat([train, test], ignore_index=True),
        "shifted": pd.concat([train, shifted], ignore_index=True),
        "constant_age": pd.concat([train, test.assign(AGEP=40)], ignore_index=True),
    }


@pytest.fixture(scope="module")
def measured(tmp_path_factory, full_data, schema) -> dict[str, dict]:
    """{case: {tfdv, project, train, test}}: TFDV's comparator values (validate's job, train
    against test), the monitor's values from the summaries, and both windows' raw rows."""
    root = tmp_path_factory.mktemp("drift_tfdv")
    schema_dict = schema.model_dump(mode="json", exclude_none=True)
    frames = _windows(full_data)
    jobs: dict[str, list[list[str]]] = {"validate": [], "monitor": []}
    for name, df in frames.items():
        df.to_parquet(root / f"{name}.parquet", index=False)
        df[df.year == TEST_YEAR].to_parquet(root / f"{name}_batch.parquet", index=False)
        out = root / name / "validate"
        jobs["validate"].append(
            validate.job_command(
                "python", str(root / f"{name}.parquet"), schema_dict, DEFAULT_SPLIT, str(out)
            )[3:]
        )
        jobs["monitor"].append(
            [
                "--data",
                str(root / f"{name}_batch.parquet"),
                "--schema",
                str(out / "schema" / "schema.json"),
                "--features-json",
                json.dumps(schema.feature_names),
                "--out",
                str(root / name / "batch"),
            ]
        )
    (root / "jobs.json").write_text(json.dumps(jobs))
    with validate.job_environment() as env:
        proc = subprocess.run(
            [str(TFDV_PYTHON), "-c", RUNNER, str(root / "jobs.json")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    out = {}
    for name, df in frames.items():
        folder = root / name
        summary = _read(folder / "validate" / "anomalies" / "anomalies.json")
        reference = _read(folder / "validate" / "statistics" / "train_stats.json")
        batch = _read(folder / "batch" / "batch_stats.json")
        out[name] = {
            "tfdv": summary["drift_measurements"],
            "project": drift.measure(reference, batch, schema),
            "reference": reference,
            "batch": batch,
            "train": df[df.year == TRAIN_YEAR],
            "test": df[df.year == TEST_YEAR],
        }
    return out


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _scipy_jsd(a: pd.Series, b: pd.Series) -> float:
    """Jensen-Shannon divergence (base 2) of two integer-valued samples, one bin per value."""
    edges = np.arange(min(a.min(), b.min()), max(a.max(), b.max()) + 2) - 0.5
    p, _ = np.histogram(a, edges)
    q, _ = np.histogram(b, edges)
    return float(jensenshannon(p, q, base=2) ** 2)


def _linf(a: pd.Series, b: pd.Series) -> float:
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    return float(pa.subtract(pb, fill_value=0.0).abs().max())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.tfdv
@requires_tfdv
def test_monitor_drift_agrees_with_tfdv_comparators(case, measured, schema):
    tfdv, project = measured[case]["tfdv"], measured[case]["project"]
    assert set(tfdv) == set(project) == set(schema.feature_names)
    for name in schema.feature_names:
        assert project[name]["metric"] == tfdv[name]["metric"], name
        assert project[name]["value"] == pytest.approx(tfdv[name]["value"], abs=PROJECT_VS_TFDV), (
            name
        )
        assert project[name]["drifted"] == tfdv[name]["drifted"], name


@pytest.mark.parametrize("case", CASES)
@pytest.mark.tfdv
@requires_tfdv
def test_monitor_drift_agrees_with_scipy_on_the_raw_windows(case, measured, schema):
    m = measured[case]
    for name in schema.feature_names:
        a, b = m["train"][name], m["test"][name]
        if m["project"][name]["metric"] == "linf":
            assert m["project"][name]["value"] == pytest.approx(_linf(a, b), abs=LINF_VS_SCIPY)
        else:
            value = m["project"][name]["value"]
            # the same buckets: scipy's divergence of the rebinned distributions
            p, q = drift.aligned(
                m["reference"]["features"][name]["histogram"],
                m["batch"]["features"][name]["histogram"],
            )
            assert value == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=PROJECT_VS_TFDV)
            # the raw values, one bin per age: binning only lowers the divergence
            exact = _scipy_jsd(a, b)
            rel, tolerance = JSD_VS_SCIPY[case]
            assert value == pytest.approx(exact, rel=rel, abs=tolerance), name
            if case != "constant_age":  # merging bins only lowers it; a point bucket is apart
                assert value <= exact + PROJECT_VS_TFDV, name


@pytest.mark.tfdv
@requires_tfdv
def test_the_shift_is_seen_by_all_three(measured):
    m = measured["shifted"]
    for name in ("AGEP", "MAR"):
        assert m["tfdv"][name]["drifted"] and m["project"][name]["drifted"], name
    assert _scipy_jsd(m["train"]["AGEP"], m["test"]["AGEP"]) > 0.1
    assert measured["year_over_year"]["project"]["AGEP"]["value"] < 0.01


def test_jensen_shannon_is_scipys_on_the_same_distributions():
    """The formula itself, apart from binning: scipy on the project's rebinned distributions."""
    a = [[0.0, 10.0, 30.0], [10.0, 20.0, 50.0], [20.0, 30.0, 20.0]]
    b = [[5.0, 15.0, 10.0], [15.0, 25.0, 60.0], [25.0, 35.0, 30.0]]
    _, p, q = drift.histogram_distributions(a, b)
    assert drift.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)


def test_a_constant_window_is_a_bucket_of_its_own_as_in_tfdv():
    """All ages 40 in the batch: TFDV compares the zero-width bucket with no range (1.0); spread
    into the reference's bin starting at 40 it read 0.78 on the constant_age windows."""
    reference = [[0.0, 50.0, 60.0], [50.0, 99.0, 40.0]]
    p, q = drift.aligned(reference, [[40.0, 40.0, 500.0]])
    assert drift.jensen_shannon(p, q) == pytest.approx(1.0)
    p, q = drift.aligned([[40.0, 40.0, 10.0]], [[40.0, 40.0, 30.0]])
    assert drift.jensen_shannon(p, q) == pytest.approx(0.0)
    # infinite values: their own bucket per window, like TFDV's
    p, q = drift.aligned([[0.0, 10.0, 9.0], [10.0, math.inf, 1.0]], [[0.0, 10.0, 10.0]])
    assert p == pytest.approx([0.9, 0.1]) and q == pytest.approx([1.0, 0.0])
