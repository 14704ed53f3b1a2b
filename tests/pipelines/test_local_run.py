"""The whole training pipeline under kfp.local, through the `mlpipe` CLI, on a sample of the data.

One output folder for the module (a full run costs minutes): the first run is a module fixture,
so every test that needs a champion or a warm cache gets it, alone or in any selection, and no
test relies on what another test left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from components.common.config import REPO_ROOT, load_settings
from components.common.mlflow_utils import default_tracking_uri
from pipelines import platform
from pipelines.local_run import run_local
from tests.conftest import needs_tfdv
from tests.fixtures.bad_data import CASES_BY_NAME, constant_sex_in_train, shift_age_in_train
from tests.support.mlflow_env import use_tracking_uri

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]
# small tuning so the suite stays fast: two families, two trials each
FAST = [
    "--set",
    "model_training.algorithms=[lightgbm, logistic_regression]",
    "--set",
    "model_training.max_trials=2",
    "--set",
    "model_training.params.lightgbm.n_estimators=300",
    # swap servers without analysis windows (the canary is exercised once, below, and in
    # tests/components/deploy with the real servers)
    "--set",
    "deployment.rollout.strategy=direct",
    # latency is measured by the serving benchmark; this machine may be busy
    "--set",
    "deployment.infra_validation.p99_budget_ms=5000",
]
ALIASES = ("champion", "challenger", "previous")
PURE = [
    "ingest",
    "validate",
    "features",
    "tune-lightgbm",
    "tune-logistic_regression",
    "train-lightgbm",
    "train-logistic_regression",
    "select",
    "evaluate",
    "track",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory, full_data):
    root = tmp_path_factory.mktemp("local-run")
    sample = pd.concat(
        [full_data[full_data.year == y].sample(3000, random_state=y) for y in (2015, 2016)],
        ignore_index=True,
    )
    source = root / "sample.parquet"
    sample.to_parquet(source)
    return {"root": root, "out": root / "outputs", "source": source, "sample": sample}


@pytest.fixture(autouse=True)
def _work_store(work, monkeypatch):
    """The module's MLflow store as this test's tracking URI (restored after the test)."""
    use_tracking_uri(monkeypatch, default_tracking_uri(work["out"] / "mlflow"))


@pytest.fixture(scope="module")
def first_run(work) -> subprocess.CompletedProcess:
    """The first `mlpipe run` on the sample into an empty registry (version 1, champion, the
    cache later runs hit), then the same run again, served from the cache. Both run before any
    other test of the module moves the registry, and what the two tests on them check about the
    registry is read here, so every test of the module passes in any order."""
    proc = mlpipe(work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    work["first_wall"] = float(proc.stdout.split("pipeline wall time: ")[1].split("s")[0])
    work["first_pure_wall"] = sum(task_walls(proc).values())
    work["after_first"] = versions(work), aliases(work)
    work["rerun"] = mlpipe(work)
    work["after_rerun"] = versions(work), aliases(work)
    return proc


def mlpipe(
    work, *args: str, source: Path | None = None, fast: bool = True
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--output-dir", str(work["out"])]
    cmd += ["--set", f"data_ingestion.source_url={source or work['source']}"]
    cmd += [*(FAST if fast else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=600)


def task_walls(proc: subprocess.CompletedProcess) -> dict[str, float]:
    """task -> wall seconds from the summary table."""
    walls = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in PURE and parts[1] in ("succeeded", "cached"):
            walls[parts[0]] = float(parts[2].strip("()"))  # a cached task's time is bracketed
    return walls


def summary(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """task -> status from the summary table."""
    rows = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if (
            len(parts) >= 2
            and parts[0] in [*PURE, "gate", "register", "deploy"]
            and parts[1]
            in (
                "cached",
                "succeeded",
                "failed",
            )
        ):
            rows[parts[0]] = parts[1]
    return rows


def registry(work) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(default_tracking_uri(work["out"] / "mlflow"))


def versions(work) -> int:
    return len(registry(work).search_model_versions("name = 'acs-employment'"))


def aliases(work) -> dict[str, str]:
    from components.common.registry import alias_version

    client = registry(work)
    found = {a: alias_version(client, "acs-employment", a) for a in ALIASES}
    return {a: str(mv.version) for a, mv in found.items() if mv is not None}


def line(proc: subprocess.CompletedProcess, prefix: str) -> str:
    return next(x for x in proc.stdout.splitlines() if x.startswith(prefix))


def cli(work, *args: str) -> subprocess.CompletedProcess:
    uri = default_tracking_uri(work["out"] / "mlflow")
    cmd = [sys.executable, "-m", "pipelines.cli", *args, "--tracking-uri", uri]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


def test_first_run_trains_evaluates_and_registers_champion(work, first_run):
    proc = first_run
    assert all(status == "succeeded" for status in summary(proc).values())
    assert set(summary(proc)) == {*PURE, "gate", "register", "deploy"}
    assert line(proc, "deployed:").startswith("deployed: version 1 is champion (first champion")
    # an empty registry: the gate applies the absolute thresholds alone
    assert line(proc, "quality gate:") == "quality gate: passed (absolute only (no champion yet))"
    assert work["after_first"] == (1, {"champion": "1"})
    champion = registry(work).get_model_version("acs-employment", "1")
    assert float(champion.tags["metric.roc_auc"]) >= 0.85
    for tag in ("pipeline_run", "data_digest", "config_hash", "code_version"):
        assert champion.tags[f"mlpipe.{tag}"], tag
    # the version carries training statistics, schema, feature spec and evaluation metrics
    carried = mlflow.artifacts.download_artifacts(
        artifact_uri="models:/acs-employment/1", dst_path=str(work["root"] / "champion")
    )
    assert {"train_stats.json", "schema.json", "feature_spec.json", "metrics.json"} <= {
        p.name for p in (Path(carried) / "extra_files").iterdir()
    }
    # outputs on disk: model (+ feature spec), both reports, the data; the log
    model_dirs = list((work["out"] / "models").iterdir())
    assert (model_dirs[0] / "feature_spec.json").exists()
    reports = sorted(p.name for p in (work["out"] / "reports").iterdir())
    assert any(r.endswith("-evaluation.html") for r in reports)
    assert any(r.endswith("-validation.html") for r in reports)
    assert "mlflow ui --backend-store-uri" in proc.stdout
    # the run's log: no colour codes, and it ends with the summary the console printed
    log = Path(proc.stdout.split("(log: ")[1].split(")")[0]).read_text()
    assert "\x1b[" not in log
    assert log.rstrip("\n").endswith(proc.stdout[proc.stdout.index("\ntask ") :].strip())
    # the MLflow run holds the stages' params and metrics and the logged model
    run = mlflow.get_run(champion.run_id)
    assert run.data.metrics["roc_auc"] >= 0.85
    # the business threshold and its expected cost: in MLflow and in the summary
    threshold, cost = run.data.metrics["decision_threshold"], run.data.metrics["expected_cost"]
    assert 0 < threshold < 1 and 0 < cost < 0.5
    assert line(proc, "business threshold:") == (
        f"business threshold: {threshold:.4f} (expected cost {cost:.4f} per row)"
    )
    assert run.data.tags["mlpipe.gate"] == "passed"
    assert run.data.params["model_training.algorithms"] == "['lightgbm', 'logistic_regression']"
    nested = mlflow.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
        output_format="list",
    )
    tuned = {r.info.run_name: r for r in nested if r.info.run_name.startswith("tune-")}
    assert set(tuned) == {"tune-lightgbm", "tune-logistic_regression"}
    assert tuned["tune-lightgbm"].data.metrics["trials"] == 2
    assert run.inputs.dataset_inputs, "training data not logged with log_input"


def test_unchanged_rerun_is_served_from_cache(work, first_run):
    proc = work["rerun"]  # run by first_run, right after the first run
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = summary(proc)
    assert [rows[t] for t in PURE] == ["cached"] * len(PURE)
    assert rows["register"] == "succeeded"  # side effects never come from the cache
    assert rows["gate"] == "succeeded"  # it reads the registry's champion: never cached
    assert line(proc, "deployed:") == "deployed: version 1 is already the champion"
    assert line(proc, "quality gate:").startswith("quality gate: passed (absolute + vs champion;")
    assert "already registered" in proc.stdout
    assert work["after_rerun"] == work["after_first"] == (1, {"champion": "1"})
    # track came from the cache: its run is the first run's, so gate put this run's verdict on a
    # run of its own that points at it, and `mlpipe run` recorded the outcome there
    client = registry(work)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (own,) = client.search_runs(experiments, filter_string="tags.`mlpipe.results_run` LIKE '%'")
    tracked = client.get_run(own.data.tags["mlpipe.results_run"])
    assert tracked.data.tags["mlpipe.gate"] == own.data.tags["mlpipe.gate"] == "passed"
    assert tracked.data.tags["mlpipe.pipeline_run"] != own.data.tags["mlpipe.pipeline_run"]
    assert own.info.status == "FINISHED" and "mlpipe.deploy.outcome" in own.data.tags
    wall = float(proc.stdout.split("pipeline wall time: ")[1].split("s")[0])
    print(f"first run {work['first_wall']:.1f}s, cached re-run {wall:.1f}s")
    # the cache saved what the pure tasks cost the first time; the side-effect tasks (gate,
    # register, deploy, commit: ~3 s of process start and imports each on 2 cores) run again.
    # Both runs scale with the machine's load, so compare them, not fixed fractions.
    saved = work["first_pure_wall"]
    assert saved > 0.3 * work["first_wall"], "the first run's pure tasks should dominate it"
    assert wall < work["first_wall"] - 0.8 * saved


def test_degraded_model_is_blocked_and_nothing_moves(work, first_run):
    before = versions(work), aliases(work)
    champion = before[1]["champion"]
    # without its three strongest features the model clears the absolute bar on this sample
    # but falls well behind the champion
    proc = mlpipe(
        work,
        "--set",
        "feature_engineering.degrade.drop_features=[MIL, AGEP, RELP]",
        "--set",
        "evaluation.thresholds={roc_auc: 0.6}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    gate_line = line(proc, "quality gate:")
    expected = f"quality gate: BLOCKED (absolute + vs champion; champion v{champion}): "
    assert gate_line.startswith(expected), gate_line
    assert "roc_auc " in gate_line and "tolerance 0.005" in gate_line
    assert "register" not in summary(proc) and "deploy" not in summary(proc)
    # the run's deployment output is the blocked branch's: nothing rolled out to report
    ends = ("deployed:", "not deployed:", "rolled back:", "awaiting approval:")
    assert not [ln for ln in proc.stdout.splitlines() if ln.startswith(ends)], proc.stdout
    assert (versions(work), aliases(work)) == before
    # the drop is real: at least 0.02 below the champion on the same rows
    run = mlflow.get_run(
        mlflow.search_runs(
            experiment_names=["acs-employment"],
            filter_string="tags.`mlpipe.gate` = 'blocked'",
            output_format="list",
        )[0].info.run_id
    )
    assert run.data.metrics["champion.roc_auc"] - run.data.metrics["roc_auc"] >= 0.02


def test_approval_required_waits_for_approve_or_reject(work, first_run):
    # the versions this test registers follow whatever the registry holds when it starts
    # (first_run's version 1 alone, or more in a longer selection)
    start = aliases(work)
    old = start["champion"]
    first, second = str(versions(work) + 1), str(versions(work) + 2)
    loose = ["--set", "evaluation.max_regression={roc_auc: 0.03}"]
    waiting = ["--set", "deployment.approval_required=true", *loose]
    proc = mlpipe(work, *waiting, "--set", "model_training.seed=7")
    assert proc.returncode == 0, proc.stdout[-3000:]
    registered = f"registered: acs-employment version {first} (alias "
    assert line(proc, "registered:").startswith(registered)
    assert f"awaiting approval: mlpipe approve {first}" in proc.stdout
    assert aliases(work) == {**start, "challenger": first}

    rejected = cli(work, "reject", first, "--reason", "review")
    assert rejected.returncode == 0, rejected.stderr
    assert aliases(work) == start

    proc = mlpipe(work, *waiting, "--set", "model_training.seed=8")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert aliases(work) == {**start, "challenger": second}
    approved = cli(work, "approve", second, *FAST[-4:])  # direct, generous latency budget
    assert approved.returncode == 0, approved.stderr
    assert f"version {second} is now champion; version {old} is now previous" in approved.stdout
    assert aliases(work) == {"champion": second, "previous": old}
    champion = registry(work).get_model_version_by_alias("acs-employment", "champion")
    for tag in ("pipeline_run", "data_digest", "config_hash", "code_version"):
        assert champion.tags[f"mlpipe.{tag}"], tag


@pytest.mark.parametrize(
    "case", ["missing_column", "string_in_numeric", "unseen_category", "empty_file"]
)
def test_bad_data_stops_before_training(work, first_run, case):
    bad = work["root"] / f"{case}.parquet"
    if case == "empty_file":
        bad.write_bytes(b"")
        stage, subject, problem = "ingest", str(bad), "the file is empty"
    else:
        c = CASES_BY_NAME[case]
        c.make(work["sample"].copy()).to_parquet(bad)
        stage, subject, problem = "validate", c.subject, c.expect
    before = versions(work)
    proc = mlpipe(work, source=bad)
    assert proc.returncode != 0
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"FAILED at stage {stage}:"), last
    assert subject in last and problem in last, last
    assert not any(task.startswith(("tune", "train")) for task in summary(proc))
    assert versions(work) == before
    # the failure alert, as a cluster run's exit handler sends it
    from components.common.alerts import AlertSink

    failures = [
        a
        for a in AlertSink(work["out"] / "logs").entries()
        if a["kind"] == "pipeline_failure" and subject in a["title"]
    ]
    assert len(failures) == 1 and failures[0]["context"]["failed_task"] == stage, failures


def test_suspicious_training_window_passes_with_warnings_on_the_console(work):
    """Issue 15: a train window with one SEX and ages 15 years older is not blocking, but
    `mlpipe run` says so, with the values and the report, and counts it (its own outputs)."""
    odd = work["root"] / "odd.parquet"
    shift_age_in_train(constant_sex_in_train(work["sample"])).to_parquet(odd)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = work["root"] / "odd-outputs"
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--output-dir", str(out)]
    cmd += ["--set", f"data_ingestion.source_url={odd}", *FAST]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    warnings = [x.strip() for x in proc.stdout.splitlines() if x.strip().startswith("warning:")]
    report = str(out / "kfp")  # the validate task's report artifact, under the pipeline root
    assert len(warnings) == 3, proc.stdout[-3000:]
    assert warnings[0].startswith(
        "warning: validate: feature 'SEX': one value (1) in every row of this window only, "
        "2 distinct values in the dataset (train 2015) — report: "
    ), warnings[0]
    assert warnings[1].startswith("warning: validate: AGEP drift jensen_shannon 0.")
    assert warnings[2].startswith("warning: validate: SEX drift linf 0.")
    assert all(" > 0.1 (train 2015 vs test 2016) — report: " in w for w in warnings[1:])
    for w in warnings:
        path = w.split(" — report: ")[1]
        assert path.startswith(report) and Path(path).is_file(), w
    assert "3 warnings from validate (printed above; not blocking)" in proc.stdout


def test_changed_data_reexecutes_everything_and_the_new_model_takes_over(work, first_run):
    # same file, 50 training rows fewer (2015 rows come first): the training data changes, so
    # the model does (dropping test rows only would give version 1's model back, same digest).
    # The file's bytes are put back afterwards (its sha256 is the ingest cache key): later tests
    # expect the module's sample, and first_run's cache, behind it.
    original = work["source"].read_bytes()
    work["sample"].iloc[50:].to_parquet(work["source"])
    try:
        changed_data_run(work)
    finally:
        work["source"].write_bytes(original)


def changed_data_run(work) -> None:
    champion = aliases(work)["champion"]
    proc = mlpipe(
        work,
        "--set",
        "evaluation.max_regression={roc_auc: 0.03}",
        # a real canary rehearsal: steps 50 -> 100 with short windows of replayed test rows
        *("--set", "deployment.rollout.strategy=canary"),
        *("--set", "deployment.rollout.steps=[50, 100]"),
        *("--set", "deployment.rollout.window={seconds: 1, min_requests: 60, max_seconds: 120}"),
        *("--set", "deployment.rollout.policy.min_canary_requests=60"),
        *("--set", "deployment.rollout.policy.max_p99_ms=250"),  # a loaded 2-core machine
        # two models tuned on 3,000 rows may pick different params (e.g. 20 or 122 leaves), whose
        # scores spread differently: PSI 0.6-0.9 on 60 requests. The score-distribution check is
        # tested in tests/components/deploy; here the rollout's steps and the promotion are
        *("--set", "deployment.rollout.policy.max_psi=5"),
        *("--set", "deployment.infra_validation.p99_budget_ms=5000"),
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = summary(proc)
    assert [rows[t] for t in PURE] == ["succeeded"] * len(PURE)
    # a model as good as the champion (within the tolerance) replaces it automatically
    new = str(versions(work))
    deployed = [x for x in proc.stdout.splitlines() if x.startswith(("deployed:", "rolled back"))]
    assert aliases(work) == {"champion": new, "previous": champion}, deployed
    assert f"version {champion} is now previous" in line(proc, "deployed:")


def test_changed_stage_code_reexecutes_that_stage_and_what_follows(work, first_run, monkeypatch):
    real = platform.stage_version
    monkeypatch.setattr(
        platform, "stage_version", lambda s: real(s) + ("-x" if s == "train" else "")
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = load_settings(
        overrides={
            "data_ingestion.source_url": str(work["source"]),
            "model_training.algorithms": ["lightgbm", "logistic_regression"],
            "model_training.max_trials": 2,
            "model_training.params.lightgbm.n_estimators": 300,
            "deployment.rollout.strategy": "direct",
            "deployment.infra_validation.p99_budget_ms": 5000,
        }
    )
    result = run_local(settings, work["out"], screen=open(os.devnull, "w"))  # noqa: SIM115
    assert result.ok, result.error
    cached = {t["task"]: t["cached"] for t in result.tasks}
    assert cached["ingest"] and cached["validate"] and cached["features"]
    assert cached["tune-lightgbm"] and cached["tune-logistic_regression"]
    assert not cached["train-lightgbm"] and not cached["train-logistic_regression"]
    assert not cached["select"] and not cached["evaluate"] and not cached["track"]


def test_second_config_runs_without_code_changes(work, full_data):
    sample = pd.concat(
        [full_data[full_data.year == y].sample(3000, random_state=y) for y in (2016, 2017)]
    )
    source = work["root"] / "sample_2016_2017.parquet"
    sample.to_parquet(source)
    config = REPO_ROOT / "config" / "examples" / "xgboost_2016_2017.yaml"
    proc = mlpipe(work, "--config", str(config), source=source, fast=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    specs = [
        json.loads((d / "feature_spec.json").read_text())
        for d in (work["out"] / "models").iterdir()
    ]
    xgb = [s for s in specs if s["algorithm"] == "xgboost"]
    assert xgb and xgb[0]["scaling"] == "minmax" and xgb[0]["encoding"] == "onehot"
    assert len(xgb[0]["features"]) == 12
    client = registry(work)
    assert client.get_model_version_by_alias("acs-employment-xgboost", "champion")
