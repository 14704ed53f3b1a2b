"""Point MLflow at a store for one fixture's lifetime, and put everything back afterwards.

`mlflow.set_tracking_uri` sets a process-wide global and the MLFLOW_TRACKING_URI variable; left
set, a later test talks to a deleted temporary store, and `set_tracking_uri("")` (the old way to
"reset") makes MLflow write into ./mlruns of the working directory, the repository.
"""

from __future__ import annotations

import os
import sys

import pytest

_UTILS = "mlflow.tracking._tracking_service.utils"


def tracking_uri_global() -> str | None:
    """MLflow's process-wide tracking URI (None: unset), without importing MLflow."""
    utils = sys.modules.get(_UTILS)
    return None if utils is None else utils._tracking_uri


def keep_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """Have `monkeypatch`'s undo put MLflow's tracking URI (the global and MLFLOW_TRACKING_URI)
    and active experiment (the global and MLFLOW_EXPERIMENT_ID) back as they are now, whatever
    the code under test sets (`mlflow_utils.configure` points them at a run's store, as the CLI
    wants)."""
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:  # records "unset" (a delenv of an unset variable records nothing)
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)
    # a set of the current value: the undo puts the global back to what it is now
    monkeypatch.setattr(utils, "_tracking_uri", utils._tracking_uri)
    monkeypatch.setattr(fluent, "_active_experiment_id", fluent._active_experiment_id)


def use_tracking_uri(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    """Make `uri` the tracking URI (global and environment), with no active experiment, until
    `monkeypatch` undoes it; the undo also restores both when code under test moved them."""
    import mlflow
    from mlflow.tracking import fluent

    keep_tracking_uri(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # `mlflow.set_experiment` sets an active experiment (a global and MLFLOW_EXPERIMENT_ID):
    # none in a new store, and the previous one back afterwards
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    fluent._active_experiment_id = None


def use_local_store(monkeypatch: pytest.MonkeyPatch, folder, experiment: str) -> str:
    """A SQLite store in `folder` as the tracking URI (as `use_tracking_uri`) with `experiment`
    active, its artifacts in `folder/artifacts`: a SQLite store's default artifact root is
    ./mlruns of the working directory, the repository. Returns the URI."""
    import mlflow

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    use_tracking_uri(monkeypatch, uri)
    mlflow.MlflowClient().create_experiment(
        experiment, artifact_location=(folder / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment)
    return uri
