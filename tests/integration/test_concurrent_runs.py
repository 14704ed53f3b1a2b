"""Two training pipelines at once against one MLflow server on PostgreSQL (the manifest's server,
tests/integration/conftest.py), with the ingest state (watermark) and the monitoring triggers in
one S3 store (moto): real processes, real concurrency.

- the registry stays consistent: champion/challenger/previous distinct, every status tag derived
  from the aliases, the champion never rejected, no move left half done (`mlpipe.move`), no
  lock left behind; each run either deployed or failed cleanly, naming the lock it lost;
- the watermark only moves forward (polled from S3 while both runs go);
- two monitoring processes deciding `retrain` for one batch claim exactly one retraining.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pandas as pd
import pytest

from components.common import registry
from components.common.config import REPO_ROOT
from tests.conftest import needs_tfdv

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]

STATE_BUCKET = "mlpipe-concurrency"
WATERMARK_KEY = "concurrent"
RUN_TIMEOUT = 1500  # s; about 2 min each on an idle 2-core machine, far more on a busy one
# the registry and the state are under test here, not the models: one fast family, no tuning
FAST = {
    "model_training.algorithms": "[logistic_regression]",
    "model_training.hyperparameter_tuning": "false",
    "evaluation.explain.enabled": "false",
    "deployment.rollout.strategy": "direct",
    "deployment.infra_validation.p99_budget_ms": "5000",
    "data_ingestion.incremental": f"{{watermark_column: year, state_key: {WATERMARK_KEY}}}",
}


@pytest.fixture
def shared(mlflow_server, mlflow_login, s3_server, tmp_path, full_data):
    """What both runs share: the MLflow server (basic auth: the runs and this process log in as
    a pipeline pod does), a state prefix in S3, a registered model name of their own (the
    server's database lives for the session), a small sample of the data."""
    url, _port, _storage = mlflow_server
    buckets = {b["Name"] for b in s3_server.client.list_buckets().get("Buckets", [])}
    if STATE_BUCKET not in buckets:
        s3_server.client.create_bucket(Bucket=STATE_BUCKET)
    prefix = f"state-{uuid.uuid4().hex[:8]}"
    sample = pd.concat(
        [full_data[full_data.year == y].sample(1500, random_state=y) for y in (2015, 2016)],
        ignore_index=True,
    )
    source = tmp_path / "sample.parquet"
    sample.to_parquet(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLPIPE_"))}
    env |= {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": mlflow_login[0],
        "MLFLOW_TRACKING_PASSWORD": mlflow_login[1],
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLPIPE_STATE_DIR": f"s3://{STATE_BUCKET}/{prefix}",
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return {
        "url": url,
        "env": env,
        "prefix": prefix,
        "source": source,
        "model": f"concurrent-{uuid.uuid4().hex[:8]}",
        "tmp": tmp_path,
    }


def start_run(shared, name: str, scaling: str) -> subprocess.Popen:
    """`mlpipe run` as its own process, its own output folder (kfp.local's cache), the shared
    registry and state. `scaling`: the feature scaling, so the two runs register distinct
    models."""
    sets = {
        **FAST,
        "project.registered_model": shared["model"],
        "project.experiment": shared["model"],
        "data_ingestion.source_url": str(shared["source"]),
        "feature_engineering.scaling_method": scaling,
    }
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--no-cache"]
    cmd += ["--output-dir", str(shared["tmp"] / name)]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    log = open(shared["tmp"] / f"{name}.log", "w")  # noqa: SIM115 (closed by the caller's wait)
    return subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=shared["env"],
        cwd=REPO_ROOT,
        start_new_session=True,  # its own process group, with the tasks it starts
    )


class WatermarkWatch:
    """Polls the watermark document in S3 while the runs go: every distinct value seen, in order."""

    def __init__(self, s3, prefix: str) -> None:
        self.s3, self.key = s3, f"{prefix}/watermarks/{WATERMARK_KEY}.json"
        self.seen: list[object] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.wait(0.1):
            try:
                body = self.s3.get_object(Bucket=STATE_BUCKET, Key=self.key)["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                continue
            value = json.loads(body)["value"]
            if not self.seen or self.seen[-1] != value:
                self.seen.append(value)

    def __enter__(self) -> WatermarkWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def registry_state(url: str, name: str) -> dict:
    c = registry.client(url)
    model = c.get_registered_model(name)
    versions = {
        str(mv.version): dict(mv.tags or {}) for mv in c.search_model_versions(f"name = '{name}'")
    }
    return {
        "aliases": registry.held_aliases(c, name),
        "versions": versions,
        "model_tags": dict(model.tags or {}),
        "lock_held": registry._lease_held(c, registry.lock_model_name(name)),
    }


def assert_consistent(state: dict) -> None:
    """The state machine's invariants on what two concurrent runs left behind."""
    aliases, versions = state["aliases"], state["versions"]
    assert registry.CHAMPION in aliases, state
    # one version per alias, and champion/challenger/previous on distinct versions
    assert len(set(aliases.values())) == len(aliases), state
    champion = versions[aliases[registry.CHAMPION]]
    assert registry.REJECTED_TAG not in champion, state  # the champion is never rejected
    for alias in (registry.CHALLENGER, registry.PREVIOUS):
        if alias in aliases:
            assert registry.REJECTED_TAG not in versions[aliases[alias]], state
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    for version, tags in versions.items():  # status tags agree with the aliases
        derived = registry.derived_status(tags, by_version.get(version, []))
        assert tags.get(registry.STATUS_TAG) == derived, (version, state)
    # no move left half done, no lock left held
    assert registry.MOVE_TAG not in state["model_tags"], state
    assert state["lock_held"] is None, state


def test_two_runs_at_once_keep_the_registry_and_the_watermark_consistent(shared, s3_server):
    started = time.monotonic()
    with WatermarkWatch(s3_server.client, shared["prefix"]) as watch:
        runs = {"a": start_run(shared, "a", "standard"), "b": start_run(shared, "b", "robust")}
        try:
            codes = {name: proc.wait(timeout=RUN_TIMEOUT) for name, proc in runs.items()}
        finally:
            for proc in runs.values():  # a run that hung: its whole group (kfp.local's tasks)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    wall = time.monotonic() - started
    logs = {name: (shared["tmp"] / f"{name}.log").read_text() for name in runs}
    print(f"two concurrent runs: {wall:.0f} s; exit codes {codes}")

    # each run deployed, or failed cleanly: the lock it lost (or the watermark another run moved)
    # named in its last line — never a traceback of a half move
    outcomes = {}
    for name, log in logs.items():
        last = log.strip().splitlines()[-1]
        if codes[name] == 0:
            ends = ("\ndeployed:", "\nnot deployed:", "\nquality gate: BLOCKED")
            assert any(end in log for end in ends), log[-3000:]
            outcomes[name] = next(e.strip() for e in ends if e in log)
        else:
            assert last.startswith("FAILED at stage"), log[-3000:]
            assert "locked by" in last or "lost the race" in last or "watermark" in last, last
            # a register's challenger move holds the lock for seconds: nobody fails on it
            assert "(register of version" not in last, last
            outcomes[name] = last
    print(f"outcomes: {outcomes}")
    assert "deployed:" in outcomes.values(), logs

    state = registry_state(shared["url"], shared["model"])
    print(f"registry: {state['aliases']}")
    assert_consistent(state)

    # the watermark only moved forward, to the newest year both runs read
    assert watch.seen, "the watermark was never written"
    assert watch.seen == sorted(watch.seen), watch.seen
    assert watch.seen[-1] == 2016, watch.seen
    # its one transition (none -> 2016) was claimed once in the store, whoever committed second
    claims = s3_server.client.list_objects_v2(
        Bucket=STATE_BUCKET, Prefix=f"{shared['prefix']}/watermark-claims/"
    ).get("Contents", [])
    assert len(claims) == 1, [c["Key"] for c in claims]
    print(f"watermark values seen: {watch.seen}")


# the act task of the monitoring pipeline on a cluster (components/monitor/component.py `act`,
# retrain_mode kfp): alert, claim the batch's trigger, start the retraining run if claimed
ACT = """
import json, sys, time
from components.common.alerts import AlertSink
from components.common.config import MonitoringConfig
from components.monitor.actions import act, start_retraining_on_kfp

result, retraining = json.loads(sys.argv[1]), json.loads(sys.argv[2])
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # both start at once
done = act(result, AlertSink.from_config(MonitoringConfig()), retrain_enabled=True)
if done["retrain"]["status"] == "claimed":
    done["retrain"]["run"] = start_retraining_on_kfp(result, retraining)
print(json.dumps(done, default=str))
"""


def test_two_monitors_seeing_one_incident_start_one_retraining(
    shared, s3_server, settings, monkeypatch
):
    from components.common.kfp_client import KfpClient
    from pipelines import submit_cli
    from pipelines.kfp_package import compile_package
    from tests.support.kfp_standin import KfpStandin

    result = {
        "batch_digest": uuid.uuid4().hex * 2,
        "registered_model": shared["model"],
        "champion_version": "1",
        "rows": 2500,
        "newest": 2017,
        "anomalies": [],
        "decision": {
            "decision": "retrain",
            "kinds": ["drift"],
            "drifted": ["AGEP", "WKHP"],
            "reasons": ["2 features drifted"],
        },
        "context": {"batch": "2017.parquet"},
    }
    with KfpStandin() as kfp:
        monkeypatch.setenv("KFP_HOST", kfp.url)
        for name in ("KFP_TOKEN", "KFP_TOKEN_FILE", "KFP_NAMESPACE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(shared["tmp"] / "no-token"))
        training = compile_package(settings, "training")
        retraining = submit_cli.retraining_parameter(KfpClient.from_env(), training, settings)
        env = shared["env"] | {
            "KFP_HOST": kfp.url,
            "KF_PIPELINES_SA_TOKEN_PATH": str(shared["tmp"] / "no-token"),
            "MLPIPE_LOGS_DIR": f"{shared['env']['MLPIPE_STATE_DIR']}/logs",
        }
        go = time.time() + 8  # after both interpreters imported everything
        args = [json.dumps(result), json.dumps(retraining), str(go)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", ACT, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO_ROOT,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        runs = kfp.calls("RunService_CreateRun")
    for proc, (_, stderr) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, stderr[-3000:]
    done = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outs]
    statuses = sorted(d["retrain"]["status"] for d in done)
    print(f"retrain statuses: {statuses}; KFP runs created: {len(runs)}")
    assert statuses == ["claimed", "duplicate"], done
    assert len(runs) == 1 and runs[0].status == 200  # one retraining run, not two

    # the dedupe record lives in the state store (S3), beside the watermarks
    prefix = f"{shared['prefix']}/monitor/retrain_triggers/"
    listed = s3_server.client.list_objects_v2(Bucket=STATE_BUCKET, Prefix=prefix)
    (obj,) = listed.get("Contents", [])
    trigger = json.loads(
        s3_server.client.get_object(Bucket=STATE_BUCKET, Key=obj["Key"])["Body"].read()
    )
    claimed = next(d for d in done if d["retrain"]["status"] == "claimed")
    assert (
        trigger["status"] == "started" and trigger["run_id"] == claimed["retrain"]["run"]["run_id"]
    )
    # and the incident was alerted once (the alert log in the same store)
    alerts = s3_server.client.list_objects_v2(
        Bucket=STATE_BUCKET, Prefix=f"{shared['prefix']}/logs/"
    ).get("Contents", [])
    assert len(alerts) == 1, [a["Key"] for a in alerts]
