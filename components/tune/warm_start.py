"""Warm start: the parameter sets earlier studies of the same features found best, tried first.

The track task logs every trial as an MLflow run (components/track/track.py, `_log_trials`) and
tags (components/common/mlflow_utils.py, TRIAL_*) the best trial of each study, the study's
pipeline run (a model version's run_id) and the feature set. A new study enqueues, after
the configured params: the best trial of the study that trained the current champion, then the
best trials of the newest other studies of the same algorithm and features (at most `limit` in
all), leaving out studies whose pipeline run the gate blocked (e.g. a degraded rehearsal's). They
are re-scored on this run's rows like any trial, so a stale one costs one trial and can
never be chosen on an old score.

Read-only and best effort: no experiment yet (a first run), no tracking server, or a value the
search space no longer holds means fewer warm-start trials, said on the task log, never a failed
run. Only the local (Optuna) backend enqueues them: a Katib Experiment has no trial queue.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from components.common import runtime_env
from components.common.mlflow_utils import (
    GATE_TAG,
    TRIAL_ALGORITHM_TAG,
    TRIAL_BEST_TAG,
    TRIAL_FEATURES_TAG,
    TRIAL_ROOT_TAG,
)
from components.common.search_space import SearchSpace, decode


def features_digest(spec: dict[str, Any]) -> str:
    """What makes trials comparable: the features (name, kind, dtype, categories) and the label."""
    keys = ("name", "kind", "dtype", "values")
    features = [{k: f.get(k) for k in keys} for f in spec["features"]]
    payload = json.dumps({"label": spec.get("label"), "features": features}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def in_space(space: SearchSpace, params: dict[str, str]) -> dict[str, Any] | None:
    """The searched params typed as the space declares them; None when one is missing, unknown
    or outside the space (the space changed since that study)."""
    if set(params) != set(space):
        return None
    try:
        typed = decode(space, params)
    except ValueError:
        return None
    for name, value in typed.items():
        spec = space[name]
        if spec.type != "categorical" and not spec.low <= value <= spec.high:
            return None
    return typed


def previous_best(
    algorithm: str,
    digest: str,
    space: SearchSpace,
    limit: int,
    experiment: str = "",
    registered_model: str = "",
    tracking_uri: str = "",
) -> list[dict[str, Any]]:
    """Up to `limit` parameter sets: the champion's study's best, then the newest studies'."""
    if limit <= 0 or not experiment:
        return []
    try:
        return _query(algorithm, digest, space, limit, experiment, registered_model, tracking_uri)
    except Exception as exc:  # the tracking server is down or refuses: tune without them
        print(f"[tune {algorithm}] warm start skipped: {type(exc).__name__}: {exc}", flush=True)
        return []


def _query(algorithm, digest, space, limit, experiment, registered_model, tracking_uri):
    uri = runtime_env.tracking_uri("tune", tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return []  # a first run: no store yet (and creating one here would be a side effect)
    import mlflow

    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    where = (
        f"tags.`{TRIAL_BEST_TAG}` = 'true' AND tags.`{TRIAL_ALGORITHM_TAG}` = '{_quote(algorithm)}'"
        f" AND tags.`{TRIAL_FEATURES_TAG}` = '{_quote(digest)}'"
    )
    runs = []
    champion_run = _champion_run(client, registered_model)
    if champion_run:
        runs += client.search_runs(
            [found.experiment_id], f"{where} AND tags.`{TRIAL_ROOT_TAG}` = '{_quote(champion_run)}'"
        )[:1]
    # a few more than asked: some may come from blocked runs
    runs += client.search_runs(
        [found.experiment_id], where, order_by=["attributes.start_time DESC"], max_results=3 * limit
    )
    out: list[dict[str, Any]] = []
    for run in runs:
        if len(out) == limit:
            break
        if _gate_blocked(client, run.data.tags.get(TRIAL_ROOT_TAG, "")):
            continue
        typed = in_space(space, dict(run.data.params))
        if typed is not None and typed not in out:
            out.append(typed)
    return out


def _gate_blocked(client: Any, root_run: str) -> bool:
    """Whether the gate blocked the pipeline run `root_run` (a run without a verdict is not)."""
    if not root_run:
        return False
    try:
        return client.get_run(root_run).data.tags.get(GATE_TAG) == "blocked"
    except Exception:  # the pipeline run was deleted: nothing to trust its trials by
        return True


def _champion_run(client: Any, registered_model: str) -> str | None:
    """The pipeline run that trained the current champion, if there is one."""
    if not registered_model:
        return None
    try:
        return client.get_model_version_by_alias(registered_model, "champion").run_id
    except Exception:  # no such model or alias yet
        return None


def _quote(value: str) -> str:
    return value.replace("'", "")
