"""A Katib trial: cross-validate one parameter set and print the metrics for Katib's collector.

    python -m components.tune.trial --algorithm lightgbm --train-data <path|URI> \
        --transformer <dir|URI> --cv-folds 3 --cv-strategy stratified --seed 42 \
        --fixed-params-json '{"n_estimators": 2000}' --space-json '{"learning_rate": {...}}' \
        --param learning_rate=0.05 --param num_leaves=63 [--folds <folds.npz path|URI>]

Output (stdout), in the StdOut collector's text format (`<RFC 3339 time> name=value`; Katib's
default filter is `([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)`):
- after each fold, `cv_roc_auc=<mean of the folds so far>`: medianstop compares these (from its
  `start_step`-th value on) with the other trials, and the experiment's `latest` strategy makes the
  last one — the mean over all folds — the trial's objective;
- then `cv_roc_auc_std=` and, for boosting, `best_rounds=` (the rounds early stopping chose).
Everything else goes to stderr (Katib captures both: no other line may carry `<metric>=`: the
collector parses any line naming a metric, and an unparsable value such as `nan` kills it when
early stopping is on — kubeflow/katib v0.19.0 cmd/metricscollector/v1beta1/file-metricscollector/
main.go, `watchMetricsFile`).
Exit status: 0 scored, 1 failed (the reason on stderr), 2 bad arguments.

Cross-validation is `components.tune.cv.cross_validate`, the same the local backend runs, on the
folds the tune task staged (`--folds`; without it the trial derives them from the seed and the
strategy as the local backend does). On a cluster every input is an s3:// URL of the project's
own store (components/tune/katib_staging.py), read with fsspec/s3fs using the endpoint and
credentials the trial template mounts (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).

A trial never talks to MLflow: trial pods run training code and get no MLflow login (least
privilege). Katib keeps what the trial printed; the tune task reads it back from the Trials into
its history and the track task logs each trial as an MLflow run, as for local trials
(components/track/track.py, `_log_trials`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.common.search_space import ParamSpec, SearchSpace, decode

OBJECTIVE = "cv_roc_auc"


def emit(name: str, value: float) -> None:
    """One metric line for Katib's collector, time-stamped so `latest` follows the fold order."""
    if not math.isfinite(value):  # the collector's filter cannot parse nan/inf
        note(f"not reporting {name}: {value}")  # no '=': the collector would parse it
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = str(value) if isinstance(value, int) else f"{value:.6f}"
    print(f"{stamp} {name}={text}", flush=True)


def note(message: str) -> None:
    print(f"[trial] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m components.tune.trial", description=__doc__)
    p.add_argument("--algorithm", required=True)
    p.add_argument("--train-data", required=True, help="training rows (parquet): path or URI")
    p.add_argument("--transformer", required=True, help="fitted transformer folder: path or URI")
    p.add_argument("--folds", default="", help="the folds (folds.npz): path or URI")
    p.add_argument("--cv-folds", type=int, default=3)
    p.add_argument("--cv-strategy", choices=["stratified", "time"], default="stratified")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fixed-params-json", default="{}", help="estimator params not searched")
    p.add_argument("--space-json", required=True, help="the search space: {name: ParamSpec}")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one searched parameter as Katib assigned it (repeat)",
    )
    p.add_argument("--trial-name", default=os.environ.get("KATIB_TRIAL_NAME", ""))
    return p.parse_args(argv)


def parse_params(space: SearchSpace, pairs: list[str]) -> dict[str, Any]:
    """`--param name=value` pairs -> typed values; every searched parameter exactly once."""
    raw: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE")
        if name in raw:
            raise ValueError(f"--param {name} given twice")
        if "${" in value:
            raise ValueError(f"--param {name}: {value!r} was not substituted by Katib")
        raw[name] = value
    missing = sorted(set(space) - set(raw))
    if missing:
        raise ValueError(f"no value for searched parameter(s) {missing}")
    return decode(space, raw)


def localize(uri: str, workdir: Path) -> str:
    """A local path for `uri`: local paths as they are, remote URIs (s3://, gs://, minio://…)
    copied into `workdir` with fsspec (minio:// is KFP's name for its S3-compatible store)."""
    if "://" not in uri:
        return uri
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    import fsspec

    remote = "s3://" + uri.removeprefix("minio://") if uri.startswith("minio://") else uri
    fs, path = fsspec.core.url_to_fs(remote)
    target = workdir / Path(path.rstrip("/")).name
    if fs.isdir(path):
        fs.get(path.rstrip("/") + "/", str(target), recursive=True)
    else:
        fs.get(path, str(target))
    return str(target)


def _order(train: Any, keys: list[str]) -> Any:
    """Row order for time-aware folds: by the feature spec's key columns (time, then id) — the
    tune stage orders the same way."""
    import numpy as np

    if not keys:
        return None
    return np.lexsort([train[k].to_numpy() for k in reversed(keys)])


def parse_space(text: str) -> SearchSpace:
    data = json.loads(text)
    if not isinstance(data, dict) or not data:
        raise ValueError("--space-json: expected a non-empty mapping {name: ParamSpec}")
    return {k: ParamSpec.model_validate(v) for k, v in data.items()}


def run(args: argparse.Namespace, searched: dict[str, Any]) -> dict[str, Any]:
    """Cross-validate the fixed params plus `searched`; print the metric lines."""
    from components.common.artifacts import load_model, read_dataset
    from components.tune.cv import cross_validate
    from components.tune.katib_staging import read_folds

    params = {**json.loads(args.fixed_params_json), **searched}
    who = " ".join(filter(None, [args.algorithm, args.trial_name]))
    note(f"{who} params {json.dumps(searched, sort_keys=True)}")
    with tempfile.TemporaryDirectory(prefix="trial-") as tmp:
        train = read_dataset(localize(args.train_data, Path(tmp)))
        transformer, spec = load_model(localize(args.transformer, Path(tmp)))
        splits = read_folds(localize(args.folds, Path(tmp))) if args.folds else None
    order = None
    if splits is None and args.cv_strategy == "time":
        order = _order(train, spec.get("keys", []))
    for fit, val in splits or []:
        rows = [int(i) for part in (fit, val) if len(part) for i in (part.min(), part.max())]
        if not rows or min(rows) < 0 or max(rows) >= len(train):
            raise ValueError(f"--folds: an empty fold or rows outside the {len(train)} rows")
    result = cross_validate(
        train,
        spec,
        transformer,
        args.algorithm,
        params,
        args.cv_folds,
        args.cv_strategy,
        args.seed,
        on_fold=lambda step, running_mean: emit(OBJECTIVE, running_mean),
        order=order,
        splits=splits,
    )
    if not math.isfinite(result.mean):
        raise ValueError(f"cross-validation score is {result.mean}")
    emit(f"{OBJECTIVE}_std", result.std)
    rounds = result.rounds()
    if rounds is not None:
        emit("best_rounds", rounds)
    out = {"params": searched, "mean": result.mean, "std": result.std, "rounds": rounds}
    out["fold_scores"] = list(result.fold_scores)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        space = parse_space(args.space_json)
        fixed = json.loads(args.fixed_params_json)
        if not isinstance(fixed, dict):
            raise ValueError("--fixed-params-json: expected a mapping")
        searched = parse_params(space, args.param)
    except ValueError as exc:  # json.JSONDecodeError and pydantic's errors are ValueErrors
        note(f"bad arguments: {exc}")
        return 2
    try:
        run(args, searched)
    except Exception as exc:
        note(f"failed: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
