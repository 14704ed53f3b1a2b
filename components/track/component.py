"""KFP wrapper of the track stage (logic: track.py).

Cached, unlike the other MLflow task: what it logs is a function of its inputs alone, and the
tracking URI is one of them, so a hit means "these exact results are already in that store"
(its output points to the run holding them). `mlpipe run --no-cache` forces a new run.
"""

from typing import List  # noqa: UP035 - KFP's signature parser needs typing.List

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def track(
    experiment: str,
    tracking_uri: str,
    pipeline_run: str,
    config: dict,
    data: Input[Dataset],
    statistics: Input[Artifact],
    anomalies: Input[Artifact],
    validation_report: Input[HTML],
    train_data: Input[Dataset],
    transformer: Input[Model],
    tuning: Input[List[Artifact]],  # noqa: UP006
    model: Input[Model],
    metrics: Input[Metrics],
    evaluation: Input[Artifact],
    logged_model: Output[Artifact],
):
    """Log every stage's params, metrics and reports, and the model, to MLflow.

    Args:
        experiment: MLflow experiment name.
        tracking_uri: MLflow tracking URI; empty: MLFLOW_TRACKING_URI from the environment.
        pipeline_run: The KFP run's name (finds or creates the pipeline run's MLflow run).
        config: The whole pipeline config, logged as params.
        data, statistics, anomalies, validation_report, train_data, transformer, tuning, model,
        metrics, evaluation: The outputs of ingest, validate, features, tune (one per
        algorithm), select and evaluate (its summary JSON: threshold, curves, slices, ...).
        logged_model: Metadata only: MLflow run id (`run_id`: gate records its verdict there),
            logged model URI and id, and the manifest of the logged model's files as the store
            holds them (`model_manifest`, its digest `model_manifest_sha256`): register records
            them on the version.
    """
    import os
    import shutil
    import tempfile

    from components.common.artifacts import write_json
    from components.common.recorder import record_task
    from components.track.track import run, stage

    with record_task("track") as rec, tempfile.TemporaryDirectory() as tmp:
        metrics_file = os.path.join(tmp, "metrics.json")
        write_json({k: v for k, v in metrics.metadata.items() if k != "task"}, metrics_file)
        evaluation_file = os.path.join(tmp, "evaluation.json")
        shutil.copyfile(evaluation.path, evaluation_file)
        out = run(
            experiment,
            pipeline_run,
            config,
            stages={
                "ingest": stage(data.metadata),
                "validate": stage(
                    anomalies.metadata, statistics.path, anomalies.path, validation_report.path
                ),
                "features": stage(transformer.metadata),
                **{
                    f"tune-{t.metadata.get('algorithm', i)}": stage(
                        t.metadata, t.path, with_metrics=True
                    )
                    for i, t in enumerate(tuning)
                },
                "train": stage(model.metadata),
                "evaluate": stage(metrics.metadata, evaluation_file, with_metrics=True),
            },
            model_dir=model.path,
            data_path=train_data.path,
            companions={
                "train_stats.json": os.path.join(statistics.path, "train_stats.json"),
                "schema.json": os.path.join(statistics.path, "schema.json"),
                "anomalies.json": os.path.join(anomalies.path, "anomalies.json"),
                "metrics.json": metrics_file,
            },
            tracking_uri=tracking_uri,
        )
    logged_model.metadata.update(out, task=rec.to_dict())
    # metadata-only artifact: write it as a file too (kfp.local's cache needs one to exist)
    write_json(out, logged_model.path)
