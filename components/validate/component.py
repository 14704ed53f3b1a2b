"""KFP wrapper of the validate stage (logic: validate.py, TFDV side: tfdv_job.py)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from components.common.images import TFDV_IMAGE


@dsl.component(base_image=TFDV_IMAGE, install_kfp_package=False)
def validate(
    data: Input[Dataset],
    data_schema: dict,
    split: dict,
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    report: Output[HTML],
):
    """Check the Dataset against the data schema with TFDV; stop the run on a blocking problem.

    Args:
        data: The ingested Dataset (Parquet).
        data_schema: config/data_schema.yaml as a dict; `{}` lets TFDV infer a schema.
        split: `feature_engineering.split` (or the whole section): the train and test windows.
        statistics: Folder: train_stats.pb / test_stats.pb (TFDV, binary), train_stats.json /
            test_stats.json (summaries), schema.json / schema.pbtxt.
        schema: Folder: schema.pbtxt (TFDV text format) and schema.json.
        anomalies: Folder: anomalies.json (every blocking and drift finding, drift per feature)
            and train_anomalies.pbtxt / test_anomalies.pbtxt (TFDV). Metadata: rows per window,
            number of blocking and drift findings, drift per feature, task figures.
        report: Self-contained HTML page: findings, drift, per-feature statistics.
    """
    from components.common.recorder import record_task
    from components.validate.validate import run

    with record_task("validate") as rec:
        meta = run(
            data.path,
            data_schema,
            split,
            statistics.path,
            schema.path,
            anomalies.path,
            report.path,
            report_uri=report.uri,
        )
        rec.rows = meta["rows"]
        rec.metrics = {"blocking": meta["blocking"], "drift": meta["drift"]}
        # the run's warnings travel with the task (records, cached metadata) to `mlpipe run`
        rec.details = {"warnings": meta["warnings"]}
    anomalies.metadata.update(meta, task=rec.to_dict())
    statistics.metadata.update(
        rows=meta["rows"],
        rows_train=meta["rows_train"],
        rows_test=meta["rows_test"],
        tfdv_version=meta["tfdv_version"],
        task=rec.to_dict(),
    )
    schema.metadata.update(source=meta["schema_source"])
    report.metadata.update(status=meta["status"], blocking=meta["blocking"], drift=meta["drift"])
