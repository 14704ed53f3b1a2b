"""Features: split the data, choose features, fit the column transformer.

Outputs the train and test rows (raw columns: selected features + label) and the fitted
transformer. The model stage puts transformer and estimator into one object, so the saved model
predicts from raw rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import RFE, mutual_info_classif
from sklearn.preprocessing import (
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier

from components.common import categories, timekeys
from components.common.artifacts import save_model, write_dataset
from components.common.config import DataSchema, FeatureConfig
from components.common.errors import DataError
from components.common.splitting import split

STAGE = "features"
SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
SELECTION_SAMPLE = 20_000  # rows used to rank features: enough for a stable order, fast on 2 cores


def canonical_features(schema: DataSchema) -> list[str]:
    """The schema's feature names in one canonical (sorted) order. The schema reaches this task
    as a KFP struct parameter, a protobuf map whose key order changes from process to process:
    column order decides the transformer's output, the estimator's column sampling and the feature
    spec, so it must not depend on it."""
    return sorted(schema.feature_names)


def rank_features(train: pd.DataFrame, schema: DataSchema, method: str, seed: int) -> list[str]:
    """Feature names, most useful first, by `method` (mutual_info | importance | rfe)."""
    names = canonical_features(schema)
    sample = train.sample(min(len(train), SELECTION_SAMPLE), random_state=seed)
    x, y = sample[names].to_numpy(dtype=float), sample[schema.label.name].to_numpy()
    if method == "mutual_info":
        discrete = [schema.features[n].kind == "categorical" for n in names]
        scores = mutual_info_classif(x, y, discrete_features=discrete, random_state=seed)
    elif method == "importance":
        from lightgbm import LGBMClassifier

        booster = LGBMClassifier(n_estimators=100, random_state=seed, verbose=-1, n_jobs=2)
        booster.fit(x, y)
        scores = booster.booster_.feature_importance(importance_type="gain")
    elif method == "rfe":
        rfe = RFE(DecisionTreeClassifier(max_depth=8, random_state=seed), n_features_to_select=1)
        rfe.fit(x, y)
        scores = -rfe.ranking_.astype(float)  # rank 1 = kept longest
    else:
        raise ValueError(f"unknown feature selection {method!r}")
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [names[i] for i in order]


def select_features(
    train: pd.DataFrame, schema: DataSchema, method: str, max_features: int | None, seed: int
) -> list[str]:
    """The features to keep, in canonical order (`canonical_features`)."""
    names = canonical_features(schema)
    if method == "none":
        return names
    keep = set(rank_features(train, schema, method, seed)[: max_features or None])
    return [n for n in names if n in keep]


def build_transformer(
    numeric: list[str], categorical: list[str], scaling: str, encoding: str
) -> ColumnTransformer:
    """Numeric columns first, then categorical: `native` keeps the integer codes for GBDTs."""
    steps = []
    if numeric:
        scaler = "passthrough" if scaling == "none" else SCALERS[scaling]()
        steps.append(("numeric", scaler, numeric))
    if categorical:
        if encoding == "onehot":
            encoder: Any = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        elif encoding == "ordinal":
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        else:
            encoder = "passthrough"
        steps.append(("categorical", encoder, categorical))
    return ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)


def flip_labels(train: pd.DataFrame, label: str, share: float, seed: int) -> pd.DataFrame:
    """`train` with `share` of its 0/1 labels flipped (rows drawn at random): a deliberately
    degraded training set for rehearsing the quality gate."""
    if share <= 0:
        return train
    rng = np.random.default_rng(seed)
    flip = rng.random(len(train)) < share
    train = train.copy()
    train.loc[flip, label] = 1 - train.loc[flip, label]
    return train


def run(
    data_path: str,
    data_schema: dict[str, Any],
    feature_cfg: dict[str, Any],
    train_out: str,
    test_out: str,
    transformer_out: str,
) -> dict[str, Any]:
    schema = DataSchema.model_validate(data_schema)
    # re-validate: KFP passes dict parameters as JSON numbers (5 arrives as 5.0)
    feature_cfg = FeatureConfig.model_validate(feature_cfg).model_dump(mode="json")
    df = pd.read_parquet(data_path)
    label = schema.label.name
    all_features = canonical_features(schema)
    missing = [c for c in [*all_features, label] if c not in df.columns]
    if missing:
        raise DataError(STAGE, f"column {missing[0]!r} is missing", subject=missing[0])
    # string categories become their codes here, so every later stage (and the model) sees ints;
    # validate already blocked unseen texts, this guards a run that skipped it
    for name, spec in schema.features.items():
        if categories.is_string(spec) and (bad := categories.unseen(df[name], spec)):
            raise DataError(STAGE, f"feature {name!r}: values not declared {bad[:3]}", subject=name)
    df = categories.encode_frame(df, schema.features)
    split_cfg = feature_cfg["split"]
    train, test = split(df, split_cfg, label, schema.time_column, STAGE, schema.time.model_dump())

    degrade = feature_cfg["degrade"]
    train = flip_labels(train, label, degrade["label_noise"], degrade["seed"])
    features = select_features(
        train,
        schema,
        feature_cfg["feature_selection"],
        feature_cfg["max_features"],
        split_cfg["seed"],
    )
    features = [f for f in features if f not in degrade["drop_features"]]
    if not features:
        raise DataError(STAGE, "degrade.drop_features leaves no feature to train on")
    numeric = [f for f in features if schema.features[f].kind == "numeric"]
    categorical = [f for f in features if schema.features[f].kind == "categorical"]
    encoding = feature_cfg["categorical_encoding"]
    transformer = build_transformer(numeric, categorical, feature_cfg["scaling_method"], encoding)
    transformer.fit(train[features])

    # keys ride along (ignored by the model): time-aware cross-validation orders rows by them
    keys = [c for c in (schema.time_column, schema.id_column) if c and c in df.columns]
    n_out = len(transformer.get_feature_names_out())
    native_idx = list(range(len(numeric), n_out)) if encoding == "native" else []
    spec = {
        "features": [
            {"name": f, **schema.features[f].model_dump(mode="json", exclude_none=True)}
            for f in features
        ],
        "numeric": numeric,
        "categorical": categorical,
        "label": label,
        "keys": keys,
        "encoding": encoding,
        "scaling": feature_cfg["scaling_method"],
        "selection": feature_cfg["feature_selection"],
        "native_categorical_indices": native_idx,
        "transformed_width": n_out,
    }
    if degrade["label_noise"] or degrade["drop_features"]:
        spec["degraded"] = degrade
    if schema.time_column in keys and schema.time.kind == "timestamp":
        # time-aware folds sort rows by the keys (np.lexsort): a timestamp time column rides
        # along as its UTC key in epoch nanoseconds, in time order whatever the strings' offsets
        col, time = schema.time_column, schema.time.model_dump()
        train = train.assign(**{col: timekeys.keys(train[col], time).astype("int64")})
        test = test.assign(**{col: timekeys.keys(test[col], time).astype("int64")})
    columns = [*keys, *features, label]
    train_meta = write_dataset(train[columns], train_out)
    # the test rows keep every schema feature: the champion (maybe trained on other features) is
    # scored on them, and slices may cut by features the model does not use
    test_rows = categories.mark(test[[*keys, *all_features, label]], schema.features)
    test_meta = write_dataset(test_rows, test_out)
    transformer_meta = save_model(transformer, transformer_out, spec)
    return {
        "train": {**train_meta, "positive_rate": float(train[label].mean())},
        "test": {**test_meta, "positive_rate": float(test[label].mean())},
        "transformer": {**transformer_meta, "features": features, "width": n_out},
        "rows": len(train) + len(test),
        "degraded": spec.get("degraded", {}),
    }
