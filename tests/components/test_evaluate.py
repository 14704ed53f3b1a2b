"""Tests of the evaluate stage: metrics, ROC/confusion shapes, gate, report, bad inputs, component.

A small real model (one-hot + logistic regression on 3,000 rows of 2015) is trained once per module
and scored on 2,000 rows of 2016.
"""

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp import dsl
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from components.common.artifacts import load_model, save_model, write_dataset
from components.common.config import REPO_ROOT
from components.common.errors import StageError
from components.common.images import PIPELINE_IMAGE
from components.evaluate import evaluate as ev
from components.evaluate.evaluate import Check, roc_points, run

DATA = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
NUMERIC = ["AGEP"]
CATEGORICAL = [
    *("SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL"),
    *("ANC", "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P"),
]
FEATURES = NUMERIC + CATEGORICAL
LABEL = "employed"
LENIENT = {"decision_threshold": 0.5, "thresholds": {"roc_auc": 0.7, "accuracy": 0.7}}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_parquet(DATA, columns=[*FEATURES, LABEL, "year"])


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory) -> Path:
    train = data[data.year == 2015].sample(3000, random_state=0)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), NUMERIC),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    ).fit(train[FEATURES], train[LABEL])
    spec = {
        "features": [
            {"name": n, "kind": "numeric" if n in NUMERIC else "categorical", "dtype": "int"}
            for n in FEATURES
        ],
        "label": LABEL,
        "algorithm": "logistic_regression",
    }
    path = tmp_path_factory.mktemp("model") / "model"
    save_model(model, path, spec)
    return path


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
def failed_run(model_dir, test_path, tmp_path_factory):
    """One full run with a gate that cannot pass, writing both files."""
    out = tmp_path_factory.mktemp("out")
    cfg = {"decision_threshold": 0.5, "thresholds": {"roc_auc": 0.99, "accuracy": 0.5}}
    result = run(
        str(model_dir), str(test_path), cfg, str(out / "metrics.json"), str(out / "report")
    )
    return result, out


def write(df: pd.DataFrame, tmp_path: Path) -> str:
    path = tmp_path / "bad.parquet"
    df.to_parquet(path, index=False)
    return str(path)


# ---------------------------------------------------------------- metrics


def test_metrics_sane_and_consistent_with_sklearn(model_dir, test_path, test_frame, scores):
    result = run(str(model_dir), str(test_path), LENIENT)
    m = result.metrics
    y = test_frame[LABEL].to_numpy()
    pred = (scores >= 0.5).astype(int)

    assert 0.75 < m["roc_auc"] < 0.97
    assert 0.6 < m["accuracy"] < 0.95
    assert m["rows"] == result.rows == 2000
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, scores))
    assert m["positive_rate"] == pytest.approx(y.mean())
    assert m["predicted_positive_rate"] == pytest.approx(pred.mean())
    assert all(isinstance(v, (int, float)) for v in m.values())


def test_decision_threshold_moves_the_cut(model_dir, test_path):
    low = run(str(model_dir), str(test_path), {**LENIENT, "decision_threshold": 0.2}).metrics
    high = run(str(model_dir), str(test_path), {**LENIENT, "decision_threshold": 0.8}).metrics
    assert low["recall"] > high["recall"]
    assert low["predicted_positive_rate"] > high["predicted_positive_rate"]
    assert low["roc_auc"] == high["roc_auc"]  # threshold-free


def test_roc_and_confusion_have_the_kfp_shapes(failed_run, test_frame, scores):
    from kfp.dsl import ClassificationMetrics

    result, _ = failed_run
    roc, cm = result.roc, result.confusion_matrix
    assert set(roc) == {"fpr", "tpr", "threshold"}
    assert 2 < len(roc["fpr"]) == len(roc["tpr"]) == len(roc["threshold"]) <= 200
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    assert all(0.0 <= t <= 1.0 for t in roc["threshold"])  # sklearn's +inf is reported as 1.0
    # area of the downsampled curve is close to the exact AUC
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(
        result.metrics["roc_auc"], abs=0.01
    )

    y = test_frame[LABEL].to_numpy()
    assert cm["categories"] == ["not employed", "employed"]
    assert cm["matrix"] == skm.confusion_matrix(y, (scores >= 0.5).astype(int)).tolist()
    assert sum(map(sum, cm["matrix"])) == 2000

    artifact = ClassificationMetrics(name="cm", uri="unused")
    artifact.log_roc_curve(**roc)
    artifact.log_confusion_matrix(**cm)
    assert len(artifact.metadata["confidenceMetrics"]) == len(roc["fpr"])
    json.dumps(artifact.metadata)  # JSON-serialisable (no inf, no numpy types)


