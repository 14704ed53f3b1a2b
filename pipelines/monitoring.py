"""The monitoring pipeline: load_batch → champion_reference → batch_statistics (TFDV) → assess
(drift, decay, decision, drift report) → act (one alert per incident, the retraining trigger).

`build_monitoring_pipeline(settings)` returns the KFP pipeline with the config's values as
parameter defaults; `mlpipe compile --pipeline monitoring` writes its spec, `mlpipe schedule
--pipeline monitoring` makes it a KFP recurring run, `mlpipe monitor` runs it with kfp.local
(`exit_handler=False`: the variant with outputs; see pipelines/training.py).

On a cluster a `retrain` decision starts a run of the training pipeline version named in the
`retraining` parameter, which `mlpipe submit|schedule --pipeline monitoring` fill in after
uploading the training pipeline compiled from the same config.
"""

from pathlib import Path
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Metrics

from components.common.config import Settings
from components.common.pipeline_params import monitoring_parameters
from components.monitor.component import (
    act,
    assess,
    batch_statistics,
    champion_reference,
    load_batch,
)
from pipelines.platform import configure_task, with_failure_alert

PIPELINE_NAME = "mlpipe-monitoring"

# (cpu request, cpu limit, memory request, memory limit): statistics of the whole bundled data
# as one batch peak at ~2 GB in the TFDV job (benchmarks/monitoring_throughput.py)
RESOURCES: dict[str, tuple[str, str, str, str]] = {
    "load_batch": ("250m", "1", "512M", "2G"),
    "champion_reference": ("250m", "500m", "512M", "1G"),
    "batch_statistics": ("1", "2", "2G", "4G"),
    "assess": ("500m", "1", "1G", "2G"),
    "act": ("250m", "500m", "512M", "1G"),
}
# reading the registry's champion, alerting and triggering are side effects
SIDE_EFFECTS = {"champion_reference", "assess", "act"}


class MonitoringOutputs(NamedTuple):
    batch: Dataset
    result: Artifact
    report: HTML
    metrics: Metrics
    actions: Artifact


DESCRIPTION = (
    "Drift (TFDV statistics vs the champion's training data) and decay of a new batch or of the "
    "serving request log; alert once per incident; trigger retraining."
)


def retraining_defaults(settings: Settings) -> dict:
    """The `retraining` parameter without the training pipeline's ids (the CLI adds them): the
    settings travel whole, so the act task derives every parameter of the retraining run from
    them with the new windows (components/monitor/actions.py)."""
    cfg = settings.pipeline
    # the files' names, not this machine's paths: they only label error messages
    names = {k: Path(getattr(settings, k)).name for k in ("pipeline_path", "schema_path")}
    return {
        "pipeline_id": "",
        "version_id": "",
        "experiment": cfg.project.experiment,
        "service_account": cfg.runtime.service_account,
        # JSON, not a dict: KFP structs hold only floats (see pipeline_params.training_json)
        "settings": settings.model_copy(update=names).model_dump_json(by_alias=True),
    }


def build_monitoring_pipeline(
    settings: Settings, retries: int | None = None, exit_handler: bool = True
):
    cfg = settings.pipeline
    retries = cfg.runtime.cluster_retries if retries is None else retries
    p = monitoring_parameters(settings)
    d_retraining = retraining_defaults(settings)

    def _configure(task: dsl.PipelineTask, stage: str, display: str) -> None:
        configure_task(
            task,
            cfg,
            display,
            RESOURCES[stage],
            stage not in SIDE_EFFECTS,
            retries,
            "monitor",
            alerts=stage == "act",
        )

    def monitoring_pipeline(
        source: str = cfg.data_ingestion.source_url,
        source_kind: str = "batch",
        labels: str = "",
        labels_column: str = "",
        source_digest: str = "",
        data_schema: dict = p["data_schema"],
        monitoring: dict = p["monitoring"],
        cost: dict = p["cost"],
        registered_model: str = p["registered_model"],
        tracking_uri: str = "",
        retrain_mode: str = "kfp",
        retraining: dict = d_retraining,
    ) -> MonitoringOutputs:
        batch_task = load_batch(
            source=source,
            source_kind=source_kind,
            labels=labels,
            label_column=settings.schema_.label.name,
            labels_column=labels_column,
            source_digest=source_digest,
            delimiter=cfg.data_ingestion.delimiter,
        )
        _configure(batch_task, "load_batch", "Load the batch")
        ref_task = champion_reference(registered_model=registered_model, tracking_uri=tracking_uri)
        _configure(ref_task, "champion_reference", "Champion's reference")
        stats_task = batch_statistics(
            batch=batch_task.outputs["batch"], reference=ref_task.outputs["reference"]
        )
        _configure(stats_task, "batch_statistics", "Batch statistics (TFDV)")
        assess_task = assess(
            batch=batch_task.outputs["batch"],
            reference=ref_task.outputs["reference"],
            statistics=stats_task.outputs["statistics"],
            data_schema=data_schema,
            monitoring=monitoring,
            cost=cost,
            tracking_uri=tracking_uri,
        )
        _configure(assess_task, "assess", "Drift, decay and decision")
        act_task = act(
            result=assess_task.outputs["result"],
            monitoring=monitoring,
            retrain_mode=retrain_mode,
            retraining=retraining,
        )
        _configure(act_task, "act", "Alert and trigger retraining")
        return MonitoringOutputs(
            batch=batch_task.outputs["batch"],
            result=assess_task.outputs["result"],
            report=assess_task.outputs["report"],
            metrics=assess_task.outputs["metrics"],
            actions=act_task.outputs["actions"],
        )

    if exit_handler:
        return with_failure_alert(monitoring_pipeline, PIPELINE_NAME, DESCRIPTION, cfg, retries)
    return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(monitoring_pipeline)
