"""KFP wrapper of the train stage (logic: train.py)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def train(
    train_data: Input[Dataset],
    transformer: Input[Model],
    tuned: Input[Artifact],
    fold_models: Input[Model],
    algorithm: str,
    seed: int,
    model: Output[Model],
):
    """Fit the final `algorithm` model with the tuned params (the k cross-validation fold
    models, or one refit on all rows: the tune result's `final_fit`); write transformer +
    estimator as one model.

    Args:
        train_data: Training rows from the features stage.
        transformer: The fitted ColumnTransformer and feature spec.
        algorithm: lightgbm | xgboost | random_forest | logistic_regression.
        tuned: The tune stage's result: best params (fixed + searched, with the number of
            boosting rounds cross-validation found) and the CV score.
        fold_models: The tune stage's fold models of those params: taken over (after checking
            them against this artifact's digest) instead of fitted again, when they match.
        seed: Random seed.
        model: Directory: model.joblib (predicts from raw rows) + feature_spec.json.
    """
    from components.common.recorder import record_task
    from components.train.train import run, tuned_params

    with record_task(f"train-{algorithm}") as rec:
        params, cv, final = tuned_params(tuned.path)
        meta = run(
            train_data.path,
            transformer.path,
            algorithm,
            params,
            seed,
            model.path,
            cv,
            transformer_sha256=transformer.metadata.get("sha256"),
            final=final,
            fold_models=(fold_models.path, dict(fold_models.metadata)),
        )
        rec.rows = meta["rows"]
    model.metadata.update(meta, task=rec.to_dict())
