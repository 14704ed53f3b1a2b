"""Window: what one upstream answered during an analysis window. Counting, merging two windows,
the nearest-rank percentile and the summary a report shows. No servers, no clock."""

from __future__ import annotations

import math

import pytest

from components.deploy.windows import Window


def test_an_empty_window_has_neutral_figures():
    w = Window()
    assert (w.error_rate, w.client_error_rate, w.answered_share) == (0.0, 0.0, 1.0)
    assert w.answered is None and w.answered_requests == 0
    assert w.percentile_ms(50) == 0.0 and w.p99_ms == 0.0
    summary = w.summary()
    assert math.isnan(summary.pop("mean_score"))  # no scores: no mean, not 0
    assert summary == {
        "requests": 0,
        "errors": 0,
        "error_rate": 0.0,
        "client_errors": 0,
        "answered": 0,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "scores": 0,
        "seconds": 0.0,
    }


def test_record_counts_errors_client_errors_and_answers_apart():
    w = Window()
    w.record(1.0, error=False, scores=[0.2, 0.4])  # answered, two rows
    w.record(2.0, error=True)  # 5xx
    w.record(3.0, error=False, client_error=True)  # 4xx
    w.record(4.0, error=False, scores=[])  # 2xx without scores: not answered
    w.record(5.0, error=False, scores=None)
    assert (w.requests, w.errors, w.client_errors, w.answered) == (5, 1, 1, 1)
    assert w.scores == [0.2, 0.4] and w.latencies_ms == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert w.error_rate == pytest.approx(0.2) and w.client_error_rate == pytest.approx(0.2)
    assert w.answered_share == pytest.approx(0.2)


def test_a_recorded_error_with_scores_is_not_answered_but_keeps_its_scores():
    w = Window()
    w.record(1.0, error=True, scores=[0.9])
    w.record(1.0, error=False, scores=[0.1], client_error=True)
    assert w.answered == 0 and w.answered_requests == 0 and w.answered_share == 0.0
    assert w.scores == [0.9, 0.1]


def test_without_answers_known_every_non_error_counts_as_answered():
    """A metrics source (no response bodies) fills the counts directly: answered stays None."""
    w = Window(requests=10, errors=2, client_errors=3)
    assert w.answered is None
    assert w.answered_requests == 5 and w.answered_share == pytest.approx(0.5)
    assert Window(requests=10, errors=2, answered=4).answered_requests == 4


def test_merged_adds_everything_and_leaves_both_windows_alone():
    a = Window(4, 1, [1.0, 2.0, 3.0, 4.0], [0.1], 2.5, 1, 2)
    b = Window(2, 0, [9.0, 8.0], [0.7, 0.8], 1.0, 0, 2)
    m = a.merged(b)
    assert (m.requests, m.errors, m.client_errors, m.answered) == (6, 1, 1, 4)
    assert m.latencies_ms == [1.0, 2.0, 3.0, 4.0, 9.0, 8.0] and m.scores == [0.1, 0.7, 0.8]
    assert m.seconds == pytest.approx(3.5)
    assert (a.requests, a.latencies_ms, b.scores) == (4, [1.0, 2.0, 3.0, 4.0], [0.7, 0.8])
    m.latencies_ms.append(0.0)
    assert len(a.latencies_ms) == 4  # copies, not the same lists


def test_merging_a_known_and_an_unknown_answer_count_derives_the_unknown_one():
    known = Window(requests=3, answered=3)
    unknown = Window(requests=5, errors=1, client_errors=1)  # answered: 3 by derivation
    assert known.merged(unknown).answered == 6
    assert unknown.merged(known).answered == 6
    assert unknown.merged(Window(requests=2)).answered is None  # neither can tell


def test_nearest_rank_percentile():
    w = Window(latencies_ms=[float(v) for v in range(100, 0, -1)])  # 1..100, unsorted
    assert w.percentile_ms(50) == 50.0
    assert w.percentile_ms(99) == 99.0 and w.p99_ms == 99.0
    assert w.percentile_ms(100) == 100.0
    assert w.percentile_ms(0) == 1.0  # rank 0 is clamped to the smallest
    assert w.latencies_ms[0] == 100.0  # the samples are not sorted in place
    small = Window(latencies_ms=[5.0, 1.0, 30.0])
    # nearest rank: ceil(0.99 * 3) = 3rd, ceil(0.5 * 3) = 2nd; no interpolation
    assert (small.p99_ms, small.percentile_ms(50)) == (30.0, 5.0)
    assert Window(latencies_ms=[7.0]).percentile_ms(1) == 7.0


def test_summary_rounds_and_counts_without_raw_samples():
    w = Window()
    for i in range(3):
        w.record(1.23456 + i, error=False, scores=[1 / 3])
    w.record(10.0, error=True)
    w.seconds = 1.23456
    assert w.summary() == {
        "requests": 4,
        "errors": 1,
        "error_rate": 0.25,
        "client_errors": 0,
        "answered": 3,
        "p50_ms": 2.235,
        "p99_ms": 10.0,
        "scores": 3,
        "mean_score": 0.3333,
        "seconds": 1.235,
    }
