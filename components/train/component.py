"""KFP wrapper of the train stage (logic: train.py)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def train(
    train_data: Input[Dataset],
    transformer: Input[Model],
    algorithm: str,
    params_json: str,
    seed: int,
    model: Output[Model],
):
    """Fit `algorithm` with `params`; write transformer + estimator as one model.

    Args:
        train_data: Training rows from the features stage.
        transformer: The fitted ColumnTransformer and feature spec.
        algorithm: lightgbm | xgboost | random_forest | logistic_regression.
        params_json: Estimator parameters (model_training.params[algorithm]) as JSON: a dict
            parameter would turn 400 into 400.0 (KFP structs hold only floats), and estimators
            tell 1 from 1.0 (e.g. max_features).
        seed: Random seed.
        model: Directory: model.joblib (predicts from raw rows) + feature_spec.json.
    """
    import json

    from components.common.recorder import record_task
    from components.train.train import run

    with record_task("train") as rec:
        params = json.loads(params_json)
        meta = run(train_data.path, transformer.path, algorithm, params, seed, model.path)
        rec.rows = meta["rows"]
    model.metadata.update(meta, task=rec.to_dict())
