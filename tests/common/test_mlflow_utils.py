"""MLflow set-up: artifact downloads draw no progress bar on stderr; an experiment two first
runs create at once is one experiment, not an error."""

import mlflow

from components.common.mlflow_utils import configure, ensure_experiment

VAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _download(tmp_path) -> None:
    source = tmp_path / "model.txt"
    source.write_text("weights")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(source), artifact_path="model")
    mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model", dst_path=str(tmp_path / "got")
    )


def test_downloads_print_no_progress_bar_once_configured(
    mlflow_store, tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv(VAR, "x")  # recorded as unset by monkeypatch, restored after the test
    monkeypatch.delenv(VAR)
    configure()
    _download(tmp_path)
    assert "Downloading artifacts" not in capfd.readouterr().err


def test_a_user_who_wants_the_bar_keeps_it(mlflow_store, tmp_path, monkeypatch, capfd):
    """The control: the same download shows the bar when the variable says so."""
    monkeypatch.setenv(VAR, "true")
    configure()
    _download(tmp_path)
    assert "Downloading artifacts" in capfd.readouterr().err


def test_an_experiment_another_run_just_created_is_used_not_an_error(mlflow_store, monkeypatch):
    """Two first runs at once: both look, see no experiment, create; the store lets one create
    win and answers the other RESOURCE_ALREADY_EXISTS, which means the experiment is there."""
    winner = mlflow.create_experiment("raced")  # the other run's create came first
    real_lookup, calls = mlflow.get_experiment_by_name, []

    def lookup(name):  # this run's first look came before the other run's create
        calls.append(name)
        return None if len(calls) == 1 else real_lookup(name)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", lookup)
    assert ensure_experiment("raced") == winner
    assert ensure_experiment("fresh") == mlflow.get_experiment_by_name("fresh").experiment_id
