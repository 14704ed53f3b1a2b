"""The features stage run on the sample rows: what the tune and train tests start from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.features.features import run as features

SPLIT = {"method": "time", "train_window": [2015, 2015], "test_window": [2016, 2016]}


def prepare_features(d: Path, sample_data: Any, schema: Any, **feature_engineering: Any) -> Path:
    """Write the sample rows into `d` and build train.parquet, test.parquet and transformer/
    there (train 2015, test 2016; `feature_engineering` adds to the split)."""
    sample_data.to_parquet(d / "data.parquet")
    features(
        str(d / "data.parquet"),
        schema.model_dump(mode="json"),
        {"split": SPLIT, **feature_engineering},
        str(d / "train.parquet"),
        str(d / "test.parquet"),
        str(d / "transformer"),
    )
    return d
