"""Unit tests of components/monitor/drift.py: the per-feature drift measures on statistics
summaries (L-infinity on value shares, Jensen-Shannon on aligned histograms), the thresholds from
the data schema, and which features count as drifted."""

from __future__ import annotations

import pytest

from components.common.config import DataSchema
from components.monitor import drift, shift
from tests.components.monitor.conftest import summary


def schema_with(schema, **features) -> DataSchema:
    """The shipped schema with only `features` (name -> feature spec dict): its checks kept."""
    data = schema.model_dump(mode="json")
    data["features"] = features
    return DataSchema.model_validate(data)


AGE = {"kind": "numeric", "dtype": "int", "min": 0, "max": 99}
SEX = {"kind": "categorical", "dtype": "int", "values": [1, 2]}


def categorical(**shares) -> dict:
    return {"kind": "categorical", "top_values": [[k, n] for k, n in shares.items()]}


def numeric(*buckets) -> dict:
    return {"kind": "numeric", "histogram": [list(b) for b in buckets]}


def test_linf_is_the_largest_change_in_any_share():
    assert drift.linf({"1": 0.5, "2": 0.5}, {"1": 0.75, "2": 0.25}) == pytest.approx(0.25)
    assert drift.linf({"1": 1.0}, {"2": 1.0}) == pytest.approx(1.0)  # disjoint codes
    assert drift.linf({}, {}) == 0.0


def test_linf_is_symmetric_and_counts_a_code_only_one_side_has():
    a, b = {"1": 0.9, "2": 0.1}, {"1": 0.6, "2": 0.1, "3": 0.3}
    assert drift.linf(a, b) == drift.linf(b, a) == pytest.approx(0.3)
    assert drift.linf({}, {"7": 0.4}) == pytest.approx(0.4)


def test_frequencies_are_shares_of_the_top_values_keyed_as_text():
    assert drift.frequencies({"top_values": [[1, 3], ["2", 1]]}) == {"1": 0.75, "2": 0.25}
    # nothing counted: no shares (not a division by zero)
    assert drift.frequencies({"top_values": [["1", 0]]}) == {}
    assert drift.frequencies({}) == {}


def test_jensen_shannon_is_zero_for_equal_and_one_for_disjoint_histograms():
    h = [[0, 10, 5], [10, 20, 5]]
    _, p, q = drift.histogram_distributions(h, h)
    assert drift.jensen_shannon(p, q) == pytest.approx(0.0)
    _, p, q = drift.histogram_distributions([[0, 10, 5]], [[20, 30, 7]])
    assert drift.jensen_shannon(p, q) == pytest.approx(1.0)


def test_jensen_shannon_is_base_2_symmetric_and_needs_equal_lengths():
    # m = [0.75, 0.25]: 0.5 * log2(1 / 0.75) + 0.5 * (0.5 * log2(0.5 / 0.75) + 0.5 * 1)
    p, q = [1.0, 0.0], [0.5, 0.5]
    assert drift.jensen_shannon(p, q) == pytest.approx(0.311278, abs=1e-6)
    assert drift.jensen_shannon(q, p) == pytest.approx(drift.jensen_shannon(p, q))
    assert drift.jensen_shannon([], []) == 0.0
    with pytest.raises(ValueError):
        drift.jensen_shannon([0.5, 0.5], [1.0])


def test_rebinning_spreads_mass_uniformly_over_a_bucket():
    edges, p, q = drift.histogram_distributions([[0, 10, 10]], [[0, 5, 4], [5, 10, 4]])
    assert edges == [0, 5, 10]
    assert p == pytest.approx([0.5, 0.5]) and q == pytest.approx([0.5, 0.5])


def test_histogram_distributions_of_empty_point_and_uncounted_histograms():
    assert drift.histogram_distributions([], []) == ([0.0, 1.0], [0.0], [0.0])
    # one value in both windows: a bin starting at it
    assert drift.histogram_distributions([[40, 40, 5]], [[40, 40, 2]]) == (
        [40.0, 41.0],
        [1.0],
        [1.0],
    )
    # empty and negative counts add no mass
    edges, p, q = drift.histogram_distributions([[0, 10, 0], [10, 20, 4]], [[0, 10, -3]])
    assert edges == [0, 10, 20] and p == [0.0, 1.0] and q == [0.0, 0.0]


def test_a_constant_batch_against_a_spread_reference_reads_full_drift():
    """A zero-width bucket shares no mass with a range (TFDV's alignment), wherever it falls."""
    reference = [[0, 50, 50], [50, 100, 50]]
    p, q = drift.aligned(reference, [[40, 40, 100]])
    assert drift.jensen_shannon(p, q) == pytest.approx(1.0)
    p, q = drift.aligned([[40, 40, 10]], [[40, 40, 30]])
    assert (p, q) == ([1.0], [1.0]) and drift.jensen_shannon(p, q) == 0.0


def test_aligned_keeps_infinite_bound_mass_apart_per_window():
    a = [[0, 10, 5], [10, float("inf"), 5]]
    b = [[0, 10, 5], [float("-inf"), 0, 5]]
    p, q = drift.aligned(a, b)
    assert p == pytest.approx([0.5, 0.5, 0.0]) and q == pytest.approx([0.5, 0.0, 0.5])
    assert drift.aligned([], []) == ([], [])


