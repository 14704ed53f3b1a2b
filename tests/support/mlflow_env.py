"""Point MLflow at a store for one fixture's lifetime, and put everything back afterwards.

`mlflow.set_tracking_uri` sets a process-wide global and the MLFLOW_TRACKING_URI variable; left
set, a later test talks to a deleted temporary store, and `set_tracking_uri("")` (the old way to
"reset") makes MLflow write into ./mlruns of the working directory, the repository.
"""

from __future__ import annotations

import sys

import pytest

_UTILS = "mlflow.tracking._tracking_service.utils"


def tracking_uri_global() -> str | None:
    """MLflow's process-wide tracking URI (None: unset), without importing MLflow."""
    utils = sys.modules.get(_UTILS)
    return None if utils is None else utils._tracking_uri


def use_tracking_uri(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    """Make `uri` the tracking URI (global and environment), with no active experiment, until
    `monkeypatch` undoes it; the undo also restores both when code under test moved them."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # a set of the current value: the undo puts the global back to what it is now
    monkeypatch.setattr(utils, "_tracking_uri", utils._tracking_uri)
    mlflow.set_tracking_uri(uri)
    # `mlflow.set_experiment` sets an active experiment (a global and MLFLOW_EXPERIMENT_ID):
    # none in a new store, and the previous one back afterwards
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "")  # records it (a delenv of an unset one does not)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
