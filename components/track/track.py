"""Track: log what the pipeline's stages produced to the run's MLflow run.

The pure stages cannot log to MLflow themselves (a run id in their inputs would defeat the cache),
so they leave params, metrics and files in their artifacts and this side-effect task records them:
a nested run per stage, the training data as an MLflow input with its digest, and the model with
signature, input example and its companions (feature spec, statistics, schema, metrics).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from components.common import model_integrity
from components.common.artifacts import FEATURE_SPEC_FILE, load_model, read_dataset
from components.common.mlflow_utils import (
    DATASET_VERSION_TAG,
    PIPELINE_RUN_TAG,
    TRIAL_ALGORITHM_TAG,
    TRIAL_BEST_TAG,
    TRIAL_FEATURES_TAG,
    TRIAL_ROOT_TAG,
    configure,
    flatten,
    parent_run_id,
)
from components.common.redact import redact_params
from components.common.retry import retrying

STAGE = "track"
TASK_FIGURES = ("wall_s", "cpu_s", "peak_rss_mb", "rows_per_s")


def _numeric(values: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _params(flat: dict[str, Any]) -> dict[str, str]:
    """Flattened config or metadata as MLflow params, redacted first: no credential-like value,
    no URL userinfo or query, no registered secret (the alert webhook)."""
    return {k: str(v)[:500] for k, v in redact_params(flat).items()}


class DatasetRace(Exception):
    """Another run inserted the same dataset between MLflow's check and its insert."""


