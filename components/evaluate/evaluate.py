"""Evaluate: score the test rows with a model and summarise everything the gate and the report
need, as one JSON-ready dict (see `evaluate_model`).

- the business threshold: `decision_threshold: min_cost` picks the threshold minimising the
  expected cost of the configured cost matrix on these rows (or a fixed number);
- metrics: ROC AUC, PR AUC, log loss, Brier score; accuracy, precision, recall, F1, expected cost
  and the confusion matrix at that threshold;
- curves: ROC, precision-recall, calibration, cost by threshold, score histogram by class;
- slices: metrics per value of the configured features / per bucket, and the largest gaps;
- explanations: permutation importance and partial dependence of the top features.

Refuses, with the reason, a model artifact it cannot read and a test set it cannot score: no
rows, a missing feature or label column, a label that is not 0/1, a single class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from components.common import categories
from components.common.artifacts import load_model, read_dataset, write_json
from components.common.errors import DataError, StageError
from components.evaluate import explain, metrics, slices

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STAGE = "evaluate"


# ---------------------------------------------------------------- inputs


def parse_config(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The `evaluation` section checked by the config model (KFP hands dict parameters over as
    JSON: ints arrive as floats), as plain JSON values."""
    from pydantic import ValidationError

    from components.common.config import EvaluationConfig, describe_errors

    try:
        cfg = EvaluationConfig.model_validate(evaluation or {})
    except ValidationError as exc:
        problems = "; ".join(describe_errors(EvaluationConfig, exc))
        raise StageError(
            STAGE, f"invalid evaluation config: {problems}", subject="evaluation"
        ) from None
    return cfg.model_dump(mode="json")


def load(model_dir: str, expected_sha256: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The fitted model and its feature spec, its files checked against the train stage's digest
    (`expected_sha256`, when given) first; an error naming what is missing, changed or
    unreadable."""
    try:
        model, spec = load_model(model_dir, expected_sha256)
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


# ---------------------------------------------------------------- the evaluation


def evaluate_model(
    model: Any,
    spec: dict[str, Any],
    df: pd.DataFrame,
    cfg: dict[str, Any],
    test_path: str = "",
    with_explanations: bool = True,
) -> dict[str, Any]:
    """Score `df` with `model` and summarise it (see the module docstring). `cfg` is the parsed
    `evaluation` section."""
    features = [f["name"] for f in spec["features"]]
    label = spec["label"]
    y = check_test_set(df, features, label, test_path)
    try:  # string features: the rows' codes in the model's own mapping, never silently others
        scored = categories.for_model(df, spec["features"])
    except ValueError as exc:
        raise DataError(STAGE, f"cannot score the test set: {exc}", subject="model") from None
    p = score(model, scored[features])

    cost_fp, cost_fn = cfg["cost"]["false_positive"], cfg["cost"]["false_negative"]
    if cfg["decision_threshold"] == "min_cost":
        threshold, _ = metrics.min_cost_threshold(y, p, cost_fp, cost_fn)
        how = f"minimises the expected cost (FP {cost_fp:g}, FN {cost_fn:g})"
    else:
        threshold = float(cfg["decision_threshold"])
        how = "fixed in the config"
    slices_cfg = cfg["slices"]
    missing = [f for f in [*slices_cfg["features"], *slices_cfg["buckets"]] if f not in df]
    if missing:
        raise DataError(
            STAGE,
            f"test set lacks the slice feature(s) {missing} (evaluation.slices)",
            subject=", ".join(missing),
        )
    summary: dict[str, Any] = {
        "label": label,
        "model": {
            "algorithm": spec.get("algorithm"),
            "features": len(features),
            "degraded": spec.get("degraded") or {},
        },
        "threshold": {
            "value": threshold,
            "how": how,
            "cost": {"false_positive": cost_fp, "false_negative": cost_fn},
        },
        "metrics": metrics.compute_metrics(y, p, threshold, cost_fp, cost_fn),
        "confusion_matrix": metrics.confusion(y, p, threshold, label),
        "curves": metrics.curves(y, p, cost_fp, cost_fn),
        "slices": slices.compute_slices(
            categories.as_texts(df),  # a string feature's slices named by its texts
            y,
            p,
            threshold,
            slices_cfg["features"],
            slices_cfg["buckets"],
            slices_cfg["min_rows"],
        ),
    }
    summary["threshold"]["expected_cost"] = summary["metrics"]["expected_cost"]
    ex = cfg["explain"]
    if with_explanations and ex["enabled"]:
        categorical = {f["name"] for f in spec["features"] if f.get("kind") == "categorical"}
        summary["explain"] = explain.explain(
            lambda X: score(model, X),
            scored[features],
            y,
            categorical,
            sample_rows_n=ex["sample_rows"],
            repeats=ex["repeats"],
            top_features=ex["top_features"],
            grid_points=ex["grid_points"],
            seed=ex["seed"],
        )
    return summary


def run(
    model_dir: str,
    test_path: str,
    evaluation: dict[str, Any],
    summary_path: str | None = None,
    model_sha256: str | None = None,
) -> dict[str, Any]:
    """Evaluate the model at `model_dir` (checked against `model_sha256`, the Model artifact's
    digest) on the test rows at `test_path`; write the summary as JSON to `summary_path` (if
    given) and return it."""
    cfg = parse_config(evaluation)
    model, spec = load(model_dir, model_sha256)
    summary = evaluate_model(model, spec, read_test_set(test_path), cfg, test_path)
    summary["model"].update(model_dir=str(model_dir), test_path=str(test_path))
    if summary_path:
        write_json(summary, summary_path)
    return summary
