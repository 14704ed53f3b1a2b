"""`mlpipe simulate`: replay the bundled data year by year through the whole loop.

    champion (trained on 2015) serves behind the local router
    for each year (2016, 2017, 2018):
        the year's rows go to the server as traffic (request log)
        → monitor the request log (drift vs the champion's training statistics; decay with the
          year's labels) → maybe retrain (window extended to the year; the gate decides)
        → a blessed model goes through the deploy stage's approval (components/deploy: a canary
          rollout on simulate's own local target) and becomes champion only if it promotes it
    → a timeline: batch, top drift scores, AUC of the serving model on the batch, action taken,
      model version serving afterwards.

`--shift YEAR` replaces that year's batch with a shifted one (components.monitor.shift: older
people, more of one marital status; every value inside the schema's domains — drift, not bad
data). `--sample N` keeps N rows per year (CI). Training uses a fast configuration (LightGBM
without tuning) unless `--full-training`. The registry follows the README ("Quality gate,
champion and approval"): register only sets `challenger` and the deploy stage moves
`champion` (simulate approves each challenger as `mlpipe approve` does).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.common import registry
from components.common.alerts import AlertSink
from components.common.config import Settings, override_settings
from components.common.mlflow_utils import default_tracking_uri
from components.common.runtime_env import STATE_ENV
from components.deploy import deploy
from components.monitor.monitor import top_drift
from components.monitor.shift import shift_batch
from pipelines.local_run import run_local
from pipelines.monitoring_run import run_monitoring_local

YEARS = (2016, 2017, 2018)
FAST_TRAINING = {
    "model_training.algorithms": ["lightgbm"],
    "model_training.hyperparameter_tuning": False,
    "model_training.params.lightgbm": {"n_estimators": 300},
    # LightGBM's defaults refitted once: a cheap model, and the decisions the README shows
    "model_training.start_params": {},
    "model_training.final_fit": "refit",
    "evaluation.explain.enabled": False,
}
# small analysis windows: the simulation's traffic is a replay, not hours of production
SIM_ROLLOUT = {
    # register sets challenger; simulate approves it with its own target (`approve` below)
    "deployment.approval_required": True,
    "deployment.environment": "local",
    "deployment.rollout.steps": [50, 100],
    "deployment.rollout.window": {
        "seconds": 2.0,
        "min_requests": 60,
        "max_seconds": 120.0,
        "check_interval_s": 0.5,
    },
    "deployment.rollout.policy.min_canary_requests": 60,
    # the canary's p99 floor: a replay shares the machine with its own pipelines, and a fresh
    # server on a busy 2-core machine (load 8) measured p99 15.6 ms (p50 3.4 vs stable's 2.0 ms)
    # and rolled a good v2 back at the default 10 ms; the machine's load is not the model's
    "deployment.rollout.policy.max_p99_ms": 100.0,
    # infra validation: a rehearsal machine may be busy, so its latency budget is generous; the
    # rollout judges live latency
    "deployment.infra_validation.p99_budget_ms": 500,
}
# rows per traffic request: the same rows and scores in any size; 1,000 (not 50) cuts a year's
# ~1,400 HTTP round trips and log lines to ~70 (the server's limit is 10,000 rows, 32 MB)
ROWS_PER_REQUEST = 1000


@dataclass
class YearRow:
    batch: str
    rows: int
    top_drift: str
    serving_version: str
    serving_auc: float
    decision: str
    action: str
    serving_after: str
    details: dict[str, Any] = field(default_factory=dict)


class LoggingBackend:
    """A `components.deploy.backend.Backend` whose servers write request logs (one file each:
    two servers never interleave lines in one file)."""

    def __init__(self, log_dir: Path, timeout_s: float = 90.0) -> None:
        self.log_dir = log_dir
        self.timeout_s = timeout_s
        self.running: dict[str, Any] = {}
        self.logs: list[Path] = []

    def start(self, model_dir: str, name: str, fault: str | None = None) -> str:
        from components.serve.launch import start_server

        log = self.log_dir / f"requests-{len(self.logs) + 1}.jsonl"
        self.logs.append(log)
        server = start_server(model_dir, name, fault=fault, request_log=log, timeout=self.timeout_s)
        self.running[server.url.rstrip("/")] = server
        return server.url.rstrip("/")

    def stop(self, url: str) -> None:
        server = self.running.pop(url.rstrip("/"), None)
        if server is not None:
            server.stop()

    def offsets(self) -> dict[Path, int]:
        return {p: p.stat().st_size if p.exists() else 0 for p in self.logs}

    def collect(self, since: dict[Path, int], target: Path, prefix: str) -> int:
        """Lines written after `since` whose request id starts with `prefix`, into `target`."""
        n = 0
        with open(target, "w") as out:
            for path in self.logs:
                if not path.exists():
                    continue
                with open(path, "rb") as fh:
                    fh.seek(since.get(path, 0))
                    for line in fh:
                        try:
                            entry = json.loads(line)
                        except json.JSONDecodeError:
                            continue
                        if str(entry.get("request_id", "")).startswith(prefix):
                            out.write(line.decode())
                            n += 1
        return n

    def collect_all(
        self,
        since: dict[Path, int],
        target: Path,
        prefix: str,
        expected: int,
        timeout_s: float = 30.0,
        poll_s: float = 0.1,
    ) -> int:
        """`collect` once all `expected` requests are logged: the server flushes its log about
        every second, so poll instead of sleeping a fixed time (which also missed lines on a busy
        machine). Raises when they are not all there within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            n = self.collect(since, target, prefix)
            if n >= expected:
                return n
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"the request logs hold {n} of the {expected} requests {prefix}* "
                    f"after {timeout_s:g} s"
                )
            time.sleep(poll_s)


