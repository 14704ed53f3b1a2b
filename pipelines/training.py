"""The training pipeline: ingest → validate → features → [tune → train] per algorithm → select →
evaluate → track → gate (vs the champion) → (blessed) register → deploy (rollout, then champion).

`build_pipeline(settings)` returns the KFP pipeline with the config's values as parameter defaults
(components/common/pipeline_params.py), so `mlpipe compile` and `mlpipe run` use one definition.
Every task gets a display name, CPU and memory requests and limits, a retry policy, an explicit
caching choice, its stage's code version and what it needs on a cluster (`pipelines/platform.py`).
The compiled pipeline wraps its tasks in an exit handler that alerts on failure; `mlpipe run`
builds it without (`exit_handler=False`): KFP allows pipeline outputs only outside an
ExitHandler, and the local runner reads the outputs and sends the same failure alert itself.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Metrics, Model

from components.common.config import Settings
from components.common.pipeline_params import training_parameters
from components.deploy.component import deploy, not_deployed
from components.evaluate.component import evaluate, gate
from components.features.component import features
from components.ingest.component import commit_ingest, ingest
from components.register.component import register
from components.select.component import select_model
from components.track.component import track
from components.train.component import train
from components.tune.component import tune
from components.validate.component import validate
from pipelines.code_version import package_version
from pipelines.platform import configure_task, with_failure_alert

PIPELINE_NAME = "mlpipe-training"

# (cpu request, cpu limit, memory request, memory limit) per stage: sized from measured peaks on
# the bundled data (see the run summary), with headroom.
RESOURCES: dict[str, tuple[str, str, str, str]] = {
    "ingest": ("500m", "1", "1G", "2G"),
    "validate": ("1", "2", "2G", "4G"),
    "features": ("500m", "1", "1G", "2G"),
    "tune": ("1", "2", "2G", "4G"),
    "train": ("1", "2", "2G", "4G"),
    "select": ("250m", "500m", "512M", "1G"),
    "evaluate": ("500m", "1", "1G", "2G"),
    "gate": ("500m", "1", "1G", "2G"),
    "track": ("250m", "1", "1G", "2G"),
    "register": ("250m", "1", "512M", "1G"),
    "deploy": ("1", "2", "1G", "2G"),
    "commit": ("250m", "500m", "256M", "512M"),
    "not_deployed": ("100m", "250m", "256M", "512M"),
}
# Pure tasks are cached; gate (reads the registry's champion), register and deploy (move its
# aliases, start servers) and commit (moves a source's watermark) never are; neither is ingest
# from a live source (see below). track is cached too: it logs a function of its inputs, the
# tracking URI among them.
# not_deployed reads gate's blessing, new on every run: a cache entry would never be hit.
NEVER_CACHED = {"gate", "register", "deploy", "commit", "not_deployed"}


class TrainingOutputs(NamedTuple):
    data: Dataset
    validation_report: HTML
    model: Model
    metrics: Metrics
    evaluation_report: HTML
    blessing: Artifact
    logged_model: Artifact
    # deploy's outcome (with register's `registration`), or not_deployed's on a blocked run
    deployment: dict


DESCRIPTION = (
    "Ingest, validate (TFDV), features, train, evaluate, track in MLflow and register the model "
    "if it passes the quality gate; then roll it out against the champion."
)


def build_pipeline(settings: Settings, retries: int | None = None, exit_handler: bool = True):
    """The pipeline. `retries` defaults to the config's cluster_retries; `exit_handler=False`
    builds the variant with outputs and without the failure alert task (for `mlpipe run`)."""
    cfg = settings.pipeline
    schema = settings.schema_
    retries = cfg.runtime.cluster_retries if retries is None else retries
    # parameter defaults: the config's values (KFP reads the signature's defaults)
    p = training_parameters(settings)

    def _configure(
        task: dsl.PipelineTask, stage: str, display: str, code: str | None = None
    ) -> None:
        """`stage` names the task's resources and caching; `code` the folder of its code."""
        configure_task(
            task, cfg, display, RESOURCES[stage], stage not in NEVER_CACHED, retries, code or stage
        )

    def training_pipeline(
        source: str = p["source"],
        source_digest: str = "",
        ingestion: dict = p["ingestion"],
        data_schema: dict = p["data_schema"],
        feature_engineering: dict = p["feature_engineering"],
        algorithms: list = p["algorithms"],
        training_json: str = p["training_json"],
        seed: int = p["seed"],
        evaluation_cfg: dict = p["evaluation_cfg"],
        config: dict = p["config"],
        config_hash: str = p["config_hash"],
        experiment: str = p["experiment"],
        tracking_uri: str = "",
        registered_model: str = p["registered_model"],
        deployment: dict = p["deployment"],
        monitoring: dict = p["monitoring"],
    ) -> TrainingOutputs:
        ingest_task = ingest(
            source=source,
            source_digest=source_digest,
            ingestion=ingestion,
            time_column=schema.time_column or "",
            time=schema.time.model_dump(),
        )
        _configure(ingest_task, "ingest", "Ingest data")
        if cfg.data_ingestion.live:  # incremental (reads state) or a live system (sql, api)
            ingest_task.set_caching_options(enable_caching=False)

        validate_task = validate(
            data=ingest_task.outputs["data"], data_schema=data_schema, split=feature_engineering
        )
        _configure(validate_task, "validate", "Validate data (TFDV)")

        features_task = features(
            data=ingest_task.outputs["data"],
            data_schema=data_schema,
            feature_engineering=feature_engineering,
        )
        features_task.after(validate_task)  # never train on data that failed validation
        _configure(features_task, "features", "Build features")

        # fan out: tune and refit each algorithm; kfp.local runs `tuning_parallelism` at once
        with dsl.ParallelFor(
            items=algorithms, parallelism=cfg.model_training.tuning_parallelism, name="algorithms"
        ) as algorithm:
            tune_task = tune(
                train_data=features_task.outputs["train_data"],
                transformer=features_task.outputs["transformer"],
                algorithm=algorithm,
                training_json=training_json,
                experiment=experiment,
                registered_model=registered_model,
                tracking_uri=tracking_uri,
            )
            _configure(tune_task, "tune", "Tune hyperparameters")
            train_task = train(
                train_data=features_task.outputs["train_data"],
                transformer=features_task.outputs["transformer"],
                tuned=tune_task.outputs["result"],
                fold_models=tune_task.outputs["fold_models"],
                algorithm=algorithm,
                seed=seed,
            )
            _configure(train_task, "train", "Refit with the best params")

        select_task = select_model(models=dsl.Collected(train_task.outputs["model"]))
        _configure(select_task, "select", "Select the best algorithm")
        model = select_task.outputs["model"]

        evaluate_task = evaluate(
            model=model,
            test_data=features_task.outputs["test_data"],
            evaluation=evaluation_cfg,
        )
        _configure(evaluate_task, "evaluate", "Evaluate model")

        track_task = track(
            experiment=experiment,
            tracking_uri=tracking_uri,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            config=config,
            data=ingest_task.outputs["data"],
            statistics=validate_task.outputs["statistics"],
            anomalies=validate_task.outputs["anomalies"],
            validation_report=validate_task.outputs["report"],
            train_data=features_task.outputs["train_data"],
            transformer=features_task.outputs["transformer"],
            tuning=dsl.Collected(tune_task.outputs["result"]),
            model=model,
            metrics=evaluate_task.outputs["metrics"],
            evaluation=evaluate_task.outputs["summary"],
        )
        _configure(track_task, "track", "Track in MLflow")

        gate_task = gate(
            test_data=features_task.outputs["test_data"],
            summary=evaluate_task.outputs["summary"],
            logged_model=track_task.outputs["logged_model"],  # the MLflow run for the verdict
            evaluation=evaluation_cfg,
            registered_model=registered_model,
            experiment=experiment,
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            tracking_uri=tracking_uri,
        )
        _configure(gate_task, "gate", "Quality gate vs champion", code="evaluate")

        # the batch was validated and consumed: advance its source's watermark, mark its version
        # committed (a failed run before this point leaves both where they were)
        commit_task = commit_ingest(data=ingest_task.outputs["data"])
        commit_task.after(track_task)
        _configure(commit_task, "commit", "Commit the ingested batch", code="ingest")

        with dsl.If(gate_task.outputs["Output"] == True, name="blessed"):  # noqa: E712
            register_task = register(
                registered_model=registered_model,
                pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                data_digest=source_digest,
                lineage={"config_hash": config_hash, "code_version": package_version()},
                deployment=deployment,
                tracking_uri=tracking_uri,
                data=ingest_task.outputs["data"],
                logged_model=track_task.outputs["logged_model"],
                model=model,
                metrics=evaluate_task.outputs["metrics"],
            )
            _configure(register_task, "register", "Register model")
            deploy_task = deploy(
                registration=register_task.outputs["registration"],
                model=model,
                test_data=features_task.outputs["test_data"],
                deployment=deployment,
                tracking_uri=tracking_uri,
            )
            _configure(deploy_task, "deploy", "Deploy (canary vs champion)")
        with dsl.Else(name="blocked"):
            blocked_task = not_deployed(blessing=gate_task.outputs["blessing"])
            _configure(blocked_task, "not_deployed", "Not deployed (gate blocked)", code="deploy")

        return TrainingOutputs(
            data=ingest_task.outputs["data"],
            validation_report=validate_task.outputs["report"],
            model=model,
            metrics=evaluate_task.outputs["metrics"],
            evaluation_report=gate_task.outputs["report"],
            blessing=gate_task.outputs["blessing"],
            logged_model=track_task.outputs["logged_model"],
            deployment=dsl.OneOf(deploy_task.outputs["Output"], blocked_task.output),
        )

    if exit_handler:
        return with_failure_alert(training_pipeline, PIPELINE_NAME, DESCRIPTION, cfg, retries)
    return dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)(training_pipeline)
