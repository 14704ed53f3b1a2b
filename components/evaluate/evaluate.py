"""Evaluate: score the test set with the trained model, apply the quality gate, write a report.

Computes ROC AUC, accuracy, precision, recall, F1 (at `decision_threshold`), log loss and the
positive rates; the ROC curve (at most MAX_ROC_POINTS points) and the confusion matrix in the
shapes KFP's `ClassificationMetrics.log_roc_curve` / `log_confusion_matrix` take; and the gate:
every metric in `evaluation.thresholds` must reach its minimum. Refuses, with the reason, a model
artifact it cannot read and a test set it cannot score: no rows, a missing feature or label column,
a label that is not 0/1, a single class (ROC AUC is undefined).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from components.common.artifacts import load_model, read_dataset, write_json, write_text
from components.common.errors import DataError, StageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STAGE = "evaluate"
MAX_ROC_POINTS = 200
GATE_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")  # higher is better


@dataclass(frozen=True)
class Check:
    """One gate check: `metric` must be >= `minimum`."""

    metric: str
    value: float
    minimum: float

    @property
    def passed(self) -> bool:
        return self.value >= self.minimum

    def describe(self) -> str:
        """E.g. "roc_auc 0.712 < 0.85"; enough decimals that the figures agree with the verdict."""
        op = ">=" if self.passed else "<"
        return (
            f"{self.metric} {_figure(self.value, self.minimum, self.passed)} {op} {self.minimum:g}"
        )


@dataclass
class Evaluation:
    """What `run` found. `roc` and `confusion_matrix` are keyword arguments of the KFP loggers."""

    label: str
    decision_threshold: float
    metrics: dict[str, float]
    checks: list[Check]
    roc: dict[str, list[float]]  # fpr, tpr, threshold
    confusion_matrix: dict[str, list]  # categories, matrix (rows: actual, columns: predicted)
    model_info: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [c.describe() for c in self.checks if not c.passed]

    @property
    def rows(self) -> int:
        return int(self.metrics["rows"])

    def summary(self) -> dict[str, Any]:
        """Everything as JSON-ready values."""
        return {
            "passed": self.passed,
            "failed_checks": self.failed_checks,
            "checks": [
                {"metric": c.metric, "value": c.value, "minimum": c.minimum, "passed": c.passed}
                for c in self.checks
            ],
            "metrics": self.metrics,
            "decision_threshold": self.decision_threshold,
            "label": self.label,
            "roc": self.roc,
            "confusion_matrix": self.confusion_matrix,
            "model": self.model_info,
        }


# ---------------------------------------------------------------- inputs


def parse_config(evaluation: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """(decision_threshold, thresholds) of the `evaluation` section, checked by the config model."""
    from pydantic import ValidationError

    from components.common.config import EvaluationConfig

    try:
        cfg = EvaluationConfig.model_validate(evaluation or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise StageError(
            STAGE, f"invalid evaluation config: {problems}", subject="evaluation"
        ) from None
    return cfg.decision_threshold, dict(cfg.thresholds)


def load(model_dir: str) -> tuple[Any, dict[str, Any]]:
    """The fitted model and its feature spec; an error naming what is missing or unreadable."""
    try:
        model, spec = load_model(model_dir)
    except FileNotFoundError as exc:
        raise StageError(
            STAGE, f"model artifact {model_dir}: missing {exc.filename}", subject=model_dir
        ) from exc
    except Exception as exc:  # joblib/pickle/json errors have no common base
        raise StageError(
            STAGE, f"model artifact {model_dir}: unreadable: {exc}", subject=model_dir
        ) from exc
    features = spec.get("features") if isinstance(spec, dict) else None
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, dict) and f.get("name") for f in features)
        or not spec.get("label")
    ):
        raise StageError(
            STAGE,
            f"model artifact {model_dir}: the feature spec needs `features` (each with a "
            "`name`) and `label`",
            subject=model_dir,
        )
    if not hasattr(model, "predict_proba"):
        raise StageError(
            STAGE,
            f"model artifact {model_dir}: {type(model).__name__} has no predict_proba",
            subject=model_dir,
        )
    return model, spec


def read_test_set(test_path: str) -> pd.DataFrame:
    try:
        return read_dataset(test_path)
    except Exception as exc:  # pyarrow raises OSError or ArrowInvalid
        raise DataError(
            STAGE, f"test set {test_path}: unreadable: {exc}", subject=test_path
        ) from exc


def check_test_set(df: pd.DataFrame, features: list[str], label: str, test_path: str) -> np.ndarray:
    """The 0/1 labels of a test set the model can be scored on; an error otherwise."""
    if len(df) == 0:
        raise DataError(STAGE, f"test set {test_path} has no rows", subject=test_path)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataError(
            STAGE,
            f"test set lacks {len(missing)} feature column(s) the model needs: "
            + ", ".join(missing),
            subject=", ".join(missing),
        )
    if label not in df.columns:
        raise DataError(STAGE, f"test set lacks the label column {label!r}", subject=label)
    y = df[label]
    if y.isna().any():
        raise DataError(
            STAGE, f"label {label!r} is missing in {int(y.isna().sum())} row(s)", subject=label
        )
    bad = sorted(set(y.unique().tolist()) - {0, 1}, key=str)
    if bad:
        raise DataError(STAGE, f"label {label!r} must be 0/1, found {bad[:5]}", subject=label)
    y = y.astype(int).to_numpy()
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(
            STAGE,
            f"test set has only one class ({label}={classes[0]} in all {len(y)} rows): "
            "ROC AUC is undefined",
            subject=label,
        )
    return y


def score(model: Any, X: pd.DataFrame) -> np.ndarray:
    """P(label = 1) for each row."""
    try:
        proba = np.asarray(model.predict_proba(X))
    except Exception as exc:
        raise StageError(
            STAGE, f"the model cannot score the test set: {exc}", subject="model"
        ) from exc
    classes = list(getattr(model, "classes_", [0, 1]))
    column = classes.index(1) if 1 in classes else proba.shape[1] - 1
    p = proba[:, column].astype(float)
    if not np.all(np.isfinite(p)):
        raise StageError(
            STAGE,
            f"the model returned {int((~np.isfinite(p)).sum())} non-finite scores",
            subject="model",
        )
    return p


# ---------------------------------------------------------------- metrics


def compute_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn import metrics as skm

    pred = (p >= threshold).astype(int)
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "positive_rate": float(y.mean()),
        "predicted_positive_rate": float(pred.mean()),
        "rows": len(y),
    }


def roc_points(y: np.ndarray, p: np.ndarray, max_points: int = MAX_ROC_POINTS) -> dict[str, list]:
    """The ROC curve, at most `max_points` points spread evenly along the curve's length.

    sklearn's first threshold is +inf (no row predicted positive); it is reported as 1.0 so the
    curve survives JSON.
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    thr = np.minimum(thr, 1.0)
    if len(fpr) > max_points:
        length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(fpr), np.diff(tpr)))])
        targets = np.linspace(0.0, length[-1], max_points)
        idx = np.unique(np.clip(np.searchsorted(length, targets), 0, len(fpr) - 1))
        idx = np.unique(np.concatenate([[0], idx, [len(fpr) - 1]]))[:max_points]
        idx[-1] = len(fpr) - 1
        fpr, tpr, thr = fpr[idx], tpr[idx], thr[idx]
    return {
        "fpr": [float(v) for v in fpr],
        "tpr": [float(v) for v in tpr],
        "threshold": [float(v) for v in thr],
    }


