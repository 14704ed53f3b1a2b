"""Per-slice metrics (`compute_slices`): one slice per value or bucket, metrics as sklearn
computes them on the slice's rows, `judged` from min_rows, the gap between the best and the worst
judged slice, and the slices' order. Real frames and real scores of a fitted sklearn model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from components.evaluate.slices import SLICE_METRICS, bucket_labels, compute_slices


def test_bucket_labels():
    values = pd.Series([10, 25, 30, 64.9, 65, 90])
    labels = bucket_labels(values, [25, 35, 65]).tolist()
    assert labels == ["<25", "25-35", "25-35", "35-65", ">=65", ">=65"]


def test_bucket_labels_name_fractional_and_single_edges_and_keep_the_index():
    values = pd.Series([0.1, 2.5, 2.49, 1e6], index=[7, 3, 9, 1])
    labels = bucket_labels(values, [2.5])
    assert labels.tolist() == ["<2.5", ">=2.5", "<2.5", ">=2.5"]
    assert labels.index.tolist() == [7, 3, 9, 1]  # aligned with the frame's rows
    assert bucket_labels(pd.Series([1, 2]), [0.25, 1.5]).tolist() == ["0.25-1.5", ">=1.5"]
    # edges read from YAML as floats name their buckets without a trailing ".0"
    assert bucket_labels(pd.Series([30.0]), [25.0, 35.0]).tolist() == ["25-35"]


@pytest.fixture(scope="module")
def scored() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """600 rows: `group` 1, 2 and 10 (10: 30 rows), `age` 18..77; a model fitted on them."""
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame(
        {
            "group": np.where(np.arange(n) < 30, 10, rng.integers(1, 3, n)),
            "age": rng.integers(18, 78, n),
            "x": rng.normal(size=n),
        }
    )
    y = (df.x + 0.5 * (df.group == 2) + rng.normal(scale=0.8, size=n) > 0).astype(int).to_numpy()
    model = LogisticRegression().fit(df[["x", "group"]], y)
    return df, y, model.predict_proba(df[["x", "group"]])[:, 1]


def test_each_slice_has_sklearns_metrics_on_its_rows(scored):
    df, y, p = scored
    (group,) = compute_slices(df, y, p, 0.4, ["group"], {}, min_rows=50)
    assert group["feature"] == "group"
    assert [s["value"] for s in group["slices"]] == ["1", "2", "10"]  # "2" < "10": numeric
    for s in group["slices"]:
        mask = (df.group == int(s["value"])).to_numpy()
        pred = (p[mask] >= 0.4).astype(int)
        assert s["rows"] == mask.sum()
        assert s["positive_rate"] == pytest.approx(y[mask].mean())
        assert s["predicted_positive_rate"] == pytest.approx(pred.mean())
        assert s["roc_auc"] == pytest.approx(skm.roc_auc_score(y[mask], p[mask]))
        assert s["accuracy"] == pytest.approx(skm.accuracy_score(y[mask], pred))
        assert s["precision"] == pytest.approx(skm.precision_score(y[mask], pred))
        assert s["recall"] == pytest.approx(skm.recall_score(y[mask], pred))
        assert s["f1"] == pytest.approx(skm.f1_score(y[mask], pred))
    assert sum(s["rows"] for s in group["slices"]) == len(df)


def test_a_score_at_the_threshold_is_positive():
    df = pd.DataFrame({"f": [1, 1, 1, 1]})
    y = np.array([0, 1, 0, 1])
    p = np.array([0.2, 0.5, 0.49, 0.9])
    (only,) = compute_slices(df, y, p, 0.5, ["f"], {}, 1)[0]["slices"]
    assert only["predicted_positive_rate"] == 0.5 and only["recall"] == 1.0
    assert only["accuracy"] == 1.0


def test_judged_from_min_rows_inclusive_and_gaps_only_between_judged_slices(scored):
    df, y, p = scored
    small = int((df.group == 10).sum())
    (group,) = compute_slices(df, y, p, 0.5, ["group"], {}, min_rows=small)
    assert all(s["judged"] for s in group["slices"])  # rows == min_rows: judged
    (group,) = compute_slices(df, y, p, 0.5, ["group"], {}, min_rows=small + 1)
    judged = {s["value"]: s for s in group["slices"] if s["judged"]}
    assert set(judged) == {"1", "2"}
    assert set(group["gaps"]) == set(SLICE_METRICS)
    for metric, gap in group["gaps"].items():
        values = {v: s[metric] for v, s in judged.items()}
        assert gap["gap"] == pytest.approx(max(values.values()) - min(values.values()))
        assert values[gap["best"]] == max(values.values())
        assert values[gap["worst"]] == min(values.values())
        assert gap["gap"] >= 0


def test_fewer_than_two_judged_slices_make_no_gap(scored):
    df, y, p = scored
    (group,) = compute_slices(df, y, p, 0.5, ["group"], {}, min_rows=len(df))
    assert not any(s["judged"] for s in group["slices"]) and group["gaps"] == {}
    (one,) = compute_slices(df.assign(c=1), y, p, 0.5, ["c"], {}, min_rows=1)
    assert len(one["slices"]) == 1 and one["gaps"] == {}


def test_a_one_class_slice_has_no_auc_and_no_auc_gap():
    df = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4})
    y = np.array([1, 1, 1, 1, 0, 1, 0, 1])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.7, 0.4, 0.9])
    (g,) = compute_slices(df, y, p, 0.5, ["g"], {}, min_rows=1)
    a, b = g["slices"]
    assert a["roc_auc"] is None and a["positive_rate"] == 1.0 and a["precision"] == 1.0
    assert b["roc_auc"] == 1.0
    assert "roc_auc" not in g["gaps"] and g["gaps"]["accuracy"]["worst"] == "a"


def test_no_predicted_positive_gives_zeros_without_warnings():
    df = pd.DataFrame({"g": [1, 1, 1]})
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        (s,) = compute_slices(
            df, np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]), 0.9, ["g"], {}, 1
        )[0]["slices"]
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)


def test_buckets_follow_the_features_and_sort_by_lower_edge(scored):
    df, y, p = scored
    out = compute_slices(df, y, p, 0.5, ["group"], {"age": [25, 35, 65]}, min_rows=1)
    assert [f["feature"] for f in out] == ["group", "age"]
    ages = out[1]["slices"]
    assert [s["value"] for s in ages] == ["<25", "25-35", "35-65", ">=65"]
    assert [s["rows"] for s in ages] == [
        int((df.age < 25).sum()),
        int(((df.age >= 25) & (df.age < 35)).sum()),
        int(((df.age >= 35) & (df.age < 65)).sum()),
        int((df.age >= 65).sum()),
    ]


def test_negative_and_tiny_bucket_edges_sort_by_lower_edge():
    """Negative edges ("<-10", "-10-0") and edges :g writes with an exponent ("1e-05") sort by
    their value too, not as text after the rest."""
    y = np.array([0, 1] * 4)
    p = np.linspace(0.1, 0.9, 8)
    df = pd.DataFrame({"t": [-20, -20, -5, -5, 3, 3, 12, 12]})
    (t,) = compute_slices(df, y, p, 0.5, [], {"t": [-10, 0, 10]}, 1)
    assert [s["value"] for s in t["slices"]] == ["<-10", "-10-0", "0-10", ">=10"]
    df = pd.DataFrame({"r": [0.0, 0.0, 2e-5, 2e-5, 0.5, 0.5, 2.0, 2.0]})
    (r,) = compute_slices(df, y, p, 0.5, [], {"r": [1e-5, 0.001, 1]}, 1)
    assert [s["value"] for s in r["slices"]] == ["<1e-05", "1e-05-0.001", "0.001-1", ">=1"]


def test_negative_codes_and_text_values_sort_numbers_first_then_text():
    y = np.array([0, 1] * 3)
    p = np.linspace(0.1, 0.9, 6)
    df = pd.DataFrame({"c": [10, -1, 2, 10, -1, 2]})
    (c,) = compute_slices(df, y, p, 0.5, ["c"], {}, 1)
    assert [s["value"] for s in c["slices"]] == ["-1", "2", "10"]
    df = pd.DataFrame({"s": ["b", "10", "a", "2", "b", "a"]})
    (s,) = compute_slices(df, y, p, 0.5, ["s"], {}, 1)
    assert [v["value"] for v in s["slices"]] == ["2", "10", "a", "b"]


def test_a_missing_feature_raises(scored):
    df, y, p = scored
    with pytest.raises(KeyError, match="year"):
        compute_slices(df, y, p, 0.5, ["year"], {}, 1)
    with pytest.raises(KeyError, match="income"):
        compute_slices(df, y, p, 0.5, [], {"income": [10]}, 1)
