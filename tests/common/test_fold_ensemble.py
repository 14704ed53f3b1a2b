"""components/common/fold_ensemble.py: FoldEnsemble as a scikit-learn classifier built from
fitted members (mean probabilities, predict, classes_, fitted or not, no fit of its own, mean
feature importances), the tune stage's fold-models folder (write_fold_models) and when the
train stage takes it over (reusable_fold_models: same settings and a verified digest only), and
fold_fit_key.

Members are real scikit-learn models fitted on a small synthetic dataset.
tests/components/train/test_fold_models.py runs the same functions through the tune and train
stages on the bundled data."""

from __future__ import annotations

import json
import os

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted

from components.common.artifacts import MODEL_FILE
from components.common.fold_ensemble import (
    FoldEnsemble,
    fold_fit_key,
    reusable_fold_models,
    write_fold_models,
)
from components.common.model_integrity import ModelIntegrityError, write_manifest

FITTED_WITH = {
    "algorithm": "logistic_regression",
    "params": {"C": 1.0},
    "folds": 3,
    "strategy": "stratified",
    "seed": 42,
    "rows": 240,
}


@pytest.fixture(scope="module")
def data():
    x, y = make_classification(
        n_samples=240, n_features=5, n_informative=3, n_redundant=0, random_state=0
    )
    labels = np.array(["no", "yes"])[y]  # text classes: predict must map back to them
    return x, labels


def _folds(x, y, k: int = 3):
    return [(x[i::k], y[i::k]) for i in range(k)]


@pytest.fixture(scope="module")
def mixed(data):
    """Three different real models, each fitted on another third of the rows."""
    x, y = data
    (x0, y0), (x1, y1), (x2, y2) = _folds(x, y)
    return [
        LogisticRegression().fit(x0, y0),
        DecisionTreeClassifier(max_depth=3, random_state=0).fit(x1, y1),
        DecisionTreeClassifier(max_depth=2, random_state=1).fit(x2, y2),
    ]


@pytest.fixture(scope="module")
def trees(data):
    x, y = data
    return [
        DecisionTreeClassifier(max_depth=3, random_state=i).fit(a, b)
        for i, (a, b) in enumerate(_folds(x, y))
    ]


# ---------------------------------------------------------------- the classifier


def test_predict_proba_is_the_mean_of_the_members(data, mixed):
    x, _ = data
    ensemble = FoldEnsemble(mixed)
    got = ensemble.predict_proba(x)
    want = (mixed[0].predict_proba(x) + mixed[1].predict_proba(x) + mixed[2].predict_proba(x)) / 3
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    assert got.shape == (len(x), 2)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    # not any one member's answer
    assert all(not np.allclose(got, m.predict_proba(x)) for m in mixed)


def test_one_member_is_that_member(data, mixed):
    x, _ = data
    np.testing.assert_array_equal(
        FoldEnsemble([mixed[1]]).predict_proba(x), mixed[1].predict_proba(x)
    )


def test_predict_is_the_class_of_the_higher_mean_probability(data, mixed):
    x, _ = data
    ensemble = FoldEnsemble(mixed)
    mean_yes = np.mean([m.predict_proba(x)[:, 1] for m in mixed], axis=0)
    want = np.where(mean_yes > 0.5, "yes", "no")
    assert ensemble.predict(x).tolist() == want.tolist()
    # the members do not all agree, so the mean decides some rows a majority vote would not
    assert set(ensemble.predict(x)) == {"no", "yes"}


def test_classes_are_the_members_classes(mixed):
    assert FoldEnsemble(mixed).classes_.tolist() == ["no", "yes"]
    assert FoldEnsemble(mixed).n_features_in_ == 5


def test_members_that_disagree_on_the_classes_are_refused(data, mixed):
    x, y = data
    other = LogisticRegression().fit(x, np.where(y == "yes", 1, 0))
    with pytest.raises(ValueError, match="disagree on the classes"):
        FoldEnsemble([*mixed, other]).classes_  # noqa: B018 - the property raises
    with pytest.raises(ValueError, match="disagree on the classes"):
        FoldEnsemble([mixed[0], other]).predict(x)


def test_an_ensemble_without_members_is_not_fitted(mixed):
    for empty in (FoldEnsemble(), FoldEnsemble([])):
        with pytest.raises(NotFittedError):
            check_is_fitted(empty)
        assert not hasattr(empty, "classes_")  # AttributeError, as sklearn expects
    check_is_fitted(FoldEnsemble(mixed))  # does not raise


def test_an_ensemble_is_never_fitted_itself(data, mixed):
    x, y = data
    ensemble = FoldEnsemble(mixed)
    with pytest.raises(TypeError, match="built from fitted fold models"):
        ensemble.fit(x, y)
    assert ensemble.members is mixed  # the members were not replaced or refitted


def test_feature_importances_are_the_members_mean(trees):
    got = FoldEnsemble(trees).feature_importances_
    want = np.mean([t.feature_importances_ for t in trees], axis=0)
    np.testing.assert_allclose(got, want)
    assert got.shape == (5,) and got.sum() == pytest.approx(1.0)
    assert not np.allclose(got, trees[0].feature_importances_)


def test_feature_importances_of_members_without_them_fail(mixed):
    with pytest.raises(AttributeError):
        FoldEnsemble(mixed).feature_importances_  # noqa: B018 - LogisticRegression has none


# ---------------------------------------------------------------- the fold-models folder


