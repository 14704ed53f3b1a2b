"""`mlpipe runs | runs show | runs compare` against a real MLflow store holding runs shaped as the
pipeline leaves them: the parent run track creates and logs the config and test metrics to, the
gate's verdict (its own logging code), the outcome `mlpipe run` records, a failed run."""

import time

import mlflow
import pandas as pd
import pytest

from components.common import mlflow_utils as mu
from components.common.config import load_settings
from components.evaluate.compare import log_to_mlflow, verdict_run
from components.evaluate.gate import Blessing
from components.track.track import _params
from pipelines.cli import main
from pipelines.local_run import (
    RunResult,
    _record_failed_run,
    record_outcome,
    record_outcome_or_warn,
)

EXPERIMENT = load_settings().pipeline.project.experiment  # where a failed run is recorded


def _as_kfp_passes_it(value):
    """The config reaches track through a KFP struct: every number arrives as a float."""
    if isinstance(value, dict):
        return {k: _as_kfp_passes_it(v) for k, v in value.items()}
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _pipeline_run(name, settings, metrics, data_version, registration, deployment, kfp=False):
    """What track, gate and `mlpipe run` write for one successful run (no model: not read)."""
    run_id = mu.parent_run_id(EXPERIMENT, name)
    mlflow.set_experiment(experiment_id=mlflow.get_run(run_id).info.experiment_id)
    config = settings.pipeline.model_dump(mode="json")
    with mlflow.start_run(run_id=run_id):  # as track does
        mlflow.set_tag(mu.PIPELINE_RUN_TAG, name)
        mlflow.log_params(_params(mu.flatten("", _as_kfp_passes_it(config) if kfp else config)))
        rows = mlflow.data.from_pandas(pd.DataFrame({"x": [1.0]}), name="training-data")
        mlflow.log_input(rows, context="training", tags={mu.DATASET_VERSION_TAG: data_version})
        mlflow.log_metrics(metrics)
    verdict = verdict_run(EXPERIMENT, name, run_id)  # as gate does: track's run
    log_to_mlflow(verdict, Blessing(True, "absolute only (no champion yet)"), None, {})
    result = RunResult(True, 1.0, registration=registration, deployment=deployment)
    record_outcome(verdict, settings.digest(), "src-digest", result)
    time.sleep(0.01)  # distinct start times: the list is newest first
    return run_id


@pytest.fixture()
def runs(mlflow_store, tmp_path, settings):
    seven = load_settings(overrides={"model_training.seed": 7})
    a = _pipeline_run(
        "mlpipe-training-a",
        settings,
        {"roc_auc": 0.90, "pr_auc": 0.85, "f1": 0.80},
        "ds-aaaa",
        {"version": "1"},
        {"outcome": "promoted", "reason": "first champion"},
    )
    b = _pipeline_run(
        "mlpipe-training-b",
        seven,
        {"roc_auc": 0.91, "pr_auc": 0.83, "f1": 0.80},
        "ds-aaaa",
        {"version": "2"},
        {"outcome": "rolled_back", "reason": "canary p99 over budget"},
        kfp=True,  # 42 logged as "42" in a, 7 as "7.0" in b: still one changed param, 42 -> 7
    )
    # an unchanged re-run: track came from the cache, gate wrote to a run of its own
    c = verdict_run(EXPERIMENT, "mlpipe-training-c", a)
    log_to_mlflow(c, Blessing(False, "absolute", [], ["f1"]), None, {})
    record_outcome(c, settings.digest(), "src-digest", RunResult(True, 1.0))
    time.sleep(0.01)
    log = tmp_path / "run.log"
    log.write_text("log")
    failed = RunResult(False, 0.0, failed_stage="validate", error="bad domain", log_file=str(log))
    d = _record_failed_run(settings, "mlpipe-training-d", failed, "src-digest-2")
    return {"a": a, "b": b, "c": c, "d": d, "digest": settings.digest()}


def test_list_newest_first_with_outcomes(runs, capsys):
    assert main(["runs", "--experiment", EXPERIMENT]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["started", "status", "config", "data"]
    rows = {line.split()[-1]: line for line in lines[1:]}
    assert [line.split()[-1] for line in lines[1:]] == [runs[k] for k in "dcba"]
    a, b, c, d = (rows[runs[k]].split()[2:] for k in "abcd")
    digest = runs["digest"][:8]
    assert a[:9] == [
        "finished", digest, "ds-aaaa", "0.9000", "0.8500", "0.8000", "passed", "promoted", "v1"
    ]  # fmt: skip
    assert b[5:9] == ["0.8000", "passed", "rolled_back", "v2"]
    # the cached re-run shows the results of the run its track was served from
    assert c[:9] == [
        "finished", digest, "ds-aaaa", "0.9000", "0.8500", "0.8000", "blocked", "-", runs["c"]
    ]  # fmt: skip
    assert d[:8] == ["failed", digest, "src-digest-2", "-", "-", "-", "failed", "at"]

    assert main(["runs", "--experiment", EXPERIMENT, "--limit", "2"]) == 0
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]] == [
        runs["d"],
        runs["c"],
    ]


def test_show_one_run(runs, capsys):
    assert main(["runs", "show", runs["b"][:10], "--experiment", EXPERIMENT]) == 0
    out = capsys.readouterr().out
    assert f"run {runs['b']} (mlpipe-training-b): finished" in out
    assert f"config digest: {load_settings(overrides={'model_training.seed': 7}).digest()}" in out
    assert "data version: ds-aaaa (source digest src-digest)" in out
    assert "quality gate: passed (absolute only (no champion yet))" in out
    assert "registered: acs-employment version 2" in out
    assert "deploy: rolled_back (canary p99 over budget)" in out
    assert "  roc_auc                  0.9100" in out
    assert "  model_training.seed = 7" in out

    assert main(["runs", "show", runs["d"]]) == 0  # the config's experiment
    assert "FAILED at stage validate: bad domain" in capsys.readouterr().out


def test_compare_names_the_changed_param_and_signed_deltas(runs, capsys):
    assert main(["runs", "compare", runs["a"], runs["b"], "--experiment", EXPERIMENT]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "params that differ: 1" in out
    assert "  model_training.seed: 42 -> 7" in out
    assert "data version: same (ds-aaaa)" in out
    assert "deploy: promoted v1 -> rolled_back v2" in out
    deltas = {
        line.split()[0]: line.split()[-1] for line in out[out.index("metrics (b - a):") + 1 :]
    }
    assert deltas == {"f1": "+0.0000", "pr_auc": "-0.0200", "roc_auc": "+0.0100"}


def test_unknown_run_is_a_one_line_error(runs, capsys):
    assert main(["runs", "show", "feedbeef", "--experiment", EXPERIMENT]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"mlpipe runs: no run 'feedbeef' in experiment {EXPERIMENT!r} (see `mlpipe runs`)"
    ]
    assert main(["runs", "compare", runs["a"], "nope", "--experiment", EXPERIMENT]) == 1


def test_an_outcome_that_cannot_be_recorded_warns_and_the_run_stays_a_success(
    mlflow_store, settings, capsys
):
    result = RunResult(True, 1.0, registration={"version": "3"})
    assert not record_outcome_or_warn("no-such-run", settings.digest(), "d", result)
    err = capsys.readouterr().err
    assert "warning: could not tag MLflow run no-such-run" in err
    assert "`mlpipe runs` will not show it" in err
    assert result.ok