def test_year_over_year_drift_is_tiny_and_a_shift_is_caught(full_data, schema):
    y2015 = full_data[full_data.year == 2015]
    y2016 = full_data[full_data.year == 2016]
    ref = summary(y2015, schema)
    same = drift.measure(ref, summary(y2016, schema), schema)
    assert drift.drifted(same) == []
    assert same["AGEP"]["metric"] == "jensen_shannon" and same["AGEP"]["value"] < 0.01
    assert same["SEX"]["metric"] == "linf"
    shifted = drift.measure(ref, summary(shift.shift_batch(y2016, seed=1), schema), schema)
    hits = drift.drifted(shifted)
    assert {"AGEP", "MAR"} <= set(hits)
    assert all(shifted[n]["value"] > shifted[n]["threshold"] for n in hits)


def test_a_feature_missing_from_a_summary_is_reported_not_measured(schema):
    ref = {"features": {"AGEP": {"histogram": [[0, 99, 10]]}}}
    out = drift.measure(ref, {"features": {}}, schema)
    assert out["AGEP"]["missing"] and "value" not in out["AGEP"]
    assert drift.drifted(out) == []


def test_missing_on_either_side_and_features_outside_the_schema(schema):
    one = schema_with(schema, SEX=SEX)
    present = {"features": {"SEX": categorical(**{"1": 5})}}
    for ref, new in ((present, {}), ({}, present)):
        assert drift.measure(ref, new, one) == {
            "SEX": {"metric": "linf", "threshold": 0.1, "missing": True}
        }
    extra = {"features": {"SEX": categorical(**{"1": 5}), "OTHER": categorical(**{"1": 5})}}
    assert set(drift.measure(extra, extra, one)) == {"SEX"}


def test_thresholds_come_from_the_data_schema(schema):
    assert drift.drift_spec(schema, "AGEP") == ("jensen_shannon", 0.1)
    assert drift.drift_spec(schema, "SEX") == ("linf", schema.checks.drift_threshold_default)


def test_a_features_own_drift_check_wins_but_numeric_is_always_jensen_shannon(schema):
    custom = schema_with(
        schema,
        AGE={**AGE, "drift": {"metric": "linf", "threshold": 0.3}},
        SEX={**SEX, "drift": {"metric": "jensen_shannon", "threshold": 0.2}},
        MAR={"kind": "categorical", "dtype": "int", "values": [1, 2]},
    )
    assert drift.drift_spec(custom, "AGE") == ("jensen_shannon", 0.3)  # no shares to compare
    assert drift.drift_spec(custom, "SEX") == ("jensen_shannon", 0.2)
    assert drift.drift_spec(custom, "MAR") == ("linf", 0.1)  # the schema's default
    with pytest.raises(KeyError):
        drift.drift_spec(custom, "NOPE")


def test_measure_drifts_only_strictly_past_the_threshold(schema):
    one = schema_with(schema, SEX={**SEX, "drift": {"metric": "linf", "threshold": 0.25}})
    ref = {"features": {"SEX": categorical(**{"1": 2, "2": 2})}}
    at = drift.measure(ref, {"features": {"SEX": categorical(**{"1": 3, "2": 1})}}, one)
    assert at["SEX"] == {"metric": "linf", "value": 0.25, "threshold": 0.25, "drifted": False}
    past = drift.measure(ref, {"features": {"SEX": categorical(**{"1": 4})}}, one)
    assert past["SEX"]["value"] == 0.5 and past["SEX"]["drifted"] is True


def test_measure_a_categorical_feature_measured_as_jensen_shannon_uses_its_histogram(schema):
    one = schema_with(schema, SEX={**SEX, "drift": {"metric": "jensen_shannon", "threshold": 0.2}})
    ref = {"features": {"SEX": numeric((0, 1, 5), (1, 2, 5))}}
    new = {"features": {"SEX": numeric((3, 4, 10))}}
    out = drift.measure(ref, new, one)
    assert out["SEX"]["metric"] == "jensen_shannon" and out["SEX"]["value"] == 1.0


def test_measure_reports_the_value_rounded_to_six_digits(schema):
    one = schema_with(schema, AGE={**AGE, "drift": {"metric": "jensen_shannon", "threshold": 0.5}})
    ref = {"features": {"AGE": numeric((0, 10, 1), (10, 20, 2))}}
    new = {"features": {"AGE": numeric((0, 10, 2), (10, 20, 1))}}
    out = drift.measure(ref, new, one)["AGE"]
    p, q = [1 / 3, 2 / 3], [2 / 3, 1 / 3]
    assert out["value"] == round(drift.jensen_shannon(p, q), 6) and out["drifted"] is False


def test_drifted_lists_the_largest_excess_first_and_skips_the_rest():
    measurements = {
        "A": {"value": 0.15, "threshold": 0.1, "drifted": True},  # excess 0.05
        "B": {"value": 0.5, "threshold": 0.2, "drifted": True},  # excess 0.3
        "C": {"value": 0.09, "threshold": 0.1, "drifted": False},
        "D": {"metric": "linf", "threshold": 0.1, "missing": True},
        "E": {"value": 0.3, "threshold": 0.1, "drifted": True},  # excess 0.2
    }
    assert drift.drifted(measurements) == ["B", "E", "A"]
    assert drift.drifted({}) == []
