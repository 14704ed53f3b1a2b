"""MLflow helpers: where the store is, the experiment, the pipeline run's parent MLflow run.

Where the store is comes from `runtime_env.tracking_uri`: a parameter, else MLFLOW_TRACKING_URI;
on a laptop, else SQLite + an artifact folder under outputs/mlflow; in cluster mode never a
local store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from components.common import runtime_env

# Tags on a pipeline run's MLflow run (the parent run), written by track, gate and `mlpipe run`,
# read by `mlpipe runs`: one list, so a reader never guesses a writer's spelling.
PIPELINE_RUN_TAG = "mlpipe.pipeline_run"  # the KFP run's name: finds the parent run
CONFIG_HASH_TAG = "mlpipe.config_hash"  # Settings.digest(): both config files
DATA_DIGEST_TAG = "mlpipe.data_digest"  # the CLI's digest of the source
DATASET_VERSION_TAG = "mlpipe.dataset_version"  # on the training dataset input (ingest's version)
FAILED_STAGE_TAG = "mlpipe.failed_stage"
ERROR_TAG = "mlpipe.error"
GATE_TAG = "mlpipe.gate"  # passed | blocked
GATE_MODE_TAG = "mlpipe.gate.mode"
GATE_FAILED_TAG = "mlpipe.gate.failed_checks"
GATE_CHAMPION_TAG = "mlpipe.gate.champion_version"
# a tuning trial's run (track's _log_trials), read back by the next study's warm start
TRIAL_ALGORITHM_TAG = "mlpipe.algorithm"
TRIAL_BEST_TAG = "mlpipe.best_trial"  # "true" on the best trial of its study
TRIAL_ROOT_TAG = "mlpipe.root_run"  # the pipeline's MLflow run (a model version's run_id)
TRIAL_FEATURES_TAG = "mlpipe.features_digest"  # the tune result's features_digest
# gate's files: `<prefix>.<file>` = the sha256 of a file this run holds under gate/, or (an
# unchanged re-run, same bytes) the runs:/ URI of the earlier run's copy, which is not logged again
GATE_SHA256_TAG = "mlpipe.gate.sha256"
GATE_SAME_AS_TAG = "mlpipe.gate.same_as"
REGISTERED_VERSION_TAG = "mlpipe.registered_version"  # the model version register left
DEPLOY_OUTCOME_TAG = "mlpipe.deploy.outcome"  # promoted | rolled_back | awaiting_approval | ...
DEPLOY_REASON_TAG = "mlpipe.deploy.reason"
RESULTS_RUN_TAG = "mlpipe.results_run"  # a cached track: the run holding the params and metrics


def default_tracking_uri(store: Path) -> str:
    """The laptop's store in `store` (outputs/mlflow by default)."""
    return f"sqlite:///{store / 'mlflow.db'}"


def configure(uri: str = "", stage: str = "mlflow") -> str:
    """Point MLflow at `uri`, else the environment's store (see `runtime_env.tracking_uri`),
    creating a local store's folder."""
    import mlflow

    # MLflow draws a tqdm bar on stderr for every artifact download (register, deploy, serve,
    # approve): noise in a terminal and hundreds of lines in a run's log. Off unless the user
    # set the variable; MLflow reads it at each download.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = runtime_env.tracking_uri(stage, uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return uri


def error_code(exc: Exception) -> str:
    """An MlflowException's code (RESOURCE_ALREADY_EXISTS, ...); "" for any other error."""
    return str(getattr(exc, "error_code", ""))


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it (artifacts beside a local SQLite store) if needed."""
    import mlflow
    from mlflow.exceptions import MlflowException

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        # two first runs at once: both saw no experiment, the store's unique name let one
        # create it (the concurrent-runs test failed at track on this once); it is there now
        if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow.get_experiment_by_name(name).experiment_id


def parent_run_id(experiment: str, pipeline_run: str) -> str:
    """The MLflow run of this pipeline run: the run tagged with the KFP run's name, else a new
    one. (Created by the first task that logs, not by the CLI: a fully cached re-run then never
    pays for importing mlflow in the CLI.)"""
    import mlflow

    experiment_id = ensure_experiment(experiment)
    found = mlflow.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run}'",
        output_format="list",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment_id, run_name=pipeline_run, tags={PIPELINE_RUN_TAG: pipeline_run}
    )
    return run.info.run_id


def log_file_once(client: Any, run_id: str, path: str, artifact_path: str) -> None:
    """Log the file at `path` under `artifact_path`; on a local artifact store (the laptop's
    file store) the logged copy then becomes a hard link to `path`, so the bytes sit on disk once.
    A store elsewhere (S3, an MLflow server), or another file system, keeps MLflow's copy."""
    import urllib.parse

    client.log_artifact(run_id, path, artifact_path=artifact_path)
    uri = urllib.parse.urlparse(client.get_run(run_id).info.artifact_uri)
    if uri.scheme not in ("", "file"):
        return
    logged = Path(urllib.parse.unquote(uri.path)) / artifact_path / Path(path).name
    link = logged.with_name(f".{logged.name}.link")
    try:
        os.link(path, link)
        os.replace(link, logged)  # atomic: the artifact is never missing
    except OSError:
        link.unlink(missing_ok=True)


def flatten(prefix: str, value: Any, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}: nested config as MLflow params."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value
    return out