def send_traffic(url: str, name: str, rows: list[dict], prefix: str) -> list[float]:
    """POST the rows as V1 requests of ROWS_PER_REQUEST rows, ids `<prefix><i>`; the scores."""
    import requests

    scores: list[float] = []
    with requests.Session() as session:
        for i in range(0, len(rows), ROWS_PER_REQUEST):
            part = rows[i : i + ROWS_PER_REQUEST]
            r = session.post(
                f"{url}/v1/models/{name}:predict",
                json={"instances": part},
                headers={"x-request-id": f"{prefix}{i // ROWS_PER_REQUEST}"},
                timeout=30,
            )
            r.raise_for_status()
            scores += [float(p) for p in r.json()["predictions"]]
    return scores


def _auc(y: np.ndarray, scores: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, np.asarray(scores)))


def prepare_data(source: str, out: Path, sample: int | None, seed: int = 0) -> Path:
    df = pd.read_parquet(source)
    if sample:
        df = pd.concat(
            [
                g.sample(min(sample, len(g)), random_state=seed + int(y))
                for y, g in df.groupby("year")
            ],
            ignore_index=True,
        )
    path = out / "data" / "simulate-source.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def approve(name: str, version: str, deployment: dict, target: Any = None) -> dict[str, Any]:
    """`mlpipe approve` of a version the pipeline left awaiting approval (the deploy stage's
    logic: infra validation, rollout under its replayed test rows, registry move, under the
    model's lock): the first champion (nothing serves yet: promoted), or a challenger rolled out
    on simulate's own `target`, whose servers keep serving (and logging) afterwards."""
    return deploy.approve(name, version, deployment, log=lambda _: None, target=target)


