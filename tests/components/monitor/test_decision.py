"""Unit tests of components/monitor/decision.py: `decide` on its own, with the shipped policy.

Covers what tests/components/monitor/test_monitor.py's policy walk-through leaves out: the
`decision.min_rows` boundary and its reason, anomalies winning even on a tiny batch, the anomaly
reason's fallbacks (no feature -> "dataset", no description -> the check), decay and drift
together (both kinds and reasons, the stronger action wins), drifted features ordered by excess
and the `min_drifted_features` boundary, a decay result that did not decay, and the policy
defaults when a key is missing.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.monitor.decision import decide


@pytest.fixture()
def policy(settings) -> dict[str, Any]:
    """The shipped `monitoring.decision` policy, as the monitor stage passes it (a plain dict)."""
    return settings.pipeline.monitoring.model_dump()["decision"]


def drift(value: float, threshold: float = 0.1, metric: str = "jensen_shannon") -> dict:
    return {"metric": metric, "value": value, "threshold": threshold, "drifted": value > threshold}


CALM = {"SEX": drift(0.01, metric="linf")}
DECAYED = {"decayed": True, "reasons": ["roc_auc 0.8000 < 0.9000 (champion's evaluation)"]}


def test_shipped_policy_is_what_these_tests_assume(policy):
    assert policy == {
        "on_drift": "retrain",
        "min_drifted_features": 1,
        "on_decay": "retrain",
        "min_rows": 200,
    }


def test_min_rows_boundary_and_its_reason(policy):
    drifted = {"AGEP": drift(0.3)}
    at = decide(drifted, DECAYED, [], 200, policy)
    assert at["decision"] == "retrain" and at["kinds"] == ["performance_decay", "drift"]
    below = decide(drifted, DECAYED, [], 199, policy)
    assert below["decision"] == "none" and below["kinds"] == []
    assert below["reasons"] == ["only 199 rows (< decision.min_rows 200): not acted on"]
    # the drifted features are still reported, only not acted on
    assert below["drifted"] == ["AGEP"]


def test_anomalies_alert_even_below_min_rows_and_on_an_empty_batch(policy):
    bad = [{"feature": "SEX", "description": "unexpected value 3", "check": "domain"}]
    out = decide(CALM, None, bad, 0, policy)
    assert out == {
        "decision": "alert",
        "reasons": ["SEX: unexpected value 3"],
        "kinds": ["data_anomaly"],
        "drifted": [],
    }


def test_anomaly_reasons_fall_back_to_dataset_and_the_check(policy):
    anomalies = [
        {"check": "row_count", "description": "no rows"},  # dataset-level: no feature
        {"feature": "AGEP", "check": "missing_feature"},  # no description: the check names it
        {"feature": "", "check": "schema"},  # an empty feature is no feature either
    ]
    out = decide(CALM, None, anomalies, 1000, policy)
    assert out["reasons"] == ["dataset: no rows", "AGEP: missing_feature", "dataset: schema"]
    assert out["decision"] == "alert"


def test_decay_and_drift_together_keep_both_kinds_and_reasons(policy):
    measurements = {"AGEP": drift(0.3), **CALM}
    out = decide(measurements, DECAYED, [], 1000, policy)
    assert out["decision"] == "retrain"
    assert out["kinds"] == ["performance_decay", "drift"]
    assert out["reasons"] == [DECAYED["reasons"][0], "AGEP: jensen_shannon 0.3000 > 0.1"]


@pytest.mark.parametrize(
    ("on_decay", "on_drift", "expected"),
    [
        ("alert", "alert", "alert"),
        ("alert", "retrain", "retrain"),
        ("retrain", "alert", "retrain"),
    ],
)
def test_the_stronger_action_wins_whichever_kind_asks_for_it(policy, on_decay, on_drift, expected):
    chosen = {**policy, "on_decay": on_decay, "on_drift": on_drift}
    assert decide({"AGEP": drift(0.3)}, DECAYED, [], 1000, chosen)["decision"] == expected


def test_drifted_features_are_ordered_by_excess_and_counted_against_the_minimum(policy):
    measurements = {
        "SEX": drift(0.15, threshold=0.1, metric="linf"),  # 0.05 over
        "AGEP": drift(0.4, threshold=0.1),  # 0.3 over
        "WKHP": drift(0.2, threshold=0.1),  # 0.1 over
        "RAC1P": drift(0.05, metric="linf"),  # under
    }
    out = decide(measurements, None, [], 1000, {**policy, "min_drifted_features": 3})
    assert out["drifted"] == ["AGEP", "WKHP", "SEX"]
    assert out["decision"] == "retrain"
    assert out["reasons"] == [
        "AGEP: jensen_shannon 0.4000 > 0.1",
        "WKHP: jensen_shannon 0.2000 > 0.1",
        "SEX: linf 0.1500 > 0.1",
    ]
    four = decide(measurements, None, [], 1000, {**policy, "min_drifted_features": 4})
    assert four["decision"] == "none" and four["reasons"] == [] and four["kinds"] == []
    assert four["drifted"] == ["AGEP", "WKHP", "SEX"]


def test_a_decay_result_that_did_not_decay_is_no_reason(policy):
    fine = {"decayed": False, "reasons": []}
    assert decide(CALM, fine, [], 1000, policy) == {
        "decision": "none",
        "reasons": [],
        "kinds": [],
        "drifted": [],
    }


def test_missing_policy_keys_take_the_documented_defaults():
    # min_rows 1, min_drifted_features 1, on_decay and on_drift retrain
    assert decide(CALM, DECAYED, [], 1, {})["decision"] == "retrain"
    assert decide({"AGEP": drift(0.3)}, None, [], 1, {})["decision"] == "retrain"
    # an empty batch under the default min_rows: the reason names the default (no KeyError)
    assert decide(CALM, None, [], 0, {})["reasons"] == [
        "only 0 rows (< decision.min_rows 1): not acted on"
    ]