def test_written_fold_models_are_taken_over_with_the_same_settings(tmp_path, data, mixed):
    x, _ = data
    meta = write_fold_models(mixed, str(tmp_path / "folds"), FITTED_WITH)
    assert meta["members"] == 3 and meta["format"] == "joblib" and len(meta["sha256"]) == 64
    back = reusable_fold_models(str(tmp_path / "folds"), meta, FITTED_WITH)
    assert isinstance(back, FoldEnsemble) and len(back.members) == 3
    assert [type(m) for m in back.members] == [type(m) for m in mixed]
    np.testing.assert_array_equal(back.predict_proba(x), FoldEnsemble(mixed).predict_proba(x))


def test_settings_are_compared_as_the_folder_stores_them(tmp_path, mixed):
    # a tuple comes back from JSON as a list: still the same settings
    fitted_with = {**FITTED_WITH, "params": {"hidden": (8, 4), "alpha": 1e-4}}
    meta = write_fold_models(mixed, str(tmp_path / "folds"), fitted_with)
    assert reusable_fold_models(str(tmp_path / "folds"), meta, fitted_with) is not None


@pytest.mark.parametrize(
    "change",
    [{"seed": 7}, {"rows": 239}, {"folds": 5}, {"params": {"C": 0.5}}, {"algorithm": "xgboost"}],
    ids=["seed", "rows", "folds", "params", "algorithm"],
)
def test_other_settings_mean_other_models(tmp_path, mixed, change, capsys):
    meta = write_fold_models(mixed, str(tmp_path / "folds"), FITTED_WITH)
    assert reusable_fold_models(str(tmp_path / "folds"), meta, {**FITTED_WITH, **change}) is None
    assert "fitted with other settings" in capsys.readouterr().out


def _booby_trap(folder, marker) -> None:
    """Replace the folder's model with a pickle that creates `marker` when loaded, and rewrite
    its manifest to match (what someone who can write the artifact store can do)."""

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    joblib.dump(Payload(), folder / MODEL_FILE)
    write_manifest(folder)


def test_without_a_digest_nothing_is_loaded(tmp_path, mixed, capsys):
    folder, ran = tmp_path / "folds", tmp_path / "pickle-ran"
    meta = write_fold_models(mixed, str(folder), FITTED_WITH)
    _booby_trap(folder, ran)
    for no_digest in ({**meta, "sha256": None}, {k: v for k, v in meta.items() if k != "sha256"}):
        assert reusable_fold_models(str(folder), no_digest, FITTED_WITH) is None
    assert not ran.exists()  # never an unverified unpickling
    assert "no digest" in capsys.readouterr().out


def test_a_changed_folder_is_refused_before_unpickling(tmp_path, mixed):
    folder, ran = tmp_path / "folds", tmp_path / "pickle-ran"
    meta = write_fold_models(mixed, str(folder), FITTED_WITH)
    _booby_trap(folder, ran)
    with pytest.raises(ModelIntegrityError):
        reusable_fold_models(str(folder), meta, FITTED_WITH)
    assert not ran.exists()


def test_a_tampered_model_file_is_refused(tmp_path, mixed):
    folder = tmp_path / "folds"
    meta = write_fold_models(mixed, str(folder), FITTED_WITH)
    (folder / MODEL_FILE).write_bytes((folder / MODEL_FILE).read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match=f"changed: {MODEL_FILE}"):
        reusable_fold_models(str(folder), meta, FITTED_WITH)


def test_without_members_the_folder_says_why_and_nothing_is_reused(tmp_path, mixed):
    folder = tmp_path / "folds"
    write_fold_models(mixed, str(folder), FITTED_WITH)  # an older run's models are replaced
    why = "final_fit is refit: one model on all rows"
    meta = write_fold_models([], str(folder), FITTED_WITH, why_none=why)
    assert meta == {"members": 0, "why": why}
    assert os.listdir(folder) == ["NONE.json"]
    assert json.loads((folder / "NONE.json").read_text()) == {"members": 0, "why": why}
    assert reusable_fold_models(str(folder), meta, FITTED_WITH) is None
    # metadata that names no members is not read even when a digest is there
    assert reusable_fold_models(str(folder), {**meta, "sha256": "0" * 64}, FITTED_WITH) is None


def test_a_folder_holding_another_kind_of_model_is_not_reused(tmp_path, mixed):
    from components.common.artifacts import save_model

    meta = save_model(mixed[0], tmp_path / "m", {"fitted_with": FITTED_WITH})
    meta = {**meta, "members": 1}
    assert reusable_fold_models(str(tmp_path / "m"), meta, FITTED_WITH) is None


# ---------------------------------------------------------------- fold_fit_key


def test_fold_fit_key_normalises_what_kfp_passed_as_doubles():
    final = {"method": "folds", "params": {"num_leaves": 31}, "folds": 3.0}
    key = fold_fit_key("lightgbm", final, 42.0, 1000.0)
    assert key == {
        "algorithm": "lightgbm",
        "params": {"num_leaves": 31},
        "folds": 3,
        "strategy": "stratified",  # the default when the tune result names none
        "seed": 42,
        "rows": 1000,
    }
    assert all(type(key[k]) is int for k in ("folds", "seed", "rows"))
    assert fold_fit_key("lightgbm", {**final, "strategy": "group"}, 1, 2)["strategy"] == "group"


def test_fold_fit_key_needs_params_and_folds():
    with pytest.raises(KeyError):
        fold_fit_key("lightgbm", {"folds": 3}, 1, 2)
    with pytest.raises(KeyError):
        fold_fit_key("lightgbm", {"params": {}}, 1, 2)
