"""KFP wrapper of the register stage (logic: register.py). Side effects: never cached."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def register(
    registered_model: str,
    pipeline_run: str,
    data_digest: str,
    lineage: dict,
    deployment: dict,
    tracking_uri: str,
    data: Input[Dataset],
    logged_model: Input[Artifact],
    model: Input[Model],
    metrics: Input[Metrics],
    registration: Output[Artifact],
):
    """Register the blessed model in MLflow as `challenger` (only the deploy stage moves
    `champion`). Idempotent by digest.

    Args:
        registered_model: Registered model name.
        pipeline_run: The KFP run's name (lineage tag).
        data_digest: The CLI's digest of the source (lineage tag; "" when it could not read it).
        lineage: More lineage tags: config hash, code version.
        deployment: The `deployment` config section: `approval_required` marks the version as
            awaiting `mlpipe approve` / `reject`.
        tracking_uri: MLflow tracking URI; "" = MLFLOW_TRACKING_URI (required on a cluster).
        data: The ingested Dataset: its metadata names the data version (content digest) and the
            source it was read from (lineage tags); its rows are not read.
        logged_model: From track: MLflow run id, logged model URI and the manifest of its files
            (recorded on the version as tags; loaders verify downloads against them).
        model: The model artifact (its content digest makes registering idempotent).
        metrics: Evaluation metrics, copied onto the version as tags.
        registration: Metadata only: name, version, alias, whether it was created, the
            replaced champion, whether it awaits approval.
    """
    from components.common.artifacts import write_json
    from components.common.recorder import record_task
    from components.common.runtime_env import export_tracking_uri
    from components.register.register import data_lineage, run

    with record_task("register") as rec:
        export_tracking_uri("register", tracking_uri)
        scalars = {
            k: float(v)
            for k, v in metrics.metadata.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        out = run(
            registered_model,
            logged_model.metadata["model_uri"],
            logged_model.metadata["run_id"],
            model.metadata["sha256"],
            scalars,
            {
                **lineage,
                **data_lineage(dict(data.metadata)),
                "pipeline_run": pipeline_run,
                "data_digest": data_digest,
            },
            approval_required=bool(deployment.get("approval_required")),
            model_id=logged_model.metadata.get("model_id"),
            model_manifest=logged_model.metadata.get("model_manifest"),
        )
        rec.details = out
    registration.metadata.update(out, task=rec.to_dict())
    # metadata-only artifact: write it as a file too (kfp.local's cache needs one to exist)
    write_json(out, registration.path)
