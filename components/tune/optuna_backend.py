"""Local tuning backend: an Optuna TPE study with successive halving over the folds.

Trials run one at a time in this process (n_jobs=1), each estimator on the config's
`threads_per_trial` threads (the default, 2, fills a 2-core laptop); each algorithm has its own
tune task.

Reproducible: the study stops after `max_trials` trials, run in order with a seeded sampler, so the
same config, data and seed give the same trials and the same best params on any machine load. The
optional wall-time cap (`time_budget_s`) breaks that when it binds (how many trials fit depends on
the machine): the result then says so (`stopped_by: time_budget`) and the task prints it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd

from components.common.errors import StageError
from components.common.search_space import SearchSpace, to_optuna
from components.tune.cv import cross_validate

STAGE = "tune"


def run_optuna(
    train: pd.DataFrame,
    spec: dict[str, Any],
    transformer: Any,
    algorithm: str,
    space: SearchSpace,
    fixed: dict[str, Any],
    folds: int,
    strategy: str,
    seed: int,
    max_trials: int,
    time_budget_s: float | None,
    order: Any = None,
    first: list[dict[str, Any]] | None = None,
    models_out: list[Any] | None = None,
) -> dict[str, Any]:
    """Search `space` (on top of the `fixed` params); return the typed tuning result. `first`:
    searched params to try first, in order (start params, then warm_start.py's). `models_out`:
    filled with the best trial's k fold models (only the best so far is held in memory)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = to_optuna(space)
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=8)
    # multi-fidelity: the folds are the resource. Successive halving scores every trial on its
    # first fold and lets it go on only while it is among the best third of the trials scored
    # that far (the best so far, for the first two): a weak trial costs one fit, not k.
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    # `first`: the configured start params (trial 0: tuning can only match or beat the untuned
    # model by CV), then the warm start's; re-scored on these rows, an old score is never reused
    first = [p for p in first or [] if p]
    for params in first:
        study.enqueue_trial(params, skip_if_exists=True)
    rounds: dict[int, int | None] = {}
    kept: dict[str, Any] = {"trial": None, "value": -math.inf}  # whose models models_out holds

    def suggest(trial: optuna.Trial, name: str, dist: Any) -> Any:
        if isinstance(dist, optuna.distributions.FloatDistribution):
            return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        if isinstance(dist, optuna.distributions.IntDistribution):
            return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        return trial.suggest_categorical(name, dist.choices)

    def objective(trial: optuna.Trial) -> float:
        try:
            return evaluate(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:300])
            print(f"[tune {algorithm}] trial {trial.number} failed: {exc}", flush=True)
            raise

    def evaluate(trial: optuna.Trial) -> float:
        params = {**fixed, **{k: suggest(trial, k, d) for k, d in distributions.items()}}

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        keep = models_out is not None
        result = cross_validate(
            train,
            spec,
            transformer,
            algorithm,
            params,
            folds,
            strategy,
            seed,
            report,
            order,
            keep_models=keep,
        )
        if not math.isfinite(result.mean):
            raise ValueError(f"cross-validation score is {result.mean}")
        if keep and result.mean > kept["value"]:
            models_out[:] = result.models
            kept.update(trial=trial.number, value=result.mean)
        rounds[trial.number] = result.rounds()
        trial.set_user_attr("rounds", result.rounds())
        trial.set_user_attr("cv_std", result.std)
        trial.set_user_attr("seconds", round(result.seconds, 2))
        print(  # streamed to the run log: one line per trial
            f"[tune {algorithm}] trial {trial.number}: cv_roc_auc {result.mean:.5f} "
            f"± {result.std:.5f} ({result.seconds:.1f}s)",
            flush=True,
        )
        return result.mean

    started = time.perf_counter()
    study.optimize(
        objective,
        n_trials=max_trials,
        timeout=time_budget_s,
        catch=(Exception,),  # a trial that raises is recorded as failed; the study goes on
        gc_after_trial=True,
    )
    wall = time.perf_counter() - started
    states = [t.state for t in study.trials]
    stopped_by = stop_reason(len(states), max_trials, time_budget_s)
    if stopped_by == "time_budget":
        print(
            f"[tune {algorithm}] WARNING: the time budget ({time_budget_s:g} s) stopped the study "
            f"after {len(states)} of {max_trials} trials: the result depends on machine speed",
            flush=True,
        )
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    if not done:
        reasons = sorted({t.user_attrs["error"] for t in failed if "error" in t.user_attrs})
        example = f" (e.g. {reasons[0]})" if reasons else ""
        raise StageError(
            STAGE, f"{algorithm}: all {len(states)} trials failed{example}", subject=algorithm
        )
    best = study.best_trial
    if models_out is not None and kept["trial"] != best.number:
        models_out.clear()  # a tie Optuna broke the other way: the train stage fits
    best_params = {**fixed, **best.params}
    best_rounds = rounds.get(best.number)
    if best_rounds is not None:
        best_params["n_estimators"] = best_rounds
    return {
        "backend": "optuna",
        "algorithm": algorithm,
        "best_params": best_params,
        "best_score": float(best.value),
        "best_std": float(best.user_attrs.get("cv_std", 0.0)),
        "best_trial": best.number,
        "trials": len(states),
        "trials_complete": len(done),
        "trials_failed": len(failed),
        "trials_pruned": sum(s == optuna.trial.TrialState.PRUNED for s in states),
        "max_trials": max_trials,
        "time_budget_s": time_budget_s,
        "stopped_by": stopped_by,
        "wall_s": round(wall, 2),
        "trials_per_min": round(len(states) / wall * 60, 2) if wall > 0 else None,
        "history": [
            {
                "number": t.number,
                "name": trial_name(algorithm, t.number),
                "state": t.state.name,
                "value": t.value,
                "std": t.user_attrs.get("cv_std"),
                "rounds": t.user_attrs.get("rounds"),
                "params": t.params,
                "seconds": t.user_attrs.get("seconds"),
                "error": t.user_attrs.get("error"),
            }
            for t in study.trials
        ],
    }


def trial_name(algorithm: str, number: int) -> str:
    """A local trial's name (Optuna's trials have numbers only), like a Katib Trial's: the
    history row's `name`, which the track task tags the trial's MLflow run with."""
    return f"tune-{algorithm}-{number}".lower().replace("_", "-")


def stop_reason(trials: int, max_trials: int, time_budget_s: float | None) -> str:
    """What ended the study: `max_trials` (reproducible) or the wall-time cap `time_budget`."""
    if trials < max_trials and time_budget_s is not None:
        return "time_budget"
    return "max_trials"