def test_roc_downsampling_keeps_endpoints_and_order():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50_000)
    p = np.clip(0.5 * y + rng.normal(0.25, 0.3, y.size), 0, 1)
    roc = roc_points(y, p)
    assert len(roc["fpr"]) <= 200
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(roc["threshold"]) <= 0)
    exact = skm.roc_auc_score(y, p)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(exact, abs=0.002)


# ---------------------------------------------------------------- gate


def test_gate_passes(model_dir, test_path):
    result = run(str(model_dir), str(test_path), LENIENT)
    assert result.passed is True
    assert result.failed_checks == []
    assert [c.metric for c in result.checks] == ["roc_auc", "accuracy"]


def test_gate_fails_naming_metric_and_figures(failed_run):
    result, _ = failed_run
    auc = result.metrics["roc_auc"]
    assert result.passed is False
    assert result.failed_checks == [f"roc_auc {auc:.3f} < 0.99"]  # accuracy >= 0.5 passed
    assert [c.passed for c in result.checks] == [False, True]


def test_no_thresholds_passes(model_dir, test_path):
    result = run(str(model_dir), str(test_path), {"decision_threshold": 0.5, "thresholds": {}})
    assert result.passed and result.checks == []


def test_check_figures_agree_with_verdict():
    assert Check("roc_auc", 0.712, 0.85).describe() == "roc_auc 0.712 < 0.85"
    assert Check("roc_auc", 0.84996, 0.85).describe() == "roc_auc 0.84996 < 0.85"
    assert Check("f1", 0.85, 0.85).describe() == "f1 0.850 >= 0.85"


# ---------------------------------------------------------------- outputs


def test_report_is_self_contained_with_plots_and_failed_check(failed_run):
    result, out = failed_run
    text = (out / "report").read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("src='data:image/png;base64,") == 3  # ROC, confusion matrix, histogram
    for title in ("ROC curve", "Confusion matrix", "Score histogram by class"):
        assert title in text
    assert "Gate: FAILED" in text
    assert html.escape(result.failed_checks[0]) in text
    for metric in ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "positive_rate"):
        assert f"<td>{metric}</td>" in text
    lowered = text.lower()
    assert "<script" not in lowered and "<link" not in lowered and "http" not in lowered


