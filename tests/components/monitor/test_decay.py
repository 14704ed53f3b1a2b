"""Unit tests of components/monitor/decay.py: `expected_cost` and `measure` on their own.

Covers what tests/components/monitor/test_monitor.py (a good and a noisy scorer, a one-class
batch) leaves out: a score equal to the threshold counts as positive, the cost weights, the
tolerances at and just past their boundaries with the exact reasons, the reference threshold and
its 0.5 default, a reference without metrics (nothing judged), float, bool and digit-string
labels, a one-class batch judged on its cost only, an empty batch, and agreement with the
evaluate stage: a real champion scored on its own test rows does not decay (its AUC and expected
cost are the evaluation's), and does on the same rows with flipped labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.evaluate import metrics as em
from components.monitor.decay import expected_cost, measure
from tests.conftest import DATA_FILE
from tests.fixtures.models import FEATURES, LABEL, logistic

# AUC 0.75 (3 of 4 positive/negative pairs ordered), cost 0.5 per row at 0.5 (one FP, one FN)
Y = np.array([0, 0, 1, 1])
S = np.array([0.1, 0.6, 0.4, 0.9])
UNIT = {"false_positive": 1.0, "false_negative": 1.0}


@pytest.fixture()
def tolerance(settings) -> dict[str, float]:
    return settings.pipeline.monitoring.decay_tolerance.model_dump()


@pytest.fixture()
def cost(settings) -> dict[str, float]:
    return settings.pipeline.evaluation.cost.model_dump()


def test_expected_cost_counts_a_score_at_the_threshold_as_positive():
    assert expected_cost(Y, S, 0.5, 2.0, 3.0) == pytest.approx((2 + 3) / 4)
    # 0.6 == threshold: predicted positive, still a false positive; 0.4 a false negative
    assert expected_cost(Y, S, 0.6, 2.0, 3.0) == pytest.approx((2 + 3) / 4)
    # just above 0.6: the negative at 0.6 is no longer called positive
    assert expected_cost(Y, S, 0.6000001, 2.0, 3.0) == pytest.approx(3 / 4)
    assert expected_cost(Y, S, 0.0, 2.0, 3.0) == pytest.approx(2 * 2 / 4)  # all positive
    assert expected_cost(Y, S, 1.0, 2.0, 3.0) == pytest.approx(3 * 2 / 4)  # all negative


def test_expected_cost_of_no_rows_is_zero_not_a_division_error():
    assert expected_cost(np.array([], dtype=int), np.array([]), 0.5, 1.0, 1.0) == 0.0


def test_auc_tolerance_at_and_past_its_boundary():
    tol = {"roc_auc": 0.125, "expected_cost": 1.0}
    at = measure(Y, S, {"roc_auc": 0.875, "decision_threshold": 0.5}, tol, UNIT)
    assert at["roc_auc"] == 0.75 and not at["decayed"] and at["reasons"] == []
    past = measure(Y, S, {"roc_auc": 0.876, "decision_threshold": 0.5}, tol, UNIT)
    assert past["decayed"]
    assert past["reasons"] == ["roc_auc 0.7500 < 0.8760 (champion's evaluation) - tolerance 0.125"]


def test_cost_tolerance_at_and_past_its_boundary():
    tol = {"roc_auc": 1.0, "expected_cost": 0.25}
    at = measure(Y, S, {"expected_cost": 0.25, "decision_threshold": 0.5}, tol, UNIT)
    assert at["expected_cost"] == 0.5 and not at["decayed"]
    past = measure(Y, S, {"expected_cost": 0.2499, "decision_threshold": 0.5}, tol, UNIT)
    assert past["reasons"] == [
        "expected cost 0.5000 per row > 0.2499 (champion's evaluation) + tolerance 0.25"
    ]


def test_the_references_threshold_and_the_cost_weights_are_used(tolerance):
    dear_misses = {"false_positive": 1.0, "false_negative": 4.0}
    out = measure(Y, S, {"decision_threshold": 0.95}, tolerance, dear_misses)
    # 0.95: both positives missed, no false positive -> 4 * 2 / 4
    assert out["decision_threshold"] == 0.95 and out["expected_cost"] == 2.0
    default = measure(Y, S, {}, tolerance, {})  # no threshold: 0.5; no weights: 1 each
    assert default["decision_threshold"] == 0.5 and default["expected_cost"] == 0.5


def test_a_reference_without_metrics_judges_nothing(tolerance, cost):
    out = measure(Y, 1 - S, {"decision_threshold": 0.5}, tolerance, cost)  # AUC 0.25, cost 0.5
    assert out["roc_auc"] == 0.25 and out["expected_cost"] == 0.5
    assert out["reference_roc_auc"] is None and out["reference_expected_cost"] is None
    assert not out["decayed"] and out["reasons"] == []


def test_float_labels_and_the_reported_fields(tolerance, cost):
    out = measure(Y.astype(float), S.tolist(), {"roc_auc": 0.7}, tolerance, cost)
    assert out == {
        "rows": 4,
        "positive_rate": 0.5,
        "roc_auc": 0.75,
        "expected_cost": 0.5,
        "decision_threshold": 0.5,
        "reference_roc_auc": 0.7,
        "reference_expected_cost": None,
        "decayed": False,
        "reasons": [],
    }


@pytest.mark.parametrize(
    "labels",
    [Y.astype(bool), np.array(["0", "0", "1", "1"], dtype=object)],
    ids=["bool", "digit-strings"],
)
def test_labels_of_another_dtype_are_read_as_0_and_1(labels, tolerance, cost):
    out = measure(labels, S, {"roc_auc": 0.7}, tolerance, cost)
    assert (out["roc_auc"], out["expected_cost"], out["positive_rate"]) == (0.75, 0.5, 0.5)


def test_a_one_class_batch_is_judged_on_its_cost_only(tolerance, cost):
    ref = {"roc_auc": 0.9, "expected_cost": 0.1, "decision_threshold": 0.5}
    out = measure(np.zeros(10), np.full(10, 0.9), ref, tolerance, cost)  # 10 false positives
    assert out["roc_auc"] is None and out["expected_cost"] == 1.0 and out["positive_rate"] == 0.0
    assert out["decayed"] and len(out["reasons"]) == 1
    assert out["reasons"][0].startswith("expected cost 1.0000 per row > 0.1000")


def test_an_empty_batch_has_no_auc_no_rate_and_does_not_decay(tolerance, cost):
    ref = {"roc_auc": 0.9, "expected_cost": 0.1, "decision_threshold": 0.5}
    out = measure(np.array([]), np.array([]), ref, tolerance, cost)
    assert out["rows"] == 0 and out["roc_auc"] is None and out["positive_rate"] is None
    assert out["expected_cost"] == 0.0 and not out["decayed"]


@pytest.fixture(scope="module")
def champion() -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A real logistic model; its test labels, scores and the evaluate stage's metrics."""
    data = pd.read_parquet(DATA_FILE, columns=[*FEATURES, LABEL, "year"])
    train = data[data.year == 2015].sample(3000, random_state=0)
    test = data[data.year == 2016].sample(2000, random_state=1)
    model, _ = logistic(train)
    y = test[LABEL].to_numpy()
    p = model.predict_proba(test[FEATURES])[:, 1]
    threshold, _ = em.min_cost_threshold(y, p, 1.0, 1.0)
    return y, p, em.compute_metrics(y, p, threshold, 1.0, 1.0)


def test_a_champion_on_its_own_test_rows_matches_its_evaluation(champion, tolerance, cost):
    y, p, evaluation = champion
    out = measure(y, p, evaluation, tolerance, cost)
    assert out["roc_auc"] == pytest.approx(evaluation["roc_auc"], abs=1e-6)
    assert out["expected_cost"] == pytest.approx(evaluation["expected_cost"], abs=1e-6)
    assert not out["decayed"]
    flipped = measure(1 - y, p, evaluation, tolerance, cost)
    assert flipped["decayed"] and len(flipped["reasons"]) == 2
