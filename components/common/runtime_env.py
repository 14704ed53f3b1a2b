"""Where a task runs, and the one place that reads what its environment must provide.

Two places, one set of variables:

- **laptop** (`mlpipe run`, kfp.local): the CLI sets the variables for its tasks (inherited, so
  they never enter kfp.local's cache key); an unset one falls back to a folder under the
  repository's `outputs/`.
- **cluster** (a KFP pod): the ConfigMap and Secrets that the compiled spec mounts with
  `kfp.kubernetes` set them (`pipelines/platform.py` lists which). Nothing falls back to a local
  store or a repository path (inside an image that is site-packages, read-only for the task's
  user): a missing variable is an error that names it.

A task is in cluster mode when `MLPIPE_CLUSTER` is true (the pipeline's ConfigMap sets it) or,
unless `MLPIPE_CLUSTER` is explicitly false, when `KUBERNETES_SERVICE_HOST` is set (the kubelet
sets it in every pod). Only the standard library here: the tfdv environment imports it too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from components.common.errors import StageError

CLUSTER_ENV = "MLPIPE_CLUSTER"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
STATE_ENV = "MLPIPE_STATE_DIR"  # watermarks, dataset catalogue, triggers, failure records
LOGS_ENV = "MLPIPE_LOGS_DIR"  # the alert log (on a cluster: under the state store)
RUN_ID_ENV = "MLPIPE_RUN_ID"  # the KFP run's id (a pod label, mounted by the spec)
# the repository's outputs/ (a laptop's default; never used in cluster mode)
LOCAL_OUTPUTS = Path(__file__).resolve().parents[2] / "outputs"

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class RuntimeEnvError(StageError):
    """A variable the task needs is missing (cluster mode) or malformed."""


def in_cluster() -> bool:
    flag = os.environ.get(CLUSTER_ENV, "").strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _value(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def required(name: str, stage: str, what: str) -> str:
    """The variable's value, or an error naming it and what it is for."""
    value = _value(name)
    if value is None:
        raise RuntimeEnvError(
            stage,
            f"{name} is not set: {stage} needs {what}. On a cluster the pipeline's ConfigMap "
            "(mlpipe-pipeline-env, mounted by the compiled spec) provides it; check that it "
            "exists in the namespace the run's pods run in",
            subject=name,
        )
    return value


def tracking_uri(stage: str = "mlflow", given: str = "") -> str:
    """`given` (a pipeline parameter) if set, else MLFLOW_TRACKING_URI; on a laptop, else the
    local SQLite store under outputs/mlflow. In cluster mode a SQLite or file store is refused:
    it would live and die with the pod."""
    uri = given.strip() or _value(TRACKING_URI_ENV)
    if not in_cluster():
        return uri or f"sqlite:///{LOCAL_OUTPUTS / 'mlflow' / 'mlflow.db'}"
    if uri is None:
        uri = required(TRACKING_URI_ENV, stage, "the MLflow tracking server")
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        raise RuntimeEnvError(
            stage,
            f"{TRACKING_URI_ENV}={uri}: on a cluster the tracking URI must be an MLflow server "
            "(http(s)://...), not a store inside the pod",
            subject=TRACKING_URI_ENV,
        )
    return uri


def export_tracking_uri(stage: str, given: str = "") -> str:
    """Resolve the tracking URI as `tracking_uri` does and put it in this task's environment, so
    every MLflow call of the task (and the processes it starts) uses the same store. Call it
    first in a task that talks to MLflow: a missing URI then fails before any work."""
    uri = tracking_uri(stage, given)
    os.environ[TRACKING_URI_ENV] = uri
    return uri


def state_dir(stage: str = "state", required_for: str | None = None) -> str | None:
    """The state store (a folder or an object-store URL). On a laptop: MLPIPE_STATE_DIR, else
    None, or an error naming it when `required_for` says why it is needed. In cluster mode it is
    always required and must be an object-store URL (a pod's folder is gone after the run)."""
    value = _value(STATE_ENV)
    if in_cluster():
        value = value or required(STATE_ENV, stage, "a state store (e.g. s3://bucket/state)")
        if "://" not in value or value.startswith("file://"):
            raise RuntimeEnvError(
                stage,
                f"{STATE_ENV}={value}: on a cluster the state store must be shared storage "
                "(s3://..., gs://...), not a folder of the pod",
                subject=STATE_ENV,
            )
        return value
    if value is None and required_for:
        raise RuntimeEnvError(
            stage,
            f"{required_for} needs a state store: set {STATE_ENV} (mlpipe run sets it to "
            "outputs/state; on a cluster point it at shared storage such as s3://bucket/state)",
            subject=STATE_ENV,
        )
    return value


def local_state_dir() -> str:
    """The state store, with the laptop default (outputs/state) when unset."""
    return state_dir() or str(LOCAL_OUTPUTS / "state")


def logs_dir(stage: str = "alerts") -> str:
    """Where the alert log lives: MLPIPE_LOGS_DIR; in cluster mode else `<state store>/logs`;
    on a laptop else outputs/logs."""
    value = _value(LOGS_ENV)
    if value:
        return value
    if in_cluster():
        return f"{state_dir(stage).rstrip('/')}/logs"
    return str(LOCAL_OUTPUTS / "logs")


def run_id() -> str | None:
    """The KFP run's id when the spec mounted it (cluster), or the CLI set it (laptop)."""
    return _value(RUN_ID_ENV)


def _set_environ(values: Mapping[str, str | None]) -> None:
    """Set each variable; None unsets it."""
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def temporary_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set these variables (None: unset) for the block; the previous values come back after it
    (what a local run's tasks inherit, without leaking into the caller's process)."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        _set_environ(values)
        yield
    finally:
        _set_environ(saved)
