"""The track task's own logic, on a real MLflow store (SQLite in a temporary folder): what a
stage's entry keeps, how params are made safe, a stage as a nested run with its figures and
files, and a tuning study's trials as child runs (state, best tag, error). The whole task (`run`:
the model, its signature and companions) runs in tests/pipelines/test_local_run.py."""

import json

import pytest

from components.common.mlflow_utils import TRIAL_BEST_TAG, TRIAL_ROOT_TAG
from components.common.redact import REDACTED
from components.track.track import _log_stage, _log_trials, _params, model_requirements, stage


def _children(client, run_id: str) -> dict:
    """{run name: run} of the runs whose parent is `run_id`."""
    experiment = client.get_run(run_id).info.experiment_id
    runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{run_id}'")
    return {r.info.run_name: r for r in runs}


def test_a_stages_entry_keeps_numbers_as_metrics_not_flags_texts_or_task_figures():
    meta = {"rows": 5, "auc": 0.8, "passed": True, "source": "x.csv", "task": {"wall_s": 2.0}}
    entry = stage(meta, "report.json", "", with_metrics=True)
    assert entry["metrics"] == {"rows": 5.0, "auc": 0.8}
    assert entry["files"] == ["report.json"]  # an absent output (empty path) is no file
    assert entry["meta"] == meta and entry["meta"] is not meta
    assert stage(meta)["metrics"] == {}


def test_params_are_redacted_and_cut_to_what_mlflow_keeps():
    params = _params(
        {
            "source": "https://user:pw@host/data/x.csv?token=abc",
            "alerts.password": "hunter2",
            "notes": "y" * 600,
            "folds": 5,
        }
    )
    assert "pw" not in params["source"] and "abc" not in params["source"]
    assert params["source"].startswith("https://host/data/x.csv")
    assert params["alerts.password"] == REDACTED
    assert len(params["notes"]) == 500
    assert params["folds"] == "5"


def test_the_models_requirements_pin_what_loading_it_needs():
    from importlib.metadata import version

    base = model_requirements("random_forest")
    assert [r.split("==")[0] for r in base] == ["scikit-learn", "cloudpickle", "numpy", "pandas"]
    assert f"numpy=={version('numpy')}" in base
    assert model_requirements("xgboost") == [*base, f"xgboost-cpu=={version('xgboost-cpu')}"]
    assert model_requirements("lightgbm")[-1] == f"lightgbm=={version('lightgbm')}"


def test_a_stage_is_a_nested_run_with_its_figures_params_and_files(mlflow_store, tmp_path):
    import mlflow

    report = tmp_path / "report.json"
    report.write_text("{}")
    tune_dir = tmp_path / "tune"
    tune_dir.mkdir()
    result = {"algorithm": "lightgbm", "best_trial": 0, "history": []}
    (tune_dir / "result.json").write_text(json.dumps(result))
    meta = {
        "rows": 5,
        "source": "https://u:p@host/x.csv",
        "task": {"wall_s": 1.5, "cpu_s": 0, "peak_rss_mb": None},
    }
    files = [report, tmp_path / "never-written.json", tune_dir]
    with mlflow.start_run(run_name="pipeline") as parent:
        _log_stage("features", meta, files, {"auc": 0.8})
    run = _children(mlflow_store, parent.info.run_id)["features"]
    assert run.data.tags["mlpipe.stage"] == "features"
    assert run.data.metrics == {"task.wall_s": 1.5, "auc": 0.8}  # a zero or no figure: none
    assert run.data.params == {"rows": "5", "source": "https://host/x.csv"}
    logged = {a.path for a in mlflow_store.list_artifacts(run.info.run_id)}
    assert logged == {"report.json", "tune"}


