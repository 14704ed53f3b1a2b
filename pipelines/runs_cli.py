"""`mlpipe runs`: past training runs from the MLflow store, one run in full, two side by side.

mlpipe runs [--limit 20] [--experiment E]   newest first: time, status, config and data digests,
                                            test metrics, gate and deploy outcome, MLflow run id
mlpipe runs show ID                         params, data version, metrics, gate, registered version
mlpipe runs compare A B                     params that differ, data version, metric deltas (B - A)

It reads the parent runs `mlpipe run` leaves (components/common/mlflow_utils.py lists their
tags): track logs the config as params and the test metrics; gate its verdict; `mlpipe run` the
digests, the registered version and the deploy outcome. A re-run whose track came from the cache
points at the run holding the params and metrics (`mlpipe.results_run`); they are read from it.
ID is an MLflow run id or a unique prefix of one. The store: --tracking-uri, else
MLFLOW_TRACKING_URI, else outputs/mlflow; the experiment: --experiment, else the config's.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from components.common import mlflow_utils as mu
from components.common.config import load_pipeline_config
from pipelines.cli_args import add_config_args, add_tracking_uri_arg

# the list's metric columns; `show` and `compare` print every metric
LIST_METRICS = ("roc_auc", "pr_auc", "f1")
# per-task timings (failed runs) and the champion's scores (gate) are not this run's results
OTHER_METRICS = ("task.", "champion.")


class RunsError(RuntimeError):
    """An unknown or ambiguous run id."""


@dataclass
class PastRun:
    """One pipeline run as the store holds it (a cached track's params and metrics merged in)."""

    run_id: str
    name: str
    status: str
    started: float  # epoch s
    tags: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    dataset_version: str = ""

    @property
    def data_version(self) -> str:
        """Ingest's version of the rows, else (a run that failed before track) the source
        digest the CLI computed."""
        return self.dataset_version or self.tags.get(mu.DATA_DIGEST_TAG, "")

    @property
    def gate(self) -> str:
        if mu.FAILED_STAGE_TAG in self.tags:
            return f"failed at {self.tags[mu.FAILED_STAGE_TAG]}"
        return self.tags.get(mu.GATE_TAG, "-")

    @property
    def deploy(self) -> str:
        outcome = self.tags.get(mu.DEPLOY_OUTCOME_TAG)
        version = self.tags.get(mu.REGISTERED_VERSION_TAG)
        if not outcome:
            return f"registered v{version}" if version else "-"
        return f"{outcome} v{version}" if version else outcome


def _from_mlflow(run: Any) -> PastRun:
    version = ""
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in dataset_input.tags}
        version = version or tags.get(mu.DATASET_VERSION_TAG, "")
    return PastRun(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status.lower(),
        started=(run.info.start_time or 0) / 1000,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics={k: v for k, v in run.data.metrics.items() if not k.startswith(OTHER_METRICS)},
        dataset_version=version,
    )


def _merged(client: Any, run: Any) -> PastRun:
    """The run, with the params, metrics and data version of its results run when track was
    served from the cache (this run then holds only the verdict and outcome)."""
    past = _from_mlflow(run)
    results = past.tags.get(mu.RESULTS_RUN_TAG)
    if results:
        try:
            held = _from_mlflow(client.get_run(results))
        except Exception:  # deleted since: show what this run has
            return past
        past.params = {**held.params, **past.params}
        past.metrics = {**held.metrics, **past.metrics}
        past.dataset_version = past.dataset_version or held.dataset_version
    return past


def _is_pipeline_run(run: Any) -> bool:
    """A pipeline run's parent run: not a stage's nested run."""
    tags = run.data.tags
    return mu.PIPELINE_RUN_TAG in tags and "mlflow.parentRunId" not in tags


