"""Tests of the evaluate stage: metrics, the business threshold, curves, slices, explanations,
bad inputs, the component.

A small real model (one-hot + logistic regression on 3,000 rows of 2015) is trained once per module
and scored on 2,000 rows of 2016.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp import dsl
from sklearn import metrics as skm

from components.common.artifacts import load_model, save_model, write_dataset
from components.common.config import REPO_ROOT, EvaluationConfig
from components.common.errors import StageError
from components.evaluate import metrics as em
from components.evaluate.evaluate import run
from tests.fixtures.models import FEATURES, LABEL, logistic, save

DATA = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
FIXED = {"decision_threshold": 0.5, "explain": {"enabled": False}}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_parquet(DATA, columns=[*FEATURES, LABEL, "year"])


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory) -> Path:
    model, spec = logistic(data[data.year == 2015].sample(3000, random_state=0))
    return save(model, spec, tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def test_frame(data) -> pd.DataFrame:
    return data[data.year == 2016].sample(2000, random_state=1)[[*FEATURES, LABEL]]


@pytest.fixture(scope="module")
def test_path(test_frame, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "test.parquet"
    write_dataset(test_frame, path)
    return path


@pytest.fixture(scope="module")
def scores(model_dir, test_frame) -> np.ndarray:
    model, _ = load_model(model_dir)
    return model.predict_proba(test_frame[FEATURES])[:, 1]


@pytest.fixture(scope="module")
def summary(model_dir, test_path, tmp_path_factory) -> tuple[dict, Path]:
    """One full evaluation with the default config (min-cost threshold, slices, explanations)."""
    out = tmp_path_factory.mktemp("out") / "summary.json"
    cfg = EvaluationConfig().model_dump(mode="json")
    return run(str(model_dir), str(test_path), cfg, str(out)), out


def write(df: pd.DataFrame, tmp_path: Path) -> str:
    path = tmp_path / "bad.parquet"
    df.to_parquet(path, index=False)
    return str(path)


# ---------------------------------------------------------------- metrics


def test_metrics_sane_and_consistent_with_sklearn(model_dir, test_path, test_frame, scores):
    m = run(str(model_dir), str(test_path), FIXED)["metrics"]
    y = test_frame[LABEL].to_numpy()
    pred = (scores >= 0.5).astype(int)

    assert 0.75 < m["roc_auc"] < 0.97
    assert m["rows"] == 2000
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, scores))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, scores))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, scores))
    assert m["positive_rate"] == pytest.approx(y.mean())
    assert m["predicted_positive_rate"] == pytest.approx(pred.mean())
    assert m["decision_threshold"] == 0.5
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    assert m["expected_cost"] == pytest.approx((fp + fn) / len(y))  # default costs 1 and 1
    assert all(isinstance(v, (int, float)) for v in m.values())


def test_fixed_threshold_moves_the_cut(model_dir, test_path):
    low = run(str(model_dir), str(test_path), {**FIXED, "decision_threshold": 0.2})["metrics"]
    high = run(str(model_dir), str(test_path), {**FIXED, "decision_threshold": 0.8})["metrics"]
    assert low["recall"] > high["recall"]
    assert low["predicted_positive_rate"] > high["predicted_positive_rate"]
    assert low["roc_auc"] == high["roc_auc"]  # threshold-free


# ---------------------------------------------------------------- the business threshold


def brute_force_cost(y, p, t, c_fp, c_fn):
    pred = p >= t
    return (c_fp * np.sum(pred & (y == 0)) + c_fn * np.sum(~pred & (y == 1))) / len(y)


def test_min_cost_threshold_beats_every_other_threshold(test_frame, scores):
    y = test_frame[LABEL].to_numpy()
    for c_fp, c_fn in [(1, 1), (1, 5), (5, 1)]:
        t, cost = em.min_cost_threshold(y, scores, c_fp, c_fn)
        assert cost == pytest.approx(brute_force_cost(y, scores, t, c_fp, c_fn))
        for other in np.linspace(0.01, 0.99, 99):
            assert cost <= brute_force_cost(y, scores, other, c_fp, c_fn) + 1e-12


def test_costlier_misses_lower_the_threshold(model_dir, test_path):
    def chosen(c_fp, c_fn):
        cfg = {**FIXED, "decision_threshold": "min_cost"}
        cfg["cost"] = {"false_positive": c_fp, "false_negative": c_fn}
        return run(str(model_dir), str(test_path), cfg)

    cheap_fn, dear_fn = chosen(5, 1), chosen(1, 5)
    assert dear_fn["threshold"]["value"] < cheap_fn["threshold"]["value"]
    assert dear_fn["metrics"]["recall"] > cheap_fn["metrics"]["recall"]
    t = dear_fn["threshold"]
    assert t["expected_cost"] == dear_fn["metrics"]["expected_cost"]
    assert t["cost"] == {"false_positive": 1, "false_negative": 5}
    assert "minimises the expected cost" in t["how"]


def test_expected_costs_count_errors_exactly():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    # t=0.5: one false positive (0.6), one false negative (0.4)
    assert em.expected_costs(y, p, np.array([0.5]), 2.0, 3.0)[0] == pytest.approx((2 + 3) / 4)
    assert em.expected_costs(y, p, np.array([0.0]), 2.0, 3.0)[0] == pytest.approx(2 * 2 / 4)


# ---------------------------------------------------------------- curves


def test_curves_have_the_kfp_shapes(summary, test_frame, scores):
    from kfp.dsl import ClassificationMetrics

    result, _ = summary
    roc, cm = result["curves"]["roc"], result["confusion_matrix"]
    assert set(roc) == {"fpr", "tpr", "threshold"}
    assert 2 < len(roc["fpr"]) == len(roc["tpr"]) == len(roc["threshold"]) <= 200
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert all(0.0 <= t <= 1.0 for t in roc["threshold"])  # sklearn's +inf is reported as 1.0
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(
        result["metrics"]["roc_auc"], abs=0.01
    )
    y = test_frame[LABEL].to_numpy()
    t = result["threshold"]["value"]
    assert cm["categories"] == ["not employed", "employed"]
    assert cm["matrix"] == skm.confusion_matrix(y, (scores >= t).astype(int)).tolist()

    artifact = ClassificationMetrics(name="cm", uri="unused")
    artifact.log_roc_curve(**roc)
    artifact.log_confusion_matrix(**cm)
    json.dumps(artifact.metadata)  # JSON-serialisable (no inf, no numpy types)


def test_roc_downsampling_keeps_endpoints_and_area():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50_000)
    p = np.clip(0.5 * y + rng.normal(0.25, 0.3, y.size), 0, 1)
    roc = em.roc_points(y, p)
    assert len(roc["fpr"]) <= 200
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(roc["threshold"]) <= 0)
    exact = skm.roc_auc_score(y, p)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(exact, abs=0.002)


def test_calibration_of_a_calibrated_model_is_the_diagonal():
    rng = np.random.default_rng(1)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    cal = em.calibration(y, p)
    assert len(cal["mean_predicted"]) == 10 and sum(cal["count"]) == p.size
    assert np.allclose(cal["mean_predicted"], cal["observed"], atol=0.01)


def test_histogram_and_cost_curve(summary):
    result, _ = summary
    hist = result["curves"]["histogram"]
    assert sum(hist["negatives"]) + sum(hist["positives"]) == 2000
    cost = result["curves"]["cost"]
    assert min(cost["expected_cost"]) >= result["threshold"]["expected_cost"] - 1e-12


# ---------------------------------------------------------------- slices


def test_slices_per_value_and_bucket_with_gaps(summary, test_frame, scores):
    result, _ = summary
    by_feature = {f["feature"]: f for f in result["slices"]}
    assert list(by_feature) == ["SEX", "RAC1P", "AGEP"]
    sex = by_feature["SEX"]
    assert [s["value"] for s in sex["slices"]] == ["1", "2"]
    assert sum(s["rows"] for s in sex["slices"]) == 2000
    y = test_frame[LABEL].to_numpy()
    women = (test_frame["SEX"] == 2).to_numpy()
    assert sex["slices"][1]["roc_auc"] == pytest.approx(skm.roc_auc_score(y[women], scores[women]))
    gap = sex["gaps"]["roc_auc"]
    aucs = [s["roc_auc"] for s in sex["slices"]]
    assert gap["gap"] == pytest.approx(max(aucs) - min(aucs))
    # small slices are shown but not judged, and never make the gap
    small = [s for s in by_feature["RAC1P"]["slices"] if s["rows"] < 200]
    assert small and not any(s["judged"] for s in small)
    judged = {s["value"] for s in by_feature["AGEP"]["slices"] if s["judged"]}
    assert {by_feature["AGEP"]["gaps"]["roc_auc"][k] for k in ("best", "worst")} <= judged
    ages = [s["value"] for s in by_feature["AGEP"]["slices"]]
    assert ages[0] == "<25" and ages[-1] == ">=65"


def test_single_class_slice_has_no_auc(model_dir, test_frame, tmp_path):
    # every man employed: AUC is undefined on that slice, the rest still computes
    frame = test_frame.copy()
    frame.loc[frame.SEX == 1, LABEL] = 1
    result = run(str(model_dir), write(frame, tmp_path), FIXED)
    (sex,) = [f for f in result["slices"] if f["feature"] == "SEX"]
    assert sex["slices"][0]["roc_auc"] is None
    assert "roc_auc" not in sex["gaps"]  # one judged slice with an AUC: no gap


def test_slice_feature_missing_from_test_set_raises(model_dir, test_path):
    cfg = {**FIXED, "slices": {"features": ["SEX", "year"], "buckets": {}}}
    with pytest.raises(StageError, match=r"lacks the slice feature\(s\) \['year'\]"):
        run(str(model_dir), str(test_path), cfg)


# ---------------------------------------------------------------- explanations


def test_permutation_importance_and_partial_dependence(summary):
    result, _ = summary
    ex = result["explain"]
    importance = ex["permutation_importance"]
    assert {r["feature"] for r in importance} == set(FEATURES)
    means = [r["mean"] for r in importance]
    assert means == sorted(means, reverse=True)
    assert importance[0]["mean"] > 0.02  # shuffling the top feature costs real AUC
    top = [r["feature"] for r in importance[:4]]
    curves = ex["partial_dependence"]
    assert [c["feature"] for c in curves] == top
    for c in curves:
        assert len(c["grid"]) == len(c["average"]) >= 2
        assert all(0 <= v <= 1 for v in c["average"])
        assert c["kind"] == ("numeric" if c["feature"] == "AGEP" else "categorical")


def test_explanations_can_be_switched_off(model_dir, test_path):
    assert "explain" not in run(str(model_dir), str(test_path), FIXED)


def test_summary_file_is_the_returned_summary(summary):
    result, path = summary
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("mutate", "words", "subject"),
    [
        (lambda df: df.drop(columns=["AGEP", "SEX"]), ["feature", "AGEP", "SEX"], "AGEP, SEX"),
        (lambda df: df.drop(columns=[LABEL]), ["label", LABEL], LABEL),
        (lambda df: df.assign(employed=1), ["one class", "ROC AUC is undefined"], LABEL),
        (lambda df: df.iloc[:0], ["no rows"], None),
        (lambda df: df.assign(employed=df[LABEL] * 2), ["must be 0/1", "[2]"], LABEL),
    ],
    ids=["missing-features", "missing-label", "single-class", "empty", "label-not-binary"],
)
def test_bad_test_set_raises(model_dir, test_frame, tmp_path, mutate, words, subject):
    path = write(mutate(test_frame.copy()), tmp_path)
    with pytest.raises(StageError) as info:
        run(str(model_dir), path, FIXED)
    assert info.value.stage == "evaluate"
    for word in words:
        assert word in str(info.value)
    assert info.value.subject == (subject or path)


def test_missing_model_raises(test_path, tmp_path):
    with pytest.raises(StageError, match=r"model artifact .*missing") as info:
        run(str(tmp_path / "nope"), str(test_path), FIXED)
    assert info.value.subject == str(tmp_path / "nope")


def test_feature_spec_without_label_raises(model_dir, test_path, tmp_path):
    model, spec = load_model(model_dir)
    save_model(model, tmp_path / "model", {k: v for k, v in spec.items() if k != "label"})
    with pytest.raises(StageError, match="feature spec needs"):
        run(str(tmp_path / "model"), str(test_path), FIXED)


def test_unscorable_rows_raise(model_dir, test_frame, tmp_path):
    path = write(test_frame.assign(AGEP="old"), tmp_path)
    with pytest.raises(StageError, match="cannot score the test set") as info:
        run(str(model_dir), path, FIXED)
    assert info.value.subject == "model"


def test_missing_test_file_raises(model_dir, tmp_path):
    with pytest.raises(StageError, match="unreadable"):
        run(str(model_dir), str(tmp_path / "absent.parquet"), FIXED)


@pytest.mark.parametrize(
    ("cfg", "words"),
    [
        ({"thresholds": {"roc_auc": 1.5}}, "outside [0, 1]"),
        ({"thresholds": {"auc": 0.5}}, "thresholds.auc"),
        ({"decision_threshold": 1.5}, "decision_threshold"),
        ({"cost": {"false_positive": 0, "false_negative": 0}}, "must cost > 0"),
        ({"cost": {"false_positive": -1}}, "false_positive"),
        ({"slices": {"buckets": {"AGEP": [30, 20]}}}, "must increase"),
        ({"max_regression": {"roc_auc": -0.1}}, "max_regression"),
    ],
)
def test_bad_config_raises(model_dir, test_path, cfg, words):
    with pytest.raises(StageError, match="invalid evaluation config") as info:
        run(str(model_dir), str(test_path), cfg)
    assert words in str(info.value)
    assert info.value.subject == "evaluation"


# ---------------------------------------------------------------- the KFP components


def test_components_compile_with_typed_artifacts(tmp_path):
    import yaml
    from kfp import compiler

    from components.evaluate.component import evaluate, gate

    def outputs_of(component, name):
        compiler.Compiler().compile(component, str(tmp_path / f"{name}.yaml"))
        spec = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
        return spec["root"]["outputDefinitions"]

    outputs = outputs_of(evaluate, "evaluate")
    assert "parameters" not in outputs
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs["artifacts"].items()} == {
        "metrics": "system.Metrics",
        "classification_metrics": "system.ClassificationMetrics",
        "summary": "system.Artifact",
    }
    outputs = outputs_of(gate, "gate")
    assert outputs["parameters"] == {"Output": {"parameterType": "BOOLEAN"}}
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs["artifacts"].items()} == {
        "blessing": "system.Artifact",
        "report": "system.HTML",
    }


@pytest.mark.integration
def test_evaluate_component_runs_under_kfp_local(model_dir, test_path, tmp_path):
    from kfp import local

    from components.evaluate.component import evaluate

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))

    @dsl.pipeline
    def only_evaluate(model_uri: str, data_uri: str, evaluation: dict):
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model)
        data = dsl.importer(artifact_uri=data_uri, artifact_class=dsl.Dataset)
        evaluate(model=model.output, test_data=data.output, evaluation=evaluation)

    only_evaluate(model_uri=str(model_dir), data_uri=str(test_path), evaluation=FIXED)
    (summary_file,) = (tmp_path / "root").rglob("evaluate/summary")
    summary = json.loads(summary_file.read_text())
    assert 0.75 < summary["metrics"]["roc_auc"] < 0.97
    # every output has a file: kfp.local's cache treats an artifact without one as missing
    for name in ("metrics", "classification_metrics", "summary"):
        (found,) = (tmp_path / "root").rglob(f"evaluate/{name}")
        assert found.is_file(), name
    (executor_output,) = (tmp_path / "root").rglob("evaluate/executor_output.json")
    out = json.loads(executor_output.read_text())
    meta = out["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert meta["roc_auc"] == pytest.approx(summary["metrics"]["roc_auc"])
    assert meta["decision_threshold"] == 0.5 and "expected_cost" in meta
    assert meta["task"]["status"] == "succeeded" and meta["task"]["rows"] == 2000
    cm = out["artifacts"]["classification_metrics"]["artifacts"][0]["metadata"]
    assert len(cm["confidenceMetrics"]) <= 200 and "confusionMatrix" in cm
