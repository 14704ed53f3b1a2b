"""KFP wrapper of the features stage (logic: features.py)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def features(
    data: Input[Dataset],
    data_schema: dict,
    feature_engineering: dict,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
    transformer: Output[Model],
):
    """Split the data, select features and fit the column transformer.

    Args:
        data: The ingested Dataset.
        data_schema: config/data_schema.yaml as a dict (feature kinds and domains).
        feature_engineering: The `feature_engineering` config section (split, scaling, encoding,
            selection).
        train_data: Training rows (selected features + label).
        test_data: Test rows (selected features + label).
        transformer: Directory with the fitted ColumnTransformer and its feature spec.
    """
    from components.common.recorder import record_task
    from components.features.features import run

    with record_task("features") as rec:
        meta = run(
            data.path,
            data_schema,
            feature_engineering,
            train_data.path,
            test_data.path,
            transformer.path,
        )
        rec.rows = meta["rows"]
    train_data.metadata.update(meta["train"], degraded=meta["degraded"])
    test_data.metadata.update(meta["test"])
    transformer.metadata.update(meta["transformer"], task=rec.to_dict())
