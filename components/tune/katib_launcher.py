"""Running an Experiment on the cluster through the Kubernetes adapter, and reading it back into
the local backend's result.

- status reading: `finished`, trial counts and progress lines, metrics, the trial history.
- `run_katib`: create (Katib's webhook checks it), poll until Succeeded / Failed / timeout,
  return the optimal trial.
- `run_on_katib`: the tune stage's entry; stages the trials' inputs in the project's object store
  (katib_staging.py), renders the Experiment from the training config, removes the staged copy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from components.common.config import KatibConfig
from components.common.errors import StageError
from components.common.images import PIPELINE_IMAGE
from components.common.k8s import (
    KATIB_EXPERIMENT,
    KATIB_TRIAL,
    AlreadyExists,
    Forbidden,
    KubernetesAdapter,
    KubernetesError,
    NotFound,
    WaitTimeout,
    wait_for,
)
from components.common.search_space import SearchSpace, decode
from components.tune.katib_render import OBJECTIVE, SPEC_HASH, render_experiment
from components.tune.katib_staging import (
    Staged,
    remove_staged,
    stage_inputs,
    staging_base,
    staging_key,
)

STAGE = "tune"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"

# The backend's settings live in the config model (model_training.katib).
KatibOptions = KatibConfig


# ---------------------------------------------------------------- status


def _condition(obj: Mapping[str, Any], kind: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def finished(obj: Mapping[str, Any]) -> bool:
    return bool(_condition(obj, "Succeeded") or _condition(obj, "Failed"))


def _counts_of(status: Mapping[str, Any]) -> dict[str, int]:
    get = lambda k: int(status.get(k) or 0)  # noqa: E731
    return {
        "trials": get("trials"),
        "trials_complete": get("trialsSucceeded"),
        "trials_failed": get("trialsFailed") + get("trialMetricsUnavailable"),
        "trials_pruned": get("trialsEarlyStopped"),
        "trials_killed": get("trialsKilled"),
        "trials_running": get("trialsRunning") + get("trialsPending"),
    }


def _progress(counts: dict[str, int]) -> str:
    return (
        f"{counts['trials']} trials: {counts['trials_complete']} succeeded, "
        f"{counts['trials_failed']} failed, {counts['trials_pruned']} early-stopped, "
        f"{counts['trials_running']} running or pending"
    )


def _metric(metrics: list[dict], name: str, strategy: str = "latest") -> float | None:
    """The finite value of metric `name` by `strategy` (else its latest), or None."""
    for m in metrics or []:
        if m.get("name") == name:
            try:
                value = float(m.get(strategy) or m.get("latest"))
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                return value
    return None


def _observed(obj: Mapping[str, Any]) -> list[dict]:
    """The metrics observed for a trial (its status, or an experiment's optimal trial)."""
    return (obj.get("observation") or {}).get("metrics") or []


def _assignments(items: list[dict]) -> dict[str, Any]:
    return {a["name"]: a["value"] for a in items}


def _searched(space: SearchSpace, assignments: Mapping[str, Any]) -> dict[str, Any]:
    """The assignments of `space`'s parameters, decoded (ValueError when one does not decode)."""
    return decode(space, {k: v for k, v in assignments.items() if k in space})


def _strategy(experiment: Mapping[str, Any], metric: str) -> str:
    objective = (experiment.get("spec") or {}).get("objective") or {}
    for s in objective.get("metricStrategies") or []:
        if s.get("name") == metric:
            return s.get("value", "latest")
    return "max" if objective.get("type") == "maximize" else "min"


def _history(
    adapter: KubernetesAdapter, namespace: str, name: str, space: SearchSpace, strategy: str
) -> list[dict[str, Any]]:
    """One row per Trial (as the local backend's history), oldest first; [] if unreadable."""
    try:
        trials = adapter.list(
            KATIB_TRIAL.group,
            KATIB_TRIAL.version,
            namespace,
            KATIB_TRIAL.plural,
            label_selector=f"{EXPERIMENT_LABEL}={name}",
        )
    except KubernetesError:
        return []
    states = {
        "Succeeded": "COMPLETE",
        "EarlyStopped": "PRUNED",
        "Failed": "FAIL",
        "MetricsUnavailable": "FAIL",
        "Killed": "KILLED",
        "Running": "RUNNING",
    }
    trials.sort(key=lambda t: (t["metadata"].get("creationTimestamp", ""), t["metadata"]["name"]))
    rows = []
    for number, trial in enumerate(trials):
        state, message = "WAITING", None
        for kind, label in states.items():
            cond = _condition(trial, kind)
            if cond:
                state, message = label, cond.get("message")
                break
        assigned = _assignments(trial.get("spec", {}).get("parameterAssignments", []))
        try:
            params = _searched(space, assigned)
        except ValueError:
            params = assigned
        status = trial.get("status") or {}
        metrics = _observed(status)
        rounds = _metric(metrics, "best_rounds")
        rows.append(
            {
                "number": number,
                "name": trial["metadata"]["name"],
                "state": state,
                "value": _metric(metrics, OBJECTIVE, strategy),
                "std": _metric(metrics, f"{OBJECTIVE}_std"),
                "rounds": int(rounds) if rounds is not None and rounds >= 1 else None,
                "params": params,
                "seconds": _seconds(status.get("startTime"), status.get("completionTime")),
                "error": message if state == "FAIL" else None,
            }
        )
    return rows


def _seconds(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    try:
        parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
        return round((parse(end) - parse(start)).total_seconds(), 1)
    except ValueError:
        return None


# ---------------------------------------------------------------- run


def _experiments(namespace: str) -> tuple[str, str, str, str]:
    """The adapter's address of the Katib Experiments in `namespace`."""
    return (KATIB_EXPERIMENT.group, KATIB_EXPERIMENT.version, namespace, KATIB_EXPERIMENT.plural)


def _submit(
    adapter: KubernetesAdapter, experiment: dict, log: Callable[[str], None]
) -> dict[str, Any]:
    ns, name = experiment["metadata"]["namespace"], experiment["metadata"]["name"]
    args = _experiments(ns)
    try:
        return adapter.create(*args, experiment)
    except AlreadyExists:
        existing = adapter.get(*args, name)
        ours = experiment["metadata"].get("annotations", {}).get(SPEC_HASH)
        theirs = (existing.get("metadata", {}).get("annotations") or {}).get(SPEC_HASH)
        if not ours or ours != theirs:
            raise StageError(
                STAGE,
                f"a different Katib Experiment {ns}/{name} already exists; delete it or choose "
                "another name",
                subject=name,
            ) from None
        if not _condition(existing, "Failed"):
            log(f"katib: attaching to the existing experiment {ns}/{name} (same spec)")
            return existing
        log(f"katib: the existing experiment {ns}/{name} failed; starting it again")
        adapter.delete(*args, name)
        return adapter.create(*args, experiment)


def run_katib(
    adapter: KubernetesAdapter,
    experiment: dict[str, Any],
    timeout_s: float,
    poll_s: float,
    space: SearchSpace,
    *,
    fixed: Mapping[str, Any] | None = None,
    algorithm: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict[str, Any]:
    """Submit `experiment`, wait for it, return the typed result of the local backend:
    {backend, best_params (fixed + decoded optimal assignments, `n_estimators` from the trial's
    best_rounds), best_score, trials, trials_failed, trials_pruned, wall_s, ...}.

    StageError when the experiment is refused (Katib's webhook, RBAC) or cannot be created, ends
    Failed (Katib's message),
    does not finish within `timeout_s` (it is deleted), or when no trial produced a score."""
    meta = experiment["metadata"]
    ns, name = meta["namespace"], meta["name"]
    label = f"katib {ns}/{name}"
    started = clock()
    try:
        _submit(adapter, experiment, log)
    except Forbidden as exc:
        raise StageError(
            STAGE,
            f"{label}: not allowed to create Katib Experiments ({exc}); the pipeline's service "
            f"account needs create/get/watch/delete on experiments.kubeflow.org and get/list on "
            f"trials.kubeflow.org in namespace {ns} (manifests/base/rbac.yaml grants them in "
            "mlpipe; model_training.katib.namespace chooses the namespace)",
            subject=name,
        ) from exc
    except KubernetesError as exc:
        raise StageError(
            STAGE, f"{label}: cannot create the experiment: {exc}", subject=name
        ) from exc

    last_line = [""]

    def report(obj: dict) -> None:
        line = _progress(_counts_of(obj.get("status") or {}))
        if line != last_line[0]:
            last_line[0] = line
            log(f"{label}: {line}")

    args = (*_experiments(ns), name)
    try:
        done = wait_for(
            adapter, *args, finished, timeout_s, poll_s, sleep=sleep, clock=clock, on_poll=report
        )
    except WaitTimeout as exc:
        counts = _counts_of((exc.last or {}).get("status") or {})
        cleanup = "deleted"
        try:
            adapter.delete(*args)
        except NotFound:
            pass
        except KubernetesError as err:
            cleanup = f"could not be deleted ({err})"
        raise StageError(
            STAGE,
            f"{label} did not finish within {timeout_s:g}s ({_progress(counts)}); the "
            f"experiment was {cleanup}",
            subject=name,
        ) from None
    except NotFound as exc:
        raise StageError(STAGE, f"{label} disappeared while running: {exc}", subject=name) from exc
    except KubernetesError as exc:
        raise StageError(
            STAGE, f"{label}: lost track of the experiment: {exc}", subject=name
        ) from exc

    status = done.get("status") or {}
    counts = _counts_of(status)
    failed = _condition(done, "Failed")
    if failed:
        raise StageError(
            STAGE,
            f"{label} failed: {failed.get('message') or failed.get('reason') or 'no message'} "
            f"({_progress(counts)})",
            subject=name,
        )
    optimal = status.get("currentOptimalTrial") or {}
    strategy = _strategy(experiment, OBJECTIVE)
    metrics = _observed(optimal)
    score = _metric(metrics, OBJECTIVE, strategy)
    assignments = _assignments(optimal.get("parameterAssignments") or [])
    if counts["trials_complete"] + counts["trials_pruned"] == 0 or score is None or not assignments:
        raise StageError(
            STAGE,
            f"{label}: every trial failed, no trial reported {OBJECTIVE} ({_progress(counts)})",
            subject=name,
        )
    try:
        searched = _searched(space, assignments)
    except ValueError as exc:
        raise StageError(STAGE, f"{label}: optimal trial: {exc}", subject=name) from exc
    best_params = {**(fixed or {}), **searched}
    rounds = _metric(metrics, "best_rounds")
    if rounds is not None and rounds >= 1:
        best_params["n_estimators"] = int(rounds)
    wall = clock() - started
    return {
        "backend": "katib",
        "algorithm": algorithm,
        "experiment": f"{ns}/{name}",
        "best_params": best_params,
        "best_score": float(score),
        "best_std": _metric(metrics, "cv_roc_auc_std") or 0.0,
        "best_trial": optimal.get("bestTrialName"),
        **{k: v for k, v in counts.items() if k != "trials_running"},
        "wall_s": round(wall, 2),
        "trials_per_min": round(counts["trials"] / wall * 60, 2) if wall > 0 else None,
        "history": _history(adapter, ns, name, space, strategy),
    }


# ---------------------------------------------------------------- the tune stage's entry


SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def experiment_namespace(opts: KatibOptions, sa_file: Path = SA_NAMESPACE_FILE) -> str:
    """`katib.namespace`, or (null) the namespace this task's pod runs in."""
    if opts.namespace:
        return opts.namespace
    try:
        own = sa_file.read_text().strip()
    except OSError:
        own = ""
    if not own:
        raise StageError(
            STAGE,
            f"model_training.katib.namespace is null (the task's own namespace) but {sa_file} "
            "is not readable: set the namespace the Experiment runs in",
            subject="katib.namespace",
        )
    return own


def task_folds(train_path: str, transformer_dir: str, training: Any) -> list[tuple[Any, Any]]:
    """The folds the local backend would use for these rows: what the trials get."""
    import numpy as np

    from components.common.artifacts import load_model, read_dataset
    from components.common.splitting import split_indices

    train = read_dataset(train_path)
    _, spec = load_model(transformer_dir)
    order = None
    keys = spec.get("keys", [])
    if training.cv_strategy == "time" and keys:
        order = np.lexsort([train[k].to_numpy() for k in reversed(keys)])
    y = train[spec["label"]].to_numpy()
    return split_indices(y, training.cv_folds, training.cv_strategy, training.seed, order)


def task_experiment(
    namespace: str,
    algorithm: str,
    space: SearchSpace,
    fixed: Mapping[str, Any],
    training: Any,
    opts: KatibOptions,
    staged: Staged,
) -> dict[str, Any]:
    """The Experiment the tune task submits: trials read `staged` (the cluster rehearsal renders
    it with this function too)."""
    return render_experiment(
        namespace=namespace,
        algorithm=algorithm,
        space=space,
        train_uri=staged.train_uri,
        transformer_uri=staged.transformer_uri,
        folds_uri=staged.folds_uri,
        fixed_params=fixed,
        cv_folds=training.cv_folds,
        cv_strategy=training.cv_strategy,
        seed=training.seed,
        max_trials=training.max_trials,
        parallel_trials=opts.parallel_trials,
        max_failed_trials=opts.max_failed_trials,
        katib_algorithm=opts.algorithm,
        algorithm_settings=opts.algorithm_settings,
        goal=opts.goal,
        early_stopping=opts.early_stopping,
        image=opts.image or PIPELINE_IMAGE,
        resources=opts.resources,
        env=opts.env,
        env_from_secrets=tuple(opts.env_from_secrets),
        env_config_map=opts.env_config_map,
        s3_secret=opts.s3_secret,
        service_account=opts.service_account,
    )


def run_on_katib(
    train_path: str,
    transformer_dir: str,
    algorithm: str,
    training: Any,
    options: KatibOptions | Mapping[str, Any] | None = None,
    adapter: KubernetesAdapter | None = None,
    *,
    splits: Sequence[tuple[Any, Any]] | None = None,
    identity: Sequence[str] = (),
    fixed: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict[str, Any]:
    """The tune stage's Katib path. `training` is the validated `model_training` config
    (TrainingConfig); `train_path` / `transformer_dir` are the task's local copies of its inputs.

    They are staged with the folds (`splits`, default `task_folds`) under the staging location
    (katib_staging.py; `identity`, e.g. the artifacts' URIs, names the prefix), the Experiment is
    run in `katib.namespace` with trials reading the staged copy, and the copy is removed when the
    Experiment is over, whatever its outcome. `fixed`: the estimator params not searched (default
    the config's; the tune stage adds its thread count)."""
    from components.common.k8s import CustomObjectsAdapter

    opts = options if isinstance(options, KatibOptions) else KatibOptions(**(options or {}))
    space = training.search_spaces.get(algorithm)
    if not space:
        raise StageError(STAGE, f"no search space for {algorithm}", subject=algorithm)
    fixed = dict(training.params_for(algorithm) if fixed is None else fixed)
    namespace = experiment_namespace(opts)
    base = staging_base(opts.staging_url)
    key = staging_key(algorithm, *(identity or (train_path, transformer_dir)))
    if splits is None:
        splits = task_folds(train_path, transformer_dir, training)
    try:
        staged = stage_inputs(train_path, transformer_dir, splits, base, key)
    except Exception as exc:
        raise StageError(
            STAGE,
            f"cannot stage the trials' inputs under {base}/{key}: {type(exc).__name__}: {exc}",
            subject=algorithm,
        ) from exc
    log(f"katib: trial inputs staged under {staged.prefix}")
    try:
        experiment = task_experiment(namespace, algorithm, space, fixed, training, opts, staged)
        return run_katib(
            adapter or CustomObjectsAdapter(),
            experiment,
            opts.timeout_s,
            opts.poll_s,
            space,
            fixed=fixed,
            algorithm=algorithm,
            log=log,
        )
    finally:
        problem = remove_staged(staged.prefix)
        if problem:
            log(f"katib: could not remove the staged inputs {staged.prefix}: {problem}")
