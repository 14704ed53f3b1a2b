"""components/tune/katib_staging.py: the staging prefix is the inputs' identity, staging again
overwrites in place, and on a cluster the staging location must be an object store."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.errors import StageError


def test_the_staging_prefix_is_the_inputs_identity():
    from components.tune.katib_staging import staging_key

    a = staging_key("lightgbm", "minio://x/train", "minio://x/tf")
    assert a == staging_key("lightgbm", "minio://x/train", "minio://x/tf")
    assert a != staging_key("xgboost", "minio://x/train", "minio://x/tf")
    assert a != staging_key("lightgbm", "minio://y/train", "minio://x/tf")


def test_staging_again_overwrites_in_place(trial_data, tmp_path):
    """A retry (or a concurrent run with the same cached inputs) stages over the same prefix:
    the same layout, never nested, never removed first."""
    from components.tune.katib_staging import read_folds, stage_inputs

    folds = [(np.arange(0, 10), np.arange(10, 15))] * 3
    args = (str(trial_data / "train.parquet"), str(trial_data / "transformer"), folds)
    first = stage_inputs(*args, str(tmp_path), "lightgbm-k")
    layout = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    again = stage_inputs(*args, str(tmp_path), "lightgbm-k")
    assert again == first
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == layout
    assert [len(v) for _, v in read_folds(again.folds_uri)] == [5, 5, 5]


def test_on_a_cluster_the_staging_location_must_be_an_object_store(monkeypatch):
    from components.tune.katib_staging import staging_base

    monkeypatch.setenv("MLPIPE_CLUSTER", "1")
    monkeypatch.setenv("MLPIPE_STATE_DIR", "s3://mlpipe-data/state")
    assert staging_base(None) == "s3://mlpipe-data/state/katib-staging"
    assert staging_base("s3://other/stage/") == "s3://other/stage"
    with pytest.raises(StageError, match="object store URL"):
        staging_base("/tmp/stage")