def confusion(y: np.ndarray, p: np.ndarray, threshold: float, label: str) -> dict[str, list]:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1])
    return {"categories": [f"not {label}", label], "matrix": matrix.tolist()}


def gate(metrics: dict[str, float], thresholds: dict[str, float]) -> list[Check]:
    checks = []
    for metric, minimum in thresholds.items():
        if metric not in GATE_METRICS:
            raise StageError(
                STAGE,
                f"cannot gate on {metric!r}: choose from {list(GATE_METRICS)}",
                subject=metric,
            )
        checks.append(Check(metric, float(metrics[metric]), float(minimum)))
    return checks


def _figure(value: float, minimum: float, passed: bool) -> str:
    """`value` with 3 decimals, or more when 3 would make it look on the wrong side of `minimum`."""
    for decimals in range(3, 10):
        shown = round(value, decimals)
        if (shown >= minimum) == passed:
            return f"{value:.{decimals}f}"
    return repr(value)


# ---------------------------------------------------------------- the stage


def run(
    model_dir: str,
    test_path: str,
    evaluation: dict[str, Any],
    metrics_path: str | None = None,
    report_path: str | None = None,
) -> Evaluation:
    """Evaluate the model at `model_dir` on the test set at `test_path`.

    Writes the summary as JSON to `metrics_path` and the HTML report to `report_path` (each if
    given) and returns the Evaluation; a failed gate is a result (`passed` False), not an error.
    """
    threshold, thresholds = parse_config(evaluation)
    model, spec = load(model_dir)
    features = [f["name"] for f in spec["features"]]
    label = spec["label"]

    df = read_test_set(test_path)
    y = check_test_set(df, features, label, test_path)
    p = score(model, df[features])

    metrics = compute_metrics(y, p, threshold)
    result = Evaluation(
        label=label,
        decision_threshold=threshold,
        metrics=metrics,
        checks=gate(metrics, thresholds),
        roc=roc_points(y, p),
        confusion_matrix=confusion(y, p, threshold, label),
        model_info={
            "algorithm": spec.get("algorithm"),
            "features": len(features),
            "model_dir": str(model_dir),
            "test_path": str(test_path),
        },
    )
    if metrics_path:
        write_json(result.summary(), metrics_path)
    if report_path:
        from components.evaluate.report import render

        write_text(render(result, y, p), report_path)
    return result
