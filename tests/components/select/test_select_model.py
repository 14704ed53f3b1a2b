"""Select: the best per-algorithm model by cross-validated ROC AUC (`choose`), its folder copied
to the output and the candidates tabled (`run`). Real folders under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.errors import StageError
from components.select.select_model import choose
from components.select.select_model import run as select


def model_dirs(root: Path, names: tuple[str, ...] = ("a", "b", "c")) -> list[str]:
    """One model folder per name, each with a file naming it and a nested folder."""
    dirs = []
    for name in names:
        (root / name / "nested").mkdir(parents=True)
        (root / name / "model.joblib").write_text(name)
        (root / name / "nested" / "spec.json").write_text(f'{{"name": "{name}"}}')
        dirs.append(str(root / name))
    return dirs


def test_select_takes_the_best_cross_validated_model(tmp_path):
    dirs = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.joblib").write_text(name)
        dirs.append(str(tmp_path / name))
    meta = [
        {"algorithm": "lightgbm", "cv_roc_auc": 0.90},
        {"algorithm": "xgboost", "cv_roc_auc": 0.91},
        {"algorithm": "random_forest", "cv_roc_auc": 0.89},
    ]
    out = select(dirs, meta, str(tmp_path / "best"))
    assert out["selected"] == "xgboost"
    assert (tmp_path / "best" / "model.joblib").read_text() == "b"
    assert [c["algorithm"] for c in out["candidates"]] == ["xgboost", "lightgbm", "random_forest"]
    assert choose([{"cv_roc_auc": 0.5}, {"cv_roc_auc": 0.5}]) == 0
    with pytest.raises(StageError, match="no candidate model has a cross-validation score"):
        choose([{"algorithm": "x"}])


# ---------------------------------------------------------------- choose


@pytest.mark.parametrize(
    ("scores", "best"),
    [
        ([0.7], 0),
        ([0.7, 0.9, 0.8], 1),
        ([0.9, 0.8, 0.9], 0),  # a tie: the first
        ([0.8, 0.9, 0.9], 1),
        ([None, 0.6, "0.99"], 1),  # no score or a string: not usable
        ([0.6, 1], 1),  # an int score (KFP round-trips 1.0 as 1) is a score
    ],
)
def test_choose_takes_the_highest_usable_score_and_the_first_of_ties(scores, best):
    assert choose([{"cv_roc_auc": s} for s in scores]) == best


def test_choose_refuses_no_candidates_and_candidates_without_scores():
    with pytest.raises(StageError, match="no candidate model has a cross-validation score"):
        choose([])
    with pytest.raises(StageError) as err:
        choose([{"cv_roc_auc": None}, {"cv_roc_auc": "n/a"}, {}])
    assert err.value.stage == "select"


# ---------------------------------------------------------------- run


def test_run_copies_the_whole_best_folder_and_reports_it(tmp_path):
    meta = [
        {"algorithm": "lightgbm", "cv_roc_auc": 0.80, "cv_std": 0.01, "trials": 5},
        {
            "algorithm": "xgboost",
            "cv_roc_auc": 0.85,
            "cv_std": 0.02,
            "best_params": {"d": 3},
            "task": {"id": "t"},
        },
        {"algorithm": "logistic_regression", "cv_roc_auc": None, "backend": "optuna"},
    ]
    out = select(model_dirs(tmp_path), meta, str(tmp_path / "best"))
    best = tmp_path / "best"
    assert (best / "model.joblib").read_text() == "b"
    assert (best / "nested" / "spec.json").read_text() == '{"name": "b"}'
    assert (tmp_path / "b" / "model.joblib").exists()  # copied, not moved
    # the chosen candidate's metadata, without its task, plus the choice and the table
    assert out["best_params"] == {"d": 3} and out["algorithm"] == "xgboost"
    assert out["selected"] == "xgboost" and "task" not in out
    # a candidate without a score sorts last; every row has the same five columns
    assert out["candidates"] == [
        {
            "algorithm": "xgboost",
            "cv_roc_auc": 0.85,
            "cv_std": 0.02,
            "trials": None,
            "backend": None,
        },
        {"algorithm": "lightgbm", "cv_roc_auc": 0.80, "cv_std": 0.01, "trials": 5, "backend": None},
        {
            "algorithm": "logistic_regression",
            "cv_roc_auc": None,
            "cv_std": None,
            "trials": None,
            "backend": "optuna",
        },
    ]


def test_run_replaces_an_earlier_output(tmp_path):
    dirs = model_dirs(tmp_path, ("a", "b"))
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "stale.txt").write_text("from an earlier run")
    select(dirs, [{"cv_roc_auc": 0.9}, {"cv_roc_auc": 0.8}], str(tmp_path / "best"))
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == ["model.joblib", "nested"]
    assert (tmp_path / "best" / "model.joblib").read_text() == "a"


def test_run_refuses_no_models_and_leaves_no_output(tmp_path):
    with pytest.raises(StageError, match="no candidate models"):
        select([], [], str(tmp_path / "best"))
    with pytest.raises(StageError, match="cross-validation score"):
        select(model_dirs(tmp_path, ("a",)), [{"algorithm": "a"}], str(tmp_path / "best"))
    assert not (tmp_path / "best").exists()


def test_a_missing_model_folder_fails_and_keeps_the_earlier_output(tmp_path):
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "model.joblib").write_text("earlier")
    with pytest.raises(FileNotFoundError):
        select([str(tmp_path / "gone")], [{"cv_roc_auc": 0.9}], str(tmp_path / "best"))
    assert (tmp_path / "best" / "model.joblib").read_text() == "earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["best"]  # no temporary folder left
