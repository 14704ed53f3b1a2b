"""The tune stage's fold models, taken over by the train stage (`final_fit: folds`): the same
model as fitting them again, never unpickled unverified, refitted when settings differ."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.common.artifacts import load_model, read_dataset
from components.common.fold_ensemble import reusable_fold_models
from components.common.model_integrity import ModelIntegrityError
from components.common.splitting import split_indices
from components.train import train as train_stage
from components.tune.tune import run as tune
from tests.support.prepared import prepare_features


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample_data, schema):
    d = tmp_path_factory.mktemp("folds")
    prepare_features(d, sample_data, schema, categorical_encoding="native")
    return d


def _training(settings, **changes):
    training = settings.pipeline.model_training.model_dump(mode="json")
    training.update(params={"lightgbm": {"n_estimators": 120}}, threads_per_trial=1)
    training.update(changes)
    return training


def _tune(d: Path, training: dict, out: Path) -> dict:
    return tune(
        str(d / "train.parquet"),
        str(d / "transformer"),
        "lightgbm",
        training,
        str(out / "result"),
        fold_models_dir=str(out / "folds"),
    )


def _train(d: Path, result: dict, out: Path, seed: int, folds=None) -> dict:
    return train_stage.run(
        str(d / "train.parquet"),
        str(d / "transformer"),
        "lightgbm",
        result["best_params"],
        seed,
        str(out),
        final=result["final_fit"],
        fold_models=folds,
    )


def _no_refit(*args, **kwargs):
    raise AssertionError("the fold models were fitted again")


@pytest.mark.parametrize("tuning", [False, True], ids=["untuned", "optuna"])
def test_train_takes_over_the_fold_models_tune_scored(
    prepared, tmp_path, settings, monkeypatch, tuning
):
    d = prepared
    training = _training(settings, hyperparameter_tuning=tuning, max_trials=3)
    result = _tune(d, training, tmp_path)
    meta = result["fold_models"]
    assert meta["members"] == 3 and meta["sha256"]
    # the same model as fitting the folds again (deterministic estimators, same folds and seed)
    fitted = _train(d, result, tmp_path / "fitted", training["seed"])
    monkeypatch.setattr(train_stage, "fit_folds", _no_refit)
    reused = _train(
        d, result, tmp_path / "reused", training["seed"], (str(tmp_path / "folds"), meta)
    )
    model, spec = load_model(tmp_path / "reused", reused["sha256"])
    test = read_dataset(d / "test.parquet")
    names = [f["name"] for f in spec["features"]]
    again, _ = load_model(tmp_path / "fitted", fitted["sha256"])
    np.testing.assert_array_equal(
        model.predict_proba(test[names]), again.predict_proba(test[names])
    )
    assert reused["params"] == fitted["params"] == result["final_fit"]["params"]
    # member k is the model cross-validation scored on fold k: the study's best score
    train = read_dataset(d / "train.parquet")
    x = model.steps[0][1].transform(train[names])
    y = train[spec["label"]].to_numpy()
    splits = split_indices(y, 3, "stratified", training["seed"])
    scores = [
        roc_auc_score(y[val], m.predict_proba(x[val])[:, 1])
        for m, (_, val) in zip(model.steps[-1][1].members, splits, strict=True)
    ]
    assert np.mean(scores) == pytest.approx(result["best_score"])


def test_a_changed_fold_models_folder_is_refused_before_unpickling(prepared, tmp_path, settings):
    d = prepared
    result = _tune(d, _training(settings, hyperparameter_tuning=False), tmp_path)
    joblib_file = tmp_path / "folds" / "model.joblib"
    joblib_file.write_bytes(joblib_file.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="model.joblib"):
        _train(d, result, tmp_path / "m", 42, (str(tmp_path / "folds"), result["fold_models"]))
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_without_a_digest_or_with_other_settings_the_folds_are_fitted(prepared, tmp_path, settings):
    d = prepared
    training = _training(settings, hyperparameter_tuning=False)
    result = _tune(d, training, tmp_path)
    folder, meta = str(tmp_path / "folds"), result["fold_models"]
    key = {**json.loads(json.dumps(result["final_fit"])), "method": "folds"}
    from components.common.fold_ensemble import fold_fit_key

    rows = len(read_dataset(d / "train.parquet"))
    same = fold_fit_key("lightgbm", key, training["seed"], rows)
    assert reusable_fold_models(folder, meta, same) is not None
    # no digest from the writer: never an unverified load
    assert reusable_fold_models(folder, {**meta, "sha256": None}, same) is None
    # another seed, other params or other rows: other models
    assert reusable_fold_models(folder, meta, {**same, "seed": 7}) is None
    other = {**same, "params": {**same["params"], "num_leaves": 8}}
    assert reusable_fold_models(folder, meta, other) is None
    assert reusable_fold_models(folder, meta, {**same, "rows": rows - 1}) is None
    # and train then fits them (another seed)
    out = _train(d, result, tmp_path / "m", 7, (folder, meta))
    assert out["final_fit"] == "folds"


def test_a_refit_keeps_no_fold_models_and_says_why(prepared, tmp_path, settings):
    d = prepared
    result = _tune(d, _training(settings, hyperparameter_tuning=False, final_fit="refit"), tmp_path)
    assert result["fold_models"] == {
        "members": 0,
        "why": "final_fit is refit: one model on all rows",
    }
    assert json.loads((tmp_path / "folds" / "NONE.json").read_text())["members"] == 0
    assert not (tmp_path / "folds" / "model.joblib").exists()
