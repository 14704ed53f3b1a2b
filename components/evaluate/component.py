"""KFP wrappers of the evaluate stage: `evaluate` (pure, cached: logic in evaluate.py) and `gate`
(reads the registry's champion, never cached: logic in compare.py, gate.py, report.py)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test_data: Input[Dataset],
    evaluation: dict,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    summary: Output[Artifact],
):
    """Score the test rows with the challenger: metrics, business threshold, curves, slices and
    explanations.

    Args:
        model: Model artifact written by train (a directory: model.joblib + feature_spec.json).
        test_data: Test Dataset (Parquet) with the model's feature columns and the label.
        evaluation: The `evaluation` config section.
        metrics: Output Metrics: one scalar per metric (roc_auc, pr_auc, accuracy, precision,
            recall, f1, log_loss, brier, expected_cost, decision_threshold, positive_rate,
            predicted_positive_rate, rows); metadata also holds `task` (consumers take every
            numeric non-bool entry as a metric). Its file: the same metrics as JSON.
        classification_metrics: Output ClassificationMetrics: ROC curve (<= 200 points) and the
            confusion matrix at the decision threshold.
        summary: Output Artifact: the whole evaluation as JSON (see evaluate.py), read by gate.
    """
    from components.common.artifacts import write_json
    from components.common.recorder import record_task
    from components.evaluate.evaluate import run

    with record_task("evaluate") as rec:
        result = run(
            model.path, test_data.path, evaluation, summary.path, model.metadata.get("sha256")
        )
        rec.rows = int(result["metrics"]["rows"])
        rec.metrics = dict(result["metrics"])
    for name, value in result["metrics"].items():
        metrics.log_metric(name, value)
    metrics.metadata.update(task=rec.to_dict())
    summary.metadata.update(threshold=result["threshold"])
    classification_metrics.log_roc_curve(**result["curves"]["roc"])
    classification_metrics.log_confusion_matrix(**result["confusion_matrix"])
    # KFP keeps these in metadata only; the files must exist too, or kfp.local's cache treats
    # the artifacts as missing and never serves this task from it
    write_json(result["metrics"], metrics.path)
    write_json(
        {"roc": result["curves"]["roc"], "confusion_matrix": result["confusion_matrix"]},
        classification_metrics.path,
    )


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def gate(
    test_data: Input[Dataset],
    summary: Input[Artifact],
    logged_model: Input[Artifact],
    evaluation: dict,
    registered_model: str,
    experiment: str,
    pipeline_run: str,
    tracking_uri: str,
    blessing: Output[Artifact],
    report: Output[HTML],
) -> bool:
    """The quality gate: the challenger against absolute, slice and champion thresholds.

    Args:
        test_data: The test rows the challenger was evaluated on (the champion is scored on them).
        summary: The challenger's evaluation (evaluate's `summary`).
        logged_model: track's output: its `run_id` metadata names the MLflow run the verdict
            goes on (see compare.verdict_run).
        evaluation: The `evaluation` config section (thresholds, max_regression, slices).
        registered_model: Registered model whose `champion` is the baseline (none yet: absolute
            and slice checks only).
        experiment, pipeline_run: MLflow experiment and KFP run name: when track was cached,
            this pipeline run's own MLflow run is found or created with them.
        tracking_uri: MLflow tracking URI; "" = MLFLOW_TRACKING_URI (required on a cluster).
        blessing: Output Artifact: the verdict as JSON (blessed, mode, checks, failed_checks,
            champion_version, champion_metrics, decision_threshold, expected_cost); the same
            fields, but for checks, in its metadata, with `run_id`: the MLflow run holding the
            verdict.
        report: Output HTML: the evaluation report with champion vs challenger.

    Returns:
        True when the challenger is blessed; branch on it with
        `dsl.If(task.outputs["Output"] == True)`.
    """
    from components.common.recorder import record_task
    from components.common.runtime_env import export_tracking_uri
    from components.evaluate.compare import log_to_mlflow, run, verdict_run

    with record_task("gate") as rec:
        export_tracking_uri("gate", tracking_uri)
        verdict, challenger, champion = run(
            test_data.path, summary.path, evaluation, registered_model, blessing.path, report.path
        )
        rec.rows = int(challenger["metrics"]["rows"])  # the verdict: in the blessing's metadata
        files = {"blessing.json": blessing.path, "evaluation_report.html": report.path}
        run_id = verdict_run(experiment, pipeline_run, logged_model.metadata.get("run_id"))
        log_to_mlflow(run_id, verdict, champion, files)
    fields = {k: v for k, v in verdict.to_dict().items() if k != "checks"}
    # run_id: the pipeline run's MLflow run; `mlpipe run` records the outcome on it
    blessing.metadata.update(fields, run_id=run_id, task=rec.to_dict())
    report.metadata.update(blessed=verdict.blessed, failed_checks=verdict.failed_checks)
    return verdict.blessed
