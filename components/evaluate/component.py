"""KFP wrapper of the evaluate stage (logic: evaluate.py, report: report.py)."""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    test_data: Input[Dataset],
    evaluation: dict,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
) -> bool:
    """Score the test set, apply the quality gate and write the evaluation report.

    Args:
        model: Model artifact written by train (a directory: model.joblib + feature_spec.json).
        test_data: Test Dataset (Parquet) with the model's feature columns and the label.
        evaluation: The `evaluation` config section (decision_threshold, thresholds).
        metrics: Output Metrics: one scalar per metric (roc_auc, accuracy, precision, recall, f1,
            log_loss, positive_rate, predicted_positive_rate, rows); metadata also holds `passed`,
            `failed_checks` and `task` (no other numbers: consumers take every numeric non-bool
            entry as a metric). Its file is the full summary as JSON.
        classification_metrics: Output ClassificationMetrics: ROC curve (<= 200 points) and the
            confusion matrix at the decision threshold.
        report: Output HTML: self-contained report (metrics, gate, ROC, confusion matrix,
            score histogram by class). Metadata: passed, failed_checks, decision_threshold.

    Returns:
        True when every configured threshold is met; branch on it with
        `dsl.If(task.outputs["Output"] == True)`.
    """
    from components.common.artifacts import write_json
    from components.common.recorder import record_task
    from components.evaluate.evaluate import run

    with record_task("evaluate") as rec:
        result = run(model.path, test_data.path, evaluation, metrics.path, report.path)
        rec.rows = result.rows
        rec.metrics = dict(result.metrics)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    metrics.metadata.update(
        passed=result.passed,
        failed_checks=result.failed_checks,
        task=rec.to_dict(),
    )
    classification_metrics.log_roc_curve(**result.roc)
    classification_metrics.log_confusion_matrix(**result.confusion_matrix)
    # KFP keeps these in metadata only; the file must exist too, or kfp.local's cache treats the
    # artifact as missing and never serves this task from it
    write_json(
        {"roc": result.roc, "confusion_matrix": result.confusion_matrix},
        classification_metrics.path,
    )
    report.metadata.update(
        passed=result.passed,
        failed_checks=result.failed_checks,
        decision_threshold=result.decision_threshold,
    )
    return result.passed
