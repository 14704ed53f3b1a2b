"""KFP wrappers of the monitor stage (logic: batch.py, monitor.py, actions.py; TFDV side:
stats_job.py). Five tasks, so each runs in the image that has what it needs:

load_batch (pure) -> champion_reference (registry, never cached) -> batch_statistics (TFDV image,
pure) -> assess (drift, decay, decision, report; never cached) -> act (alerts, retraining trigger;
never cached).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.common.images import PIPELINE_IMAGE, TFDV_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def load_batch(
    source: str,
    source_kind: str,
    labels: str,
    label_column: str,
    source_digest: str,
    batch: Output[Dataset],
    delimiter: str = ",",
    labels_column: str = "",
):
    """Read the monitored rows into a Dataset.

    Args:
        source: A batch file (Parquet, CSV, JSON lines) or the model server's request log.
        source_kind: `batch` or `request_log`.
        labels: For a request log: a file of late labels (request_id, the label column,
            optional row); "".
        label_column: The schema's label name.
        source_digest: Content digest of the source (the cache key; set by the CLI).
        batch: Output Dataset (Parquet); metadata: rows, columns, sha256, source, counts.
        delimiter: A CSV file's field separator (data_ingestion.delimiter).
        labels_column: The labels file's label column ("": named like the schema's label).
    """
    from components.common.artifacts import write_dataset
    from components.common.recorder import record_task
    from components.monitor.batch import attach_labels, read_request_log, read_table

    with record_task("load_batch") as rec:
        counts = {}
        if source_kind == "request_log":
            df, counts = read_request_log(source)
            if labels:
                df = attach_labels(df, labels, label_column, delimiter, labels_column)
        else:
            df = read_table(source, delimiter)
        meta = write_dataset(df, batch.path)
        rec.rows = len(df)
    batch.metadata.update(meta, source=source, kind=source_kind, counts=counts, task=rec.to_dict())


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def champion_reference(registered_model: str, tracking_uri: str, reference: Output[Artifact]):
    """Fetch the champion's training statistics, TFDV schema and feature spec from the registry.

    Args:
        registered_model: The registered model name.
        tracking_uri: MLflow tracking URI ("" = the environment's).
        reference: Output folder: train_stats.json, schema.json, feature_spec.json,
            champion.json (version, features, label, evaluation metrics).
    """
    from components.common.recorder import record_task
    from components.monitor.monitor import fetch_reference

    with record_task("champion_reference") as rec:
        meta = fetch_reference(registered_model, reference.path, tracking_uri)
    reference.metadata.update(version=meta["version"], task=rec.to_dict())


@dsl.component(base_image=TFDV_IMAGE, install_kfp_package=False)
def batch_statistics(
    batch: Input[Dataset], reference: Input[Artifact], statistics: Output[Artifact]
):
    """TFDV statistics of the batch with the champion's schema, and its blocking anomalies.

    Args:
        batch: The monitored rows.
        reference: champion_reference's folder.
        statistics: Output folder: batch_stats.pb (TFDV), batch_stats.json, anomalies.json.
    """
    from components.common.recorder import record_task
    from components.monitor.monitor import compute_statistics

    with record_task("batch_statistics") as rec:
        anomalies = compute_statistics(batch.path, reference.path, statistics.path)
        rec.rows = int(anomalies["rows"])
    statistics.metadata.update(anomalies=len(anomalies["findings"]), task=rec.to_dict())


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def assess(
    batch: Input[Dataset],
    reference: Input[Artifact],
    statistics: Input[Artifact],
    data_schema: dict,
    monitoring: dict,
    cost: dict,
    tracking_uri: str,
    result: Output[Artifact],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """Drift per feature, decay on labels, the decision (none | alert | retrain), the report.

    Args:
        batch: The monitored rows (labels optional).
        reference: champion_reference's folder.
        statistics: batch_statistics' folder.
        data_schema: config/data_schema.yaml as a dict (drift metric and threshold per feature).
        monitoring: The `monitoring` config section.
        cost: `evaluation.cost` (the business cost of a false positive / negative).
        tracking_uri: MLflow tracking URI (to load the champion when labels are present).
        result: Output JSON: drift, decay, anomalies, decision with reasons, batch digest.
        report: Output HTML drift report with a plot per feature.
        metrics: Output Metrics: drift.<feature>, drifted_features, anomalies, roc_auc,
            expected_cost, decision_code (0 none, 1 alert, 2 retrain).
    """
    from components.common.artifacts import write_json
    from components.common.config import DataSchema
    from components.common.recorder import record_task
    from components.monitor.monitor import assess as run_assess
    from components.monitor.monitor import metrics as scalar_metrics

    with record_task("assess") as rec:
        out = run_assess(
            batch.path,
            reference.path,
            statistics.path,
            DataSchema.model_validate(data_schema),
            monitoring,
            cost,
            result.path,
            report.path,
            {"batch": batch.metadata.get("source", ""), "report": report.path},
            tracking_uri,
        )
        rec.rows = out["rows"]
        rec.details = {"decision": out["decision"]["decision"]}
    values = scalar_metrics(out)
    for name, value in values.items():
        metrics.log_metric(name, value)
    write_json(values, metrics.path)  # kfp.local's cache needs the file
    result.metadata.update(decision=out["decision"]["decision"], task=rec.to_dict())
    report.metadata.update(decision=out["decision"]["decision"])


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def act(
    result: Input[Artifact],
    monitoring: dict,
    retrain_mode: str,
    retraining: dict,
    actions: Output[Artifact],
):
    """Alert (one per incident, deduplicated) and claim the retraining trigger (one per batch).

    Args:
        result: assess' result.
        monitoring: The `monitoring` config section (webhook retries; the URL comes from the
            environment variable it names, never from a parameter).
        retrain_mode: `local` (the CLI runs the training pipeline after this run), `kfp`
            (create a KFP run of the training pipeline from here; KFP_HOST etc. from the pod)
            or `none` (decide and alert only).
        retraining: For `kfp`: the training pipeline's `pipeline_id` and `version_id` (uploaded
            by `mlpipe submit|schedule`), `experiment`, `service_account`, and the submitted
            `settings` (JSON), from which the retraining run's windows and every parameter are
            derived.
        actions: Output JSON: alert status, webhook delivery, retraining trigger status.
    """
    from components.common.alerts import AlertSink
    from components.common.artifacts import read_json, write_json
    from components.common.config import MonitoringConfig
    from components.common.recorder import record_task
    from components.monitor.actions import act as run_act

    with record_task("act") as rec:
        out = read_json(result.path)
        sink = AlertSink.from_config(MonitoringConfig.model_validate(monitoring))
        done = run_act(out, sink, retrain_enabled=retrain_mode != "none")
        if retrain_mode == "kfp" and done["retrain"]["status"] == "claimed":
            from components.monitor.actions import start_retraining_on_kfp

            done["retrain"]["run"] = start_retraining_on_kfp(out, retraining)
        rec.details = done
    write_json(done, actions.path)
    actions.metadata.update(
        decision=done["decision"], retrain=done["retrain"]["status"], task=rec.to_dict()
    )
