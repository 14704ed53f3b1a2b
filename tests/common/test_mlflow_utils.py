"""MLflow set-up: artifact downloads draw no progress bar on stderr."""

import mlflow

from components.common.mlflow_utils import configure

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