def test_metrics_json_holds_the_summary(failed_run):
    result, out = failed_run
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["passed"] is False
    assert summary["failed_checks"] == result.failed_checks
    assert summary["metrics"]["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert summary["model"]["algorithm"] == "logistic_regression"


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
        run(str(model_dir), path, LENIENT)
    assert info.value.stage == "evaluate"
    for word in words:
        assert word in str(info.value)
    assert info.value.subject == (subject or path)


def test_missing_model_raises(test_path, tmp_path):
    with pytest.raises(StageError, match=r"model artifact .*missing") as info:
        run(str(tmp_path / "nope"), str(test_path), LENIENT)
    assert info.value.subject == str(tmp_path / "nope")


def test_feature_spec_without_label_raises(model_dir, test_path, tmp_path):
    model, spec = load_model(model_dir)
    save_model(model, tmp_path / "model", {k: v for k, v in spec.items() if k != "label"})
    with pytest.raises(StageError, match="feature spec needs"):
        run(str(tmp_path / "model"), str(test_path), LENIENT)


def test_unscorable_rows_raise(model_dir, test_frame, tmp_path):
    path = write(test_frame.assign(AGEP="old"), tmp_path)
    with pytest.raises(StageError, match="cannot score the test set") as info:
        run(str(model_dir), path, LENIENT)
    assert info.value.subject == "model"


def test_missing_test_file_raises(model_dir, tmp_path):
    with pytest.raises(StageError, match="unreadable"):
        run(str(model_dir), str(tmp_path / "absent.parquet"), LENIENT)


def test_bad_config_raises(model_dir, test_path):
    with pytest.raises(StageError, match="thresholds") as info:
        run(str(model_dir), str(test_path), {"thresholds": {"log_loss": 0.5}})
    assert info.value.subject == "evaluation"
    with pytest.raises(StageError, match="decision_threshold"):
        run(str(model_dir), str(test_path), {"decision_threshold": 1.5})


def test_gate_rejects_unknown_metric():
    with pytest.raises(StageError, match="cannot gate on 'log_loss'"):
        ev.gate({"log_loss": 0.4}, {"log_loss": 0.5})


# ---------------------------------------------------------------- the KFP component


def test_component_compiles_with_artifacts_and_bool(tmp_path):
    import yaml
    from kfp import compiler

    from components.evaluate.component import evaluate

    compiler.Compiler().compile(evaluate, str(tmp_path / "evaluate.yaml"))
    spec = yaml.safe_load((tmp_path / "evaluate.yaml").read_text())
    outputs = spec["root"]["outputDefinitions"]
    assert outputs["parameters"] == {"Output": {"parameterType": "BOOLEAN"}}
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs["artifacts"].items()} == {
        "metrics": "system.Metrics",
        "classification_metrics": "system.ClassificationMetrics",
        "report": "system.HTML",
    }

    @dsl.pipeline
    def branch(model_uri: str, data_uri: str):
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model)
        data = dsl.importer(artifact_uri=data_uri, artifact_class=dsl.Dataset)
        task = evaluate(model=model.output, test_data=data.output, evaluation=LENIENT)
        with dsl.If(task.outputs["Output"] == True):  # noqa: E712  (KFP condition syntax)
            touch(path="unused")

    compiler.Compiler().compile(branch, str(tmp_path / "branch.yaml"))


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def touch(path: str):
    """Test helper: record that a branch ran."""
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).touch()


@pytest.mark.integration
@pytest.mark.parametrize("min_auc", [0.7, 0.99], ids=["pass", "fail"])
def test_component_runs_under_kfp_local(model_dir, test_path, tmp_path, min_auc):
    from kfp import local

    from components.evaluate.component import evaluate

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    marks = tmp_path / "marks"

    @dsl.pipeline
    def gate_demo(model_uri: str, data_uri: str, evaluation: dict) -> bool:
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model)
        data = dsl.importer(artifact_uri=data_uri, artifact_class=dsl.Dataset)
        task = evaluate(model=model.output, test_data=data.output, evaluation=evaluation)
        with dsl.If(task.outputs["Output"] == True):  # noqa: E712
            touch(path=str(marks / "passed"))
        with dsl.Else():
            touch(path=str(marks / "failed"))
        return task.outputs["Output"]

    cfg = {"decision_threshold": 0.5, "thresholds": {"roc_auc": min_auc}}
    run_task = gate_demo(model_uri=str(model_dir), data_uri=str(test_path), evaluation=cfg)
    passed = min_auc < 0.9
    assert run_task.output is passed
    assert (marks / ("passed" if passed else "failed")).exists()
    assert not (marks / ("failed" if passed else "passed")).exists()

    (report,) = (tmp_path / "root").rglob("evaluate/report")
    text = report.read_text()
    assert text.count("data:image/png;base64,") == 3
    (metrics_file,) = (tmp_path / "root").rglob("evaluate/metrics")
    summary = json.loads(metrics_file.read_text())
    assert summary["passed"] is passed
    assert 0.75 < summary["metrics"]["roc_auc"] < 0.97
    if not passed:
        assert summary["failed_checks"][0].startswith("roc_auc ")
        assert "Gate: FAILED" in text

    (executor_output,) = (tmp_path / "root").rglob("evaluate/executor_output.json")
    out = json.loads(executor_output.read_text())
    assert out["parameterValues"]["Output"] is passed
    meta = out["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert meta["roc_auc"] == pytest.approx(summary["metrics"]["roc_auc"])
    assert meta["failed_checks"] == summary["failed_checks"]
    assert meta["task"]["status"] == "succeeded" and meta["task"]["rows"] == 2000
    cm = out["artifacts"]["classification_metrics"]["artifacts"][0]["metadata"]
    assert len(cm["confidenceMetrics"]) <= 200 and "confusionMatrix" in cm