def test_trials_are_child_runs_with_their_state_and_only_the_best_is_tagged(mlflow_store, tmp_path):
    import mlflow

    history = [
        {"number": 0, "state": "COMPLETE", "value": 0.70, "std": 0.01, "params": {"a": 1}},
        {"number": 1, "state": "COMPLETE", "value": 0.90, "rounds": 40, "params": {"a": 2}},
        {"number": 2, "state": "PRUNED", "value": 0.60},
        {"number": 3, "state": "FAIL", "value": None, "error": "boom " * 200},
        {"number": 4, "state": "WAITING"},
    ]
    result_file = tmp_path / "result.json"
    result = {"algorithm": "xgboost", "backend": "optuna", "best_trial": 1, "history": history}
    result_file.write_text(json.dumps(result))
    with mlflow.start_run(run_name="pipeline") as root, mlflow.start_run(nested=True) as tune:
        _log_trials(result_file)
    trials = _children(mlflow_store, tune.info.run_id)
    status = {name: run.info.status for name, run in trials.items()}
    assert status == {
        "xgboost-0": "FINISHED",
        "xgboost-1": "FINISHED",
        "xgboost-2": "FINISHED",
        "xgboost-3": "FAILED",
        "xgboost-4": "KILLED",
    }
    best = [name for name, run in trials.items() if run.data.tags.get(TRIAL_BEST_TAG) == "true"]
    assert best == ["xgboost-1"]
    assert trials["xgboost-1"].data.metrics == {"cv_roc_auc": 0.9, "best_rounds": 40.0}
    assert trials["xgboost-1"].data.params == {"a": "2"}
    assert trials["xgboost-3"].data.metrics == {}
    assert len(trials["xgboost-3"].data.tags["mlpipe.trial_error"]) == 500
    assert {run.data.tags[TRIAL_ROOT_TAG] for run in trials.values()} == {root.info.run_id}
    series = mlflow_store.get_metric_history(tune.info.run_id, "trial_cv_roc_auc")
    assert [(m.step, m.value) for m in series] == [(0, 0.7), (1, 0.9), (2, 0.6)]


@pytest.mark.parametrize("content", [None, {"algorithm": "xgboost", "history": []}])
def test_without_trials_no_child_run_is_created(mlflow_store, tmp_path, content):
    import mlflow

    result_file = tmp_path / "result.json"
    if content is not None:
        result_file.write_text(json.dumps(content))
    with mlflow.start_run(run_name="tune") as tune:
        _log_trials(result_file)
    assert _children(mlflow_store, tune.info.run_id) == {}
    assert mlflow_store.get_run(tune.info.run_id).data.metrics == {}


def test_two_runs_logging_the_same_data_at_once_both_link_it(mlflow_store, monkeypatch):
    """MLflow's store checks for the dataset, then inserts it: both runs pass the check here before
    either inserts (the race two concurrent pipeline runs met on PostgreSQL), and both still log."""
    import threading

    import mlflow
    import pandas as pd
    from mlflow.store.tracking.dbmodels.models import SqlDataset
    from sqlalchemy.orm import Query

    from components.track.track import log_training_input

    both_checked = threading.Barrier(2, timeout=30)
    waited: set[int] = set()
    real_all = Query.all

    def all_after_both_checked(query):
        rows = real_all(query)
        entity = query.column_descriptions[0].get("entity")
        if entity is SqlDataset and threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_checked.wait()  # each run's first check: neither has inserted yet
        return rows

    monkeypatch.setattr(Query, "all", all_after_both_checked)
    data = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(data, targets="y", name="training-data", digest="d1")
    runs, errors = [], []

    def log() -> None:
        try:
            with mlflow.start_run() as run:
                log_training_input(dataset, tags={"mlpipe.source": "x"})
                runs.append(run.info.run_id)
        except Exception as e:  # reported below, with the thread's error
            errors.append(e)

    threads = [threading.Thread(target=log) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(waited) == 2  # the race happened: both checked before either inserted
    for run_id in runs:
        (logged,) = mlflow_store.get_run(run_id).inputs.dataset_inputs
        assert (logged.dataset.name, logged.dataset.digest) == ("training-data", "d1")