def log_training_input(dataset: Any, tags: dict[str, str]) -> None:
    """`mlflow.log_input`, tried again when it loses MLflow's dataset race.

    MLflow's SQL store looks the dataset (experiment, name, digest) up and inserts it when missing,
    in two steps (`SqlAlchemyStore._log_inputs_impl`, MLflow 3.17): two runs that log the same data
    at once can both miss it, and the second insert breaks the unique key. The dataset exists by
    then, so the next attempt links it.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    def attempt() -> None:
        try:
            mlflow.log_input(dataset, context="training", tags=tags)
        except MlflowException as e:
            text = str(e).lower()
            if "dataset" in text and ("unique" in text or "duplicate" in text):
                raise DatasetRace(str(e)) from e
            raise

    retrying(3, 0.2, (DatasetRace,))(attempt)


def _log_stage(name: str, meta: dict[str, Any], files: list[Path], metrics: dict[str, float]):
    import mlflow

    with mlflow.start_run(run_name=name, nested=True):
        mlflow.set_tag("mlpipe.stage", name)
        task = meta.get("task") or {}
        mlflow.log_metrics({f"task.{k}": float(task[k]) for k in TASK_FIGURES if task.get(k)})
        params = {k: v for k, v in flatten("", meta).items() if not k.startswith("task.")}
        mlflow.log_params(_params(params))
        if metrics:
            mlflow.log_metrics(metrics)
        for file in files:
            if file.is_dir():
                mlflow.log_artifacts(str(file), artifact_path=file.name)
                _log_trials(file / "result.json")
            elif file.exists():
                mlflow.log_artifact(str(file))


# a tuning trial's state (tune.py's history rows) -> its MLflow run's status
TRIAL_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
TRIAL_METRICS = {"value": "cv_roc_auc", "std": "cv_roc_auc_std", "rounds": "best_rounds"}


def _log_trials(result_file: Path) -> None:
    """A tuning study's trials, in the active run (the tune stage's): one metric series
    (step = trial number) and one child run per trial.

    The one place trials reach MLflow, for both backends: the history rows of result.json have
    the same fields whether Optuna ran them here or Katib on a cluster (where the tune task read
    them back from the Trials). Katib's trial pods have no MLflow login by design, so nothing
    else can log them there; this task runs with it."""
    import json

    import mlflow

    if not result_file.is_file():
        return
    result = json.loads(result_file.read_text())
    history = result.get("history", [])
    for trial in history:
        if isinstance(trial.get("value"), (int, float)):
            mlflow.log_metric("trial_cv_roc_auc", float(trial["value"]), step=int(trial["number"]))
    parent = mlflow.active_run()
    if parent is None or not history:
        return
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient()
    algorithm = str(result.get("algorithm", ""))
    root = client.get_run(parent.info.run_id).data.tags.get("mlflow.parentRunId", "")
    for trial in history:
        name = str(trial.get("name") or f"{algorithm}-{trial['number']}")
        tags = {
            "mlflow.parentRunId": parent.info.run_id,
            "mlpipe.trial": name,
            "mlpipe.trial_number": str(trial["number"]),
            "mlpipe.trial_state": str(trial.get("state")),
            "mlpipe.backend": str(result.get("backend", "")),
            TRIAL_ALGORITHM_TAG: algorithm,
            TRIAL_ROOT_TAG: root,
            TRIAL_FEATURES_TAG: str(result.get("features_digest", "")),
        }
        best = result.get("best_trial")  # a number (Optuna) or a Trial's name (Katib)
        if best in (trial["number"], trial.get("name")) and trial.get("state") == "COMPLETE":
            tags[TRIAL_BEST_TAG] = "true"  # what the next study's warm start reads
        if trial.get("error"):
            tags["mlpipe.trial_error"] = str(trial["error"])[:500]
        run = client.create_run(parent.info.experiment_id, run_name=name, tags=tags)
        values = {TRIAL_METRICS[k]: trial.get(k) for k in TRIAL_METRICS}
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in _numeric(values).items()]
        params = [Param(k, v) for k, v in _params(trial.get("params") or {}).items()]
        # one request per trial for the values: a cluster's server checks the login on each
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, TRIAL_STATUS.get(str(trial.get("state")), "KILLED"))


def model_requirements(algorithm: str) -> list[str]:
    """Pinned requirements of the logged model: what loading it needs, not the whole project
    (MLflow would otherwise export every dependency of the uv project)."""
    from importlib.metadata import version

    packages = ["scikit-learn", "cloudpickle", "numpy", "pandas"]
    packages += {"lightgbm": ["lightgbm"], "xgboost": ["xgboost-cpu"]}.get(algorithm, [])
    return [f"{name}=={version(name)}" for name in packages]


def run(
    experiment: str,
    pipeline_run: str,
    config: dict[str, Any],
    stages: dict[str, dict[str, Any]],
    model_dir: str,
    data_path: str,
    companions: dict[str, str],
    tracking_uri: str = "",
) -> dict[str, Any]:
    """Log `stages` ({name: {"meta": ..., "files": [...], "metrics": {...}}}) and the model.

    `companions` maps file names to paths shipped inside the logged model (statistics, schema,
    metrics). Returns the MLflow run id and the logged model's URI.
    """
    import mlflow
    from mlflow.models import infer_signature

    configure(tracking_uri)
    run_id = parent_run_id(experiment, pipeline_run)
    # nested runs go to the active experiment: make it the parent's, not MLflow's default
    mlflow.set_experiment(experiment_id=mlflow.get_run(run_id).info.experiment_id)
    # the train stage's digest of the model dir: the pickle is checked before it is loaded
    model, spec = load_model(model_dir, stages.get("train", {}).get("meta", {}).get("sha256"))
    names = [f["name"] for f in spec["features"]]
    data = read_dataset(data_path)
    example = data[names].head(5)
    train_meta = stages.get("features", {}).get("meta", {}).get("train", {})

    with mlflow.start_run(run_id=run_id):
        mlflow.set_tag(PIPELINE_RUN_TAG, pipeline_run)
        mlflow.log_params(_params(flatten("", config)))
        ingested = stages.get("ingest", {}).get("meta", {})
        # MLflow resolves a source string to a file or URL source: SQL and API sources are
        # recorded as tags instead (their location is redacted by ingest)
        location = (
            ingested.get("source") if ingested.get("source_type") in ("file", "url") else None
        )
        dataset = mlflow.data.from_pandas(
            data,
            source=str(location) if location else None,
            targets=spec["label"],
            name="training-data",
            digest=(train_meta.get("sha256") or "")[:36] or None,
        )
        log_training_input(
            dataset,
            tags={
                "mlpipe.source": str(ingested.get("source", ""))[:500],
                "mlpipe.source_type": str(ingested.get("source_type", "")),
                DATASET_VERSION_TAG: str(ingested.get("version", "")),
            },
        )
        for name, stage in stages.items():
            _log_stage(
                name,
                stage.get("meta", {}),
                [Path(f) for f in stage.get("files", [])],
                stage.get("metrics", {}),
            )
        # the run's own metrics: the test metrics (each stage's figures are in its nested run)
        all_metrics = stages.get("evaluate", {}).get("metrics", {})
        if all_metrics:
            mlflow.log_metrics(all_metrics)

        with tempfile.TemporaryDirectory() as tmp:
            extra = [str(Path(model_dir) / FEATURE_SPEC_FILE)]
            for file_name, path in companions.items():
                if Path(path).is_file():
                    target = Path(tmp) / file_name
                    target.write_bytes(Path(path).read_bytes())
                    extra.append(str(target))
            signature = infer_signature(example, model.predict_proba(example)[:, 1])
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                # skops (MLflow's default) refuses LightGBM/XGBoost inside a Pipeline
                serialization_format="cloudpickle",
                signature=signature,
                input_example=example,
                pyfunc_predict_fn="predict_proba",
                pip_requirements=model_requirements(spec.get("algorithm", "")),
                extra_files=extra,
                params={k: str(v) for k, v in spec.get("params", {}).items()},
                tags={"algorithm": spec.get("algorithm", "")},
            )
        if all_metrics:
            mlflow.log_metrics(all_metrics, model_id=info.model_id)
    files = logged_manifest(info.model_uri)
    return {
        "run_id": run_id,
        "model_uri": info.model_uri,
        "model_id": info.model_id,
        # register writes these on the model version (the registry's database): every loader
        # of the version checks the downloaded files against them before unpickling
        "model_manifest_sha256": model_integrity.digest_of(files),
        "model_manifest": model_integrity.canonical(files),
    }


def logged_manifest(model_uri: str) -> dict[str, str]:
    """The manifest of the logged model as the artifact store holds it (downloaded right after
    logging: what every later download must equal)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return model_integrity.manifest(local)


def stage(meta: dict[str, Any], *files: str, with_metrics: bool = False) -> dict[str, Any]:
    """One stage's entry for `run`: its artifact metadata, files to attach, scalar metrics."""
    metrics = _numeric({k: v for k, v in meta.items() if k != "task"}) if with_metrics else {}
    return {"meta": dict(meta), "files": [f for f in files if f], "metrics": metrics}
