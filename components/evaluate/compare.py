"""The gate task: evaluate the registry's current champion on the challenger's test rows, decide
(gate.py), write the blessing and the HTML report, and record the verdict in MLflow.

It reads the registry, so its task is never cached; the challenger's own evaluation (the slow
part: explanations) comes from the cached evaluate task.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from components.common import registry
from components.common.artifacts import read_json, write_json, write_text
from components.common.errors import DataError, StageError
from components.evaluate.evaluate import evaluate_model, parse_config, read_test_set
from components.evaluate.gate import Blessing, decide

STAGE = "gate"


def champion_evaluation(
    registered_model: str, test_path: str, cfg: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(the champion's evaluation on these rows, its version, why it could not be scored).
    (None, None, None) when there is no champion yet."""
    client = registry.client()
    current = registry.alias_version(client, registered_model, registry.CHAMPION)
    if current is None:
        return None, None, None
    version = str(current.version)
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        try:
            model, spec, _ = registry.load_version(registered_model, version, tmp)
        except Exception as exc:  # a download or unpickling problem: report, fail closed
            return None, version, f"cannot load it: {exc}"
    try:
        summary = evaluate_model(
            model, spec, read_test_set(test_path), cfg, test_path, with_explanations=False
        )
    except (StageError, DataError) as exc:
        return None, version, str(exc)
    summary["model"]["version"] = version
    return summary, version, None


def run(
    test_path: str,
    summary_path: str,
    evaluation: dict[str, Any],
    registered_model: str,
    blessing_path: str,
    report_path: str,
) -> tuple[Blessing, dict[str, Any], dict[str, Any] | None]:
    """Decide on the challenger summarised at `summary_path`; write blessing and report."""
    from components.evaluate.report import render

    cfg = parse_config(evaluation)
    challenger = read_json(summary_path)
    champion, version, error = champion_evaluation(registered_model, test_path, cfg)
    blessing = decide(challenger, champion, cfg, version, error)
    write_json(
        {**blessing.to_dict(), "champion_metrics": (champion or {}).get("metrics")},
        blessing_path,
    )
    write_text(render(challenger, champion, blessing), report_path)
    return blessing, challenger, champion


def verdict_run(experiment: str, pipeline_run: str, tracked: str | None) -> str:
    """The MLflow run the verdict goes on: `tracked`, the run track logged to (its
    `logged_model` output names it), when track ran in this pipeline run; when track was served
    from the cache its run belongs to an earlier pipeline run, so this pipeline run gets a run of
    its own (a gate retry finds it again) that points at `tracked` for the params and metrics."""
    import mlflow

    from components.common import mlflow_utils as mu

    if not tracked:
        raise StageError(
            STAGE, "track's logged_model output has no run_id: connect gate to track's output"
        )
    client = mlflow.MlflowClient()
    if client.get_run(tracked).data.tags.get(mu.PIPELINE_RUN_TAG) == pipeline_run:
        return tracked
    run_id = mu.parent_run_id(experiment, pipeline_run)
    client.set_tag(run_id, mu.RESULTS_RUN_TAG, tracked)
    return run_id


def log_to_mlflow(
    run_id: str, blessing: Blessing, champion: dict[str, Any] | None, files: dict[str, str]
) -> None:
    """The verdict on the MLflow run `run_id` (see `verdict_run`): tags, the champion's metrics
    on the same rows (`champion.<metric>`), and `files` ({file name: path}) under `gate/`; a file
    whose bytes an earlier run of the experiment already holds is not logged again, a tag points
    at that run's copy."""
    import mlflow

    from components.common import mlflow_utils as mu

    client = mlflow.MlflowClient()
    client.set_tag(run_id, mu.GATE_TAG, "passed" if blessing.blessed else "blocked")
    client.set_tag(run_id, mu.GATE_MODE_TAG, blessing.mode)
    if blessing.failed_checks:
        client.set_tag(run_id, mu.GATE_FAILED_TAG, "; ".join(blessing.failed_checks)[:5000])
    if blessing.champion_version:
        client.set_tag(run_id, mu.GATE_CHAMPION_TAG, blessing.champion_version)
    for name, value in ((champion or {}).get("metrics") or {}).items():
        client.log_metric(run_id, f"champion.{name}", float(value))
    experiment_id = client.get_run(run_id).info.experiment_id
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in files.items():  # KFP's artifact files have no extension: name them
            if not Path(path).is_file():
                continue
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            earlier = _run_holding(client, experiment_id, name, digest)
            if earlier is not None:  # an unchanged re-run: ~0.4 MB of report each time otherwise
                uri = f"runs:/{earlier}/gate/{name}"
                client.set_tag(run_id, f"{mu.GATE_SAME_AS_TAG}.{name}", uri)
                continue
            target = Path(tmp) / name
            try:  # the name MLflow keeps, for the same bytes
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
            mu.log_file_once(client, run_id, str(target), artifact_path="gate")
            # only after the upload: a run found by this tag must hold the file
            client.set_tag(run_id, f"{mu.GATE_SHA256_TAG}.{name}", digest)


def _run_holding(client: Any, experiment_id: str, name: str, digest: str) -> str | None:
    """The id of a run in the experiment that holds gate/`name` with these bytes, if any."""
    from components.common import mlflow_utils as mu

    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{mu.GATE_SHA256_TAG}.{name}` = '{digest}'",
        max_results=1,
    )
    return found[0].info.run_id if found else None
