"""KFP wrapper of the tune stage (logic: tune.py; backends: optuna_backend.py, katib)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def tune(
    train_data: Input[Dataset],
    transformer: Input[Model],
    algorithm: str,
    training_json: str,
    result: Output[Artifact],
    fold_models: Output[Model],
    experiment: str = "",
    registered_model: str = "",
    tracking_uri: str = "",
):
    """Search one algorithm's hyperparameters by cross-validation.

    Args:
        train_data: Training rows from the features stage.
        transformer: The fitted transformer and feature spec.
        algorithm: The family to tune (one ParallelFor iteration per family).
        training_json: The `model_training` config section as JSON (search spaces, max_trials,
            time budget, cv folds and strategy, backend, seed, fixed params).
        experiment: MLflow experiment whose earlier studies warm-start this one ("" = none).
        registered_model: The registered model: its champion's study goes first.
        tracking_uri: MLflow tracking URI; empty: MLFLOW_TRACKING_URI from the environment.
        result: Folder: result.json (best params with the final number of rounds, CV score,
            trial counts, history) and trials.csv. Metadata: the same without the history.
        fold_models: The chosen params' k cross-validation fold models (`final_fit: folds`,
            optuna or no tuning), which the train stage takes over; else a folder saying why.
    """
    import json

    from components.common.recorder import record_task
    from components.tune.tune import run, summary

    with record_task(f"tune-{algorithm}") as rec:
        out = run(
            train_data.path,
            transformer.path,
            algorithm,
            json.loads(training_json),
            result.path,
            uris=(train_data.uri, transformer.uri),
            mlflow_ref={
                "experiment": experiment,
                "registered_model": registered_model,
                "tracking_uri": tracking_uri,
            },
            fold_models_dir=fold_models.path,
        )
        fold_models.metadata.update(out.pop("fold_models"))
        rec.metrics = {"cv_roc_auc": out["best_score"], "trials": out["trials"]}
        # `mlpipe run` reports a study that the wall-time cap stopped (not reproducible)
        rec.details = {k: out[k] for k in ("stopped_by", "max_trials", "time_budget_s") if k in out}
    result.metadata.update(summary(out), task=rec.to_dict())
