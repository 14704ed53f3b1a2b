"""Unit tests of components/evaluate/metrics.py: each function on small hand-checked arrays.

Covers what tests/components/evaluate/test_evaluate.py (through the stage and a real model)
leaves out: the min-cost threshold's tie-break towards the cost-ratio optimum fp / (fp + fn),
candidate thresholds kept inside (0, 1), a score equal to the threshold counting as positive in
every threshold metric, the zero-division answers when nothing is called positive,
`compute_metrics` on one class (no AUC, not refused: the stage refuses first), curve thinning at
and past MAX_CURVE_POINTS, and the edges of the calibration, histogram, cost-curve and confusion
outputs (scores of exactly 0 and 1, empty bins, a batch of one class).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from components.evaluate import metrics as em

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.6, 0.4, 0.9])
SEPARABLE = np.array([0.1, 0.2, 0.8, 0.9])  # any threshold in (0.2, 0.8] costs nothing


@pytest.mark.parametrize(
    ("cost_fp", "cost_fn", "low", "high"),
    [
        (1.0, 1.0, 0.4995, 0.5005),  # cost-ratio optimum 0.5, inside the zero-cost interval
        (3.0, 1.0, 0.7495, 0.7505),  # 0.75
        (1.0, 9.0, 0.2, 0.2011),  # 0.1 is outside: the zero-cost threshold nearest to it
        (99.0, 1.0, 0.79, 0.8),  # 0.99 is outside: nearest from below, 0.8 itself included
    ],
)
def test_min_cost_ties_go_to_the_cost_ratio_optimum(cost_fp, cost_fn, low, high):
    threshold, cost = em.min_cost_threshold(Y, SEPARABLE, cost_fp, cost_fn)
    assert cost == 0.0
    assert low < threshold <= high


def test_candidate_thresholds_hold_every_score_inside_the_open_interval():
    p = np.array([0.0, 0.25, 0.25, 0.7, 1.0])
    t = em.candidate_thresholds(p)
    assert np.all(np.diff(t) > 0)  # sorted, no duplicates
    assert t[0] == 1e-6 and t[-1] == 1 - 1e-6  # 0 and 1 clipped inside
    assert {0.25, 0.7} <= set(t.tolist())


def test_threshold_metrics_count_a_score_at_the_threshold_as_positive():
    at = em.threshold_metrics(Y, P, 0.6)  # 0.6 and 0.9 called positive: one TP, one FP
    assert at == {
        "accuracy": 0.5,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "predicted_positive_rate": 0.5,
    }
    above = em.threshold_metrics(Y, P, np.nextafter(0.6, 1))  # only 0.9
    assert above["precision"] == 1.0 and above["predicted_positive_rate"] == 0.25


def test_nothing_called_positive_scores_zero_not_a_warning_or_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's UndefinedMetricWarning would be raised
        out = em.threshold_metrics(Y, P, 0.95)
    assert out["precision"] == out["recall"] == out["f1"] == 0.0
    assert out["predicted_positive_rate"] == 0.0 and out["accuracy"] == 0.5


def test_compute_metrics_on_hand_checked_rows():
    out = em.compute_metrics(Y, P, 0.5, 2.0, 3.0)
    assert out["roc_auc"] == 0.75
    assert out["expected_cost"] == pytest.approx((2 + 3) / 4)
    assert out["decision_threshold"] == 0.5 and out["positive_rate"] == 0.5 and out["rows"] == 4
    assert out["log_loss"] == pytest.approx(skm.log_loss(Y, P))
    assert out["brier"] == pytest.approx(np.mean((P - Y) ** 2))
    json.dumps(out)  # JSON-ready: no numpy scalars
    assert all(type(v) in (float, int) for v in out.values())


def test_compute_metrics_on_a_single_class_has_no_auc():
    # not refused here (sklearn warns, AUC is nan): the stage refuses such a test set before
    with pytest.warns(UndefinedMetricWarning, match="Only one class"):
        out = em.compute_metrics(np.ones(4, dtype=int), P, 0.5, 1.0, 1.0)
    assert np.isnan(out["roc_auc"]) and out["positive_rate"] == 1.0
    assert out["expected_cost"] == 0.5  # the two positives under 0.5 are missed


def test_curves_at_the_point_limit_are_kept_whole_and_past_it_thinned_with_both_ends():
    x = np.linspace(0, 1, em.MAX_CURVE_POINTS)
    kept = em._thin(x, x**2)
    assert np.array_equal(kept[0], x)
    x = np.linspace(0, 1, em.MAX_CURVE_POINTS + 1)
    extra = np.arange(x.size)  # a third column is thinned with the same points
    thin_x, thin_y, thin_extra = em._thin(x, x**2, extra)
    assert len(thin_x) <= em.MAX_CURVE_POINTS
    assert (thin_x[0], thin_x[-1]) == (0.0, 1.0) and np.array_equal(thin_y, thin_x**2)
    assert np.array_equal(thin_extra, np.searchsorted(x, thin_x))
    # a curve ending on a repeated point: its length stops growing, the last point is still kept
    x = np.concatenate([np.linspace(0, 1, em.MAX_CURVE_POINTS + 1), [1.0]])
    *_, index = em._thin(x, x, np.arange(x.size))
    assert (index[0], index[-1]) == (0, x.size - 1) and len(index) <= em.MAX_CURVE_POINTS


def test_small_roc_and_pr_curves_are_sklearns_with_inf_as_one():
    fpr, tpr, thr = skm.roc_curve(Y, P)
    roc = em.roc_points(Y, P)
    assert roc["fpr"] == fpr.tolist() and roc["tpr"] == tpr.tolist()
    assert roc["threshold"][0] == 1.0 and roc["threshold"][1:] == thr[1:].tolist()
    precision, recall, _ = skm.precision_recall_curve(Y, P)
    pr = em.pr_points(Y, P)
    assert pr == {"recall": recall.tolist(), "precision": precision.tolist()}


def test_pr_curve_is_thinned_with_both_ends():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 5000)
    p = np.clip(0.4 * y + rng.random(y.size) * 0.6, 0, 1)
    precision, recall, _ = skm.precision_recall_curve(y, p)
    pr = em.pr_points(y, p)
    # thinned to the limit, not below it (a straight-ish curve keeps every target point)
    assert len(pr["recall"]) == em.MAX_CURVE_POINTS < len(recall)
    assert (pr["recall"][0], pr["recall"][-1]) == (recall[0], recall[-1])
    assert (pr["precision"][0], pr["precision"][-1]) == (precision[0], precision[-1])


def test_calibration_puts_0_and_1_in_the_end_bins_and_leaves_empty_bins_out():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.0, 0.05, 1.0, 0.95, 0.5])
    cal = em.calibration(y, p)
    assert cal["count"] == [2, 1, 2]  # bins [0, .1), [.5, .6), [.9, 1]
    assert cal["mean_predicted"] == pytest.approx([0.025, 0.5, 0.975])
    assert cal["observed"] == [0.5, 1.0, 0.5]


def test_histogram_counts_a_score_of_1_in_the_last_bin():
    hist = em.histogram(np.array([0, 1, 1]), np.array([0.0, 0.5, 1.0]), bins=4)
    assert hist["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert hist["negatives"] == [1, 0, 0, 0] and hist["positives"] == [0, 0, 1, 1]


def test_cost_curve_grid_and_values():
    curve = em.cost_curve(Y, P, 2.0, 3.0)
    assert len(curve["threshold"]) == 101
    assert (curve["threshold"][0], curve["threshold"][-1]) == (0.005, 0.995)
    assert curve["threshold"][50] == pytest.approx(0.5)
    assert curve["expected_cost"][50] == pytest.approx((2 + 3) / 4)
    assert curve["expected_cost"][0] == pytest.approx(2 * 2 / 4)  # everything positive
    assert curve["expected_cost"][-1] == pytest.approx(3 * 2 / 4)  # everything negative


def test_confusion_is_two_by_two_even_for_one_class_and_names_the_label():
    out = em.confusion(np.zeros(3, dtype=int), np.array([0.2, 0.5, 0.7]), 0.5, "employed")
    assert out == {"categories": ["not employed", "employed"], "matrix": [[1, 2], [0, 0]]}
    # one class in the labels and in the predictions: still both rows and columns
    out = em.confusion(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3]), 0.5, "employed")
    assert out["matrix"] == [[3, 0], [0, 0]]


def test_curves_hold_every_curve():
    out = em.curves(Y, P, 1.0, 1.0)
    assert set(out) == {"roc", "pr", "calibration", "cost", "histogram"}
    json.dumps(out)