def simulate(
    settings: Settings,
    output_dir: Path,
    years: tuple[int, ...] = YEARS,
    shift_years: tuple[int, ...] = (),
    sample: int | None = None,
    fast_training: bool = True,
    log: Any = print,
) -> list[YearRow]:
    import os

    from components.deploy.local_target import LocalTarget

    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = default_tracking_uri(out / "mlflow")
    os.environ[STATE_ENV] = str(out / "state")
    source = prepare_data(settings.resolve_source(), out, sample)
    overrides = {**(FAST_TRAINING if fast_training else {}), **SIM_ROLLOUT}
    overrides["data_ingestion.source_url"] = str(source)
    s = override_settings(settings, overrides, by="simulate:")
    schema = s.schema_
    name = s.pipeline.project.registered_model
    features = schema.feature_names
    label = schema.label.name
    data = pd.read_parquet(source)
    sink = AlertSink.from_config(s.pipeline.monitoring, out / "logs")

    phases: dict[str, float] = {}  # wall seconds by phase: where a simulation's time goes

    @contextlib.contextmanager
    def phase(key: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            phases[key] = phases.get(key, 0.0) + time.perf_counter() - t

    deployment = s.pipeline.deployment.model_dump(mode="json")
    client = registry.client()
    champion = registry.alias_version(client, name, registry.CHAMPION)
    if champion is None:
        log("simulate: training the first champion (2015, tested on 2016)")
        with phase("first champion"):
            first = run_local(s, out)
            if not first.ok or not first.registration:
                raise RuntimeError(f"the first training run failed: {first.error or first.gate}")
            approve(name, str(first.registration["version"]), deployment)
        champion = registry.alias_version(client, name, registry.CHAMPION)
    version = str(champion.version)

    backend = LoggingBackend(out / "logs")
    timeline: list[YearRow] = []
    with LocalTarget.serve(backend, f"models:/{name}/{version}", name, version=version) as target:
        for year in years:
            kind = "shifted" if year in shift_years else "clean"
            batch = data[data.year == year].reset_index(drop=True)
            if kind == "shifted":
                batch = shift_batch(batch, id_start=int(data["id"].max()) + 1 + year * 10**6)
            batch_file = out / "data" / f"batch-{year}-{kind}.parquet"
            batch.to_parquet(batch_file, index=False)
            rows = batch[features].to_dict("records")
            prefix = f"y{year}-"
            since = backend.offsets()
            t0 = time.perf_counter()
            with phase("traffic"):
                scores = send_traffic(target.url, name, rows, prefix)
                log(
                    f"simulate: {year} ({kind}): {len(rows):,} rows served by v{version} "
                    f"in {time.perf_counter() - t0:.1f} s"
                )
                log_file = out / "data" / f"requests-{year}.jsonl"
                backend.collect_all(since, log_file, prefix, -(-len(rows) // ROWS_PER_REQUEST))
            labels_file = out / "data" / f"labels-{year}.parquet"
            pd.DataFrame(
                {
                    "request_id": [f"{prefix}{i // ROWS_PER_REQUEST}" for i in range(len(batch))],
                    "row": [i % ROWS_PER_REQUEST for i in range(len(batch))],
                    label: batch[label].to_numpy(),
                }
            ).to_parquet(labels_file, index=False)
            serving_auc = _auc(batch[label].to_numpy(), scores)

            t0 = time.perf_counter()
            run = run_monitoring_local(
                s,
                str(log_file),
                "request_log",
                str(labels_file),
                out,
                sink=sink,
                retrain_batch=str(batch_file),
            )
            retrain_s = run.retrain.wall_s if run.retrain is not None else 0.0
            phases["monitoring"] = phases.get("monitoring", 0.0) + (
                time.perf_counter() - t0 - retrain_s
            )
            phases["retraining"] = phases.get("retraining", 0.0) + retrain_s
            if not run.ok:
                raise RuntimeError(f"monitoring {year} failed at {run.failed_stage}: {run.error}")
            res = run.result
            top = ", ".join(f"{n} {m['value']:.3f}" for n, m in top_drift(res["drift"], 2))
            action = {"none": "none", "alert": "alert"}.get(run.decision, "retrain")
            details: dict[str, Any] = {"report": run.report}
            if run.retrain is not None:
                r = run.retrain
                reg = r.registration or {}
                if not r.ok:
                    action = f"retrain failed ({r.failed_stage})"
                elif not r.gate_passed:
                    action = "retrain: gate blocked"
                elif reg.get("alias") == registry.CHALLENGER or reg.get("awaiting_approval"):
                    candidate_version = str(reg["version"])
                    with phase("canary"):
                        done = approve(name, candidate_version, deployment, target)
                    details["rollout"] = {"outcome": done["outcome"], "reason": done["reason"]}
                    if done["outcome"] == "promoted":
                        version = candidate_version
                        action = f"retrain → v{candidate_version} canary promoted"
                    else:
                        action = f"retrain → v{candidate_version} canary rolled back"
                else:
                    action = "retrain: already registered"
            elif (run.actions.get("retrain") or {}).get("status") == "duplicate":
                action = "retrain (already triggered)"
            timeline.append(
                YearRow(
                    batch=f"{year} {kind}",
                    rows=len(batch),
                    top_drift=top,
                    serving_version=f"v{res['champion_version']}",
                    serving_auc=serving_auc,
                    decision=run.decision,
                    action=action,
                    serving_after=f"v{version}",
                    details=details,
                )
            )
            log(format_timeline(timeline[-1:], header=False))
    log("simulate: time by phase: " + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()))
    return timeline


def format_timeline(rows: list[YearRow], header: bool = True) -> str:
    lines = []
    if header:
        lines.append(
            f"{'batch':<13} {'rows':>7}  {'top drift (metric value)':<28} {'served by':<9} "
            f"{'AUC':>6}  {'decision':<8} {'action':<40} serving after"
        )
    for r in rows:
        lines.append(
            f"{r.batch:<13} {r.rows:>7,}  {r.top_drift:<28} {r.serving_version:<9} "
            f"{r.serving_auc:>6.4f}  {r.decision:<8} {r.action:<40} {r.serving_after}"
        )
    return "\n".join(lines)
