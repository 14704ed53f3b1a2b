import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.common.artifacts import load_model, read_dataset
from components.common.errors import StageError
from components.features.features import run as features
from components.train.train import run
from tests.support.prepared import SPLIT, prepare_features


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample_data, schema):
    d = tmp_path_factory.mktemp("prep")
    prepare_features(
        d, sample_data, schema, scaling_method="standard", categorical_encoding="native"
    )
    return d


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [
        ("lightgbm", {"n_estimators": 50, "n_jobs": 1}),
        ("xgboost", {"n_estimators": 50, "n_jobs": 1, "tree_method": "hist"}),
        ("random_forest", {"n_estimators": 30, "n_jobs": 1}),
        ("logistic_regression", {"max_iter": 500}),
    ],
)
def test_each_algorithm_predicts_from_raw_rows(prepared, tmp_path, algorithm, params):
    meta = run(
        str(prepared / "train.parquet"),
        str(prepared / "transformer"),
        algorithm,
        params,
        7,
        str(tmp_path / "model"),
    )
    model, spec = load_model(tmp_path / "model")
    test = read_dataset(prepared / "test.parquet")
    raw = test[[f["name"] for f in spec["features"]]]
    auc = roc_auc_score(test.employed, model.predict_proba(raw)[:, 1])
    assert auc > 0.8, f"{algorithm} AUC {auc}"
    assert spec["algorithm"] == algorithm and meta["rows"] == 2000
    assert {"name", "kind", "dtype"} <= set(spec["features"][0])


def test_same_seed_same_model(prepared, tmp_path):
    args = (
        str(prepared / "train.parquet"),
        str(prepared / "transformer"),
        "lightgbm",
        {"n_estimators": 20, "n_jobs": 1},
        3,
    )
    a = run(*args, str(tmp_path / "a"))
    b = run(*args, str(tmp_path / "b"))
    assert a["sha256"] == b["sha256"]


def test_unknown_parameter_is_a_clear_error(prepared, tmp_path):
    with pytest.raises(StageError, match="random_forest"):
        run(
            str(prepared / "train.parquet"),
            str(prepared / "transformer"),
            "random_forest",
            {"n_trees": 3},
            1,
            str(tmp_path / "m"),
        )
    assert not (tmp_path / "m").exists()


def test_single_class_rejected(prepared, tmp_path):
    train = read_dataset(prepared / "train.parquet")
    train[train.employed == 1].to_parquet(tmp_path / "one.parquet")
    with pytest.raises(StageError, match="single class"):
        run(
            str(tmp_path / "one.parquet"),
            str(prepared / "transformer"),
            "lightgbm",
            {},
            1,
            str(tmp_path / "m"),
        )


def test_same_content_same_digest_whatever_the_schema_mapping_order(tmp_path, sample_data, schema):
    # the schema reaches the features task as a protobuf map: its key order changes per process
    sample_data.to_parquet(tmp_path / "data.parquet")
    names = schema.feature_names
    digests = set()
    for i, order in enumerate([names, names[::-1]]):
        data = schema.model_dump(mode="json")
        data["features"] = {n: data["features"][n] for n in order}
        d = tmp_path / str(i)
        features(
            str(tmp_path / "data.parquet"),
            data,
            {"split": SPLIT, "scaling_method": "standard", "categorical_encoding": "native"},
            str(d / "train.parquet"),
            str(d / "test.parquet"),
            str(d / "transformer"),
        )
        # column sampling picks columns by position: the order decides the model
        params = {"n_estimators": 50, "n_jobs": 1, "colsample_bytree": 0.5}
        meta = run(
            str(d / "train.parquet"), str(d / "transformer"), "lightgbm", params, 7, str(d / "m")
        )
        digests.add(meta["sha256"])
    assert len(digests) == 1


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost"])
def test_fold_models_are_the_ones_cross_validation_scored(prepared, tmp_path, algorithm):
    """`final_fit: folds`: the model is the mean of the k fold models, each the one the tune
    stage's cross-validation fitted (same folds from the seed, same early stopping), so on the
    validation rows of fold i, member i scores exactly CV's fold score."""
    from sklearn.model_selection import StratifiedKFold

    from components.common.fold_ensemble import FoldEnsemble
    from components.tune.cv import cross_validate

    cap = {"n_estimators": 400, "n_jobs": 1, "learning_rate": 0.1}
    if algorithm == "xgboost":
        cap["tree_method"] = "hist"
    train = read_dataset(prepared / "train.parquet")
    transformer, tspec = load_model(prepared / "transformer")
    cv = cross_validate(train, tspec, transformer, algorithm, cap, 3, "stratified", 11)
    final = {"method": "folds", "folds": 3, "strategy": "stratified", "params": cap}
    meta = run(
        str(prepared / "train.parquet"),
        str(prepared / "transformer"),
        algorithm,
        {**cap, "n_estimators": cv.rounds()},
        11,
        str(tmp_path / "model"),
        final=final,
    )
    model, spec = load_model(tmp_path / "model")
    ensemble = model.steps[-1][1]
    assert isinstance(ensemble, FoldEnsemble) and len(ensemble.members) == 3
    assert spec["final_fit"] == meta["final_fit"] == "folds" and meta["params"] == cap
    names = [f["name"] for f in spec["features"]]
    x, y = transformer.transform(train[names]), train[spec["label"]].to_numpy()
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=11).split(x, y)
    for member, (_, val), score in zip(ensemble.members, folds, cv.fold_scores, strict=True):
        assert roc_auc_score(y[val], member.predict_proba(x[val])[:, 1]) == pytest.approx(score)
    test = read_dataset(prepared / "test.parquet")
    mean = np.mean(
        [m.predict_proba(transformer.transform(test[names])) for m in ensemble.members], 0
    )
    np.testing.assert_allclose(model.predict_proba(test[names]), mean)
    assert model.predict(test[names]).tolist() == (mean[:, 1] > 0.5).astype(int).tolist()


def test_a_fold_ensemble_cannot_be_fitted_or_used_empty():
    from components.common.fold_ensemble import FoldEnsemble

    with pytest.raises(TypeError, match="built from fitted fold models"):
        FoldEnsemble([]).fit([[0]], [0])
    with pytest.raises(AttributeError):
        FoldEnsemble([]).classes_  # noqa: B018 - unfitted: sklearn's check_is_fitted looks here
