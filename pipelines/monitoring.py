"""The monitoring pipeline: load_batch → champion_reference → batch_statistics (TFDV) → assess
(drift, decay, decision, drift report) → act (one alert per incident, the retraining trigger).

`build_monitoring_pipeline(settings)` returns the KFP pipeline with the config's values as
parameter defaults; `mlpipe compile --pipeline monitoring` writes its spec, `mlpipe schedule
--pipeline monitoring` makes it a KFP recurring run, `mlpipe monitor` runs it with kfp.local.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Metrics

from components.common.config import Settings
from components.monitor.component import (
    act,
    assess,
    batch_statistics,
    champion_reference,
    load_batch,
)
from pipelines.code_version import ENV_NAME, stage_version

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


def _configure(task: dsl.PipelineTask, stage: str, display: str, retries: int) -> None:
    cpu_req, cpu_lim, mem_req, mem_lim = RESOURCES[stage]
    task.set_display_name(display)
    task.set_caching_options(enable_caching=stage not in SIDE_EFFECTS)
    task.set_cpu_request(cpu_req).set_cpu_limit(cpu_lim)
    task.set_memory_request(mem_req).set_memory_limit(mem_lim)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="30s", backoff_factor=2.0)
    task.set_env_variable(ENV_NAME, stage_version("monitor"))


def build_monitoring_pipeline(settings: Settings, retries: int | None = None):
    cfg = settings.pipeline
    retries = cfg.runtime.cluster_retries if retries is None else retries
    d_schema = settings.schema_.model_dump(mode="json", exclude_none=True)
    d_monitoring = cfg.monitoring.model_dump(mode="json", exclude_none=True)
    d_cost = cfg.evaluation.cost.model_dump(mode="json")

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Drift (TFDV statistics vs the champion's training data) and decay of a new "
        "batch or of the serving request log; alert once per incident; trigger retraining.",
    )
    def monitoring_pipeline(
        source: str = cfg.data_ingestion.source_url,
        source_kind: str = "batch",
        labels: str = "",
        source_digest: str = "",
        data_schema: dict = d_schema,
        monitoring: dict = d_monitoring,
        cost: dict = d_cost,
        registered_model: str = cfg.project.registered_model,
        tracking_uri: str = "",
        retrain_mode: str = "kfp",
    ) -> MonitoringOutputs:
        batch_task = load_batch(
            source=source,
            source_kind=source_kind,
            labels=labels,
            label_column=settings.schema_.label.name,
            source_digest=source_digest,
        )
        _configure(batch_task, "load_batch", "Load the batch", retries)
        ref_task = champion_reference(registered_model=registered_model, tracking_uri=tracking_uri)
        _configure(ref_task, "champion_reference", "Champion's reference", retries)
        stats_task = batch_statistics(
            batch=batch_task.outputs["batch"], reference=ref_task.outputs["reference"]
        )
        _configure(stats_task, "batch_statistics", "Batch statistics (TFDV)", retries)
        assess_task = assess(
            batch=batch_task.outputs["batch"],
            reference=ref_task.outputs["reference"],
            statistics=stats_task.outputs["statistics"],
            data_schema=data_schema,
            monitoring=monitoring,
            cost=cost,
            tracking_uri=tracking_uri,
        )
        _configure(assess_task, "assess", "Drift, decay and decision", retries)
        act_task = act(
            result=assess_task.outputs["result"], monitoring=monitoring, retrain_mode=retrain_mode
        )
        _configure(act_task, "act", "Alert and trigger retraining", retries)
        return MonitoringOutputs(
            batch=batch_task.outputs["batch"],
            result=assess_task.outputs["result"],
            report=assess_task.outputs["report"],
            metrics=assess_task.outputs["metrics"],
            actions=act_task.outputs["actions"],
        )

    return monitoring_pipeline