def list_runs(client: Any, experiment: str, limit: int) -> list[PastRun]:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{mu.PIPELINE_RUN_TAG}` LIKE '%'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    return [_merged(client, r) for r in runs if _is_pipeline_run(r)]


def find_run(client: Any, experiment: str, run_id: str) -> PastRun:
    """The run `run_id` names (a full id, or a unique prefix within the experiment)."""
    from mlflow.exceptions import MlflowException

    try:
        return _merged(client, client.get_run(run_id))
    except MlflowException:
        pass
    found = client.get_experiment_by_name(experiment)
    matches = []
    if found is not None and len(run_id) >= 4:
        runs = client.search_runs(
            [found.experiment_id], filter_string=f"tags.`{mu.PIPELINE_RUN_TAG}` LIKE '%'"
        )
        matches = [r for r in runs if r.info.run_id.startswith(run_id) and _is_pipeline_run(r)]
    if len(matches) == 1:
        return _merged(client, matches[0])
    if matches:
        raise RunsError(f"run id {run_id!r} is ambiguous: {len(matches)} runs start with it")
    raise RunsError(f"no run {run_id!r} in experiment {experiment!r} (see `mlpipe runs`)")


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _metric(value: float | None) -> str:
    if value is None:
        return "-"
    # counts (rows) stay counts; scores keep four decimals
    return f"{value:.0f}" if value.is_integer() and abs(value) > 1 else f"{value:.4f}"


def _param(value: str | None) -> str:
    """A param as the user wrote it: the pipeline passes the config through a KFP struct, which
    turns every number into a float (42 -> "42.0")."""
    if value is None:
        return "(unset)"
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() and value.endswith(".0") else value


def format_list(runs: list[PastRun]) -> str:
    head = (
        f"{'started':<19}  {'status':<8} {'config':<8} {'data':<12} "
        + " ".join(f"{m:>7}" for m in LIST_METRICS)
        + f"  {'gate':<18} {'deploy':<22} run id"
    )
    lines = [head]
    for r in runs:
        lines.append(
            f"{_when(r.started):<19}  {r.status:<8} "
            f"{r.tags.get(mu.CONFIG_HASH_TAG, '-')[:8]:<8} {(r.data_version or '-')[:12]:<12} "
            + " ".join(f"{_metric(r.metrics.get(m)):>7}" for m in LIST_METRICS)
            + f"  {r.gate:<18} {r.deploy:<22} {r.run_id}"
        )
    return "\n".join(lines)


def format_show(r: PastRun) -> str:
    t = r.tags
    lines = [
        f"run {r.run_id} ({r.name}): {r.status}, started {_when(r.started)}",
        f"config digest: {t.get(mu.CONFIG_HASH_TAG, '-')}",
        f"data version: {r.dataset_version or '-'} "
        f"(source digest {t.get(mu.DATA_DIGEST_TAG, '-')})",
    ]
    if mu.FAILED_STAGE_TAG in t:
        lines.append(f"FAILED at stage {t[mu.FAILED_STAGE_TAG]}: {t.get(mu.ERROR_TAG, '')}")
    if mu.GATE_TAG in t:
        champion = t.get(mu.GATE_CHAMPION_TAG)
        against = f"; champion v{champion}" if champion else ""
        failed = f": {t[mu.GATE_FAILED_TAG]}" if t.get(mu.GATE_FAILED_TAG) else ""
        mode = t.get(mu.GATE_MODE_TAG, "")
        lines.append(f"quality gate: {t[mu.GATE_TAG]} ({mode}{against}){failed}")
    version = t.get(mu.REGISTERED_VERSION_TAG)
    model = r.params.get("project.registered_model", "")
    lines.append(f"registered: {model} version {version}" if version else "registered: -")
    if mu.DEPLOY_OUTCOME_TAG in t:
        lines.append(f"deploy: {t[mu.DEPLOY_OUTCOME_TAG]} ({t.get(mu.DEPLOY_REASON_TAG, '')})")
    if mu.RESULTS_RUN_TAG in t:
        lines.append(f"params and metrics from run {t[mu.RESULTS_RUN_TAG]} (track was cached)")
    lines.append("metrics:")
    lines += [f"  {k:<24} {_metric(v)}" for k, v in sorted(r.metrics.items())] or ["  -"]
    lines.append("params:")
    lines += [f"  {k} = {_param(v)}" for k, v in sorted(r.params.items())] or ["  -"]
    return "\n".join(lines)


def format_compare(a: PastRun, b: PastRun) -> str:
    lines = [f"compare {a.run_id} ({a.name}) -> {b.run_id} ({b.name})"]
    keys = sorted(set(a.params) | set(b.params))
    changed = [k for k in keys if _param(a.params.get(k)) != _param(b.params.get(k))]
    lines.append(f"params that differ: {len(changed)}")
    lines += [f"  {k}: {_param(a.params.get(k))} -> {_param(b.params.get(k))}" for k in changed]
    if a.data_version != b.data_version:
        lines.append(f"data version: {a.data_version or '-'} -> {b.data_version or '-'}")
    else:
        lines.append(f"data version: same ({a.data_version or '-'})")
    for name, get in (("quality gate", lambda r: r.gate), ("deploy", lambda r: r.deploy)):
        if get(a) != get(b):
            lines.append(f"{name}: {get(a)} -> {get(b)}")
    common = sorted(set(a.metrics) & set(b.metrics))
    lines.append("metrics (b - a):")
    lines += [
        f"  {k:<24} {_metric(a.metrics[k])} -> {_metric(b.metrics[k])}  "
        f"{b.metrics[k] - a.metrics[k]:+.4f}"
        for k in common
    ] or ["  - (no metric in both runs)"]
    return "\n".join(lines)


def _client(args: argparse.Namespace) -> tuple[Any, str]:
    import mlflow

    mu.configure(args.tracking_uri or "")
    experiment = args.experiment or load_pipeline_config(args.config).project.experiment
    return mlflow.MlflowClient(), experiment


def cmd_runs(args: argparse.Namespace) -> int:
    client, experiment = _client(args)
    try:
        if args.action == "show":
            print(format_show(find_run(client, experiment, args.run_id)))
        elif args.action == "compare":
            a = find_run(client, experiment, args.run_a)
            b = find_run(client, experiment, args.run_b)
            print(format_compare(a, b))
        else:
            runs = list_runs(client, experiment, args.limit)
            print(format_list(runs) if runs else f"no runs in experiment {experiment!r}")
    except RunsError as exc:
        print(f"mlpipe runs: {exc}", file=sys.stderr)
        return 1
    return 0


def add_runs_parser(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        add_config_args(p, schema=False, overrides=False)
        p.add_argument("--experiment", help="MLflow experiment (default: project.experiment)")
        add_tracking_uri_arg(p)

    runs = sub.add_parser("runs", help="list past runs; show one; compare two")
    common(runs)
    runs.add_argument("--limit", type=int, default=20, help="newest N runs (default 20)")
    runs.set_defaults(func=cmd_runs, action="list")
    actions = runs.add_subparsers(dest="action")
    show = actions.add_parser("show", help="one run: params, data, metrics, gate, deploy")
    show.add_argument("run_id")
    common(show)
    compare = actions.add_parser("compare", help="what changed from run A to run B")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    common(compare)
