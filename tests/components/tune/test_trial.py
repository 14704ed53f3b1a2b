"""components/tune/trial.py, the trial entrypoint: its output and exit codes, bad arguments, a
missing input, never talking to MLflow, remote artifacts, a nan reported without an equals
sign, the trial run as Katib runs it, and a trial on the staged folds scoring what the local
backend scores."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.common.config import REPO_ROOT
from components.tune import trial as trial_module
from components.tune.cv import CVResult
from components.tune.katib_render import render_experiment
from tests.components.tune.katib_support import (
    SPACE,
    _katib_substitute,
    _wrap_like_the_stdout_collector,
    rendered,
)

# Katib's StdOut collector: default filter (pkg/metricscollector/v1beta1/common/const.go)
KATIB_FILTER = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")


def _trial_argv(exp: dict, values: dict[str, str], metrics: Path) -> list[str]:
    job = _katib_substitute(exp, values)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    return _wrap_like_the_stdout_collector(command, metrics)


def _collect(text: str, names: list[str]) -> dict[str, list[float]]:
    """Katib's text-format parsing: lines that mention a metric, the default filter's matches."""
    out: dict[str, list[float]] = {n: [] for n in names}
    for line in text.splitlines():
        if not any(n in line for n in names):
            continue
        for match in KATIB_FILTER.finditer(line):
            if match.group(1).strip() in out:
                out[match.group(1).strip()].append(float(match.group(2)))
    return out


def test_the_trial_runs_as_katib_runs_it(trial_data, tmp_path):
    exp = rendered(
        train_uri=str(trial_data / "train.parquet"),
        transformer_uri=f"file://{trial_data / 'transformer'}",
        fixed_params={"n_estimators": 80, "n_jobs": 1},
    )
    metrics = tmp_path / "metrics.log"
    argv = _trial_argv(
        exp,
        {
            "learning_rate": "0.1",
            "num_leaves": "15",
            "boosting_type": "gbdt",
            "trialName": "t-1",
        },
        metrics,
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    log = metrics.read_text()
    assert proc.returncode == 0, log
    assert list(tmp_path.glob("*.pid"))  # the collector's completion marker was written
    found = _collect(log, ["cv_roc_auc", "cv_roc_auc_std", "best_rounds"])
    folds = found["cv_roc_auc"]
    assert len(folds) == 3  # one running mean per fold: medianstop's steps
    assert 0.75 < folds[-1] < 1.0  # `latest`: the mean over all folds
    assert len(found["cv_roc_auc_std"]) == 1 and 0 <= found["cv_roc_auc_std"][0] < 0.1
    assert len(found["best_rounds"]) == 1 and 1 <= found["best_rounds"][0] <= 80
    metric_lines = [line for line in log.splitlines() if "cv_roc_auc=" in line]
    for line in metric_lines:  # RFC 3339 timestamps: Katib orders the observations by them
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z cv_roc_auc=[\d.]+$", line), line
    assert seconds < 60


def _fake_cv(scores, rounds=None, error=None):
    def cross_validate(train, spec, transformer, algorithm, params, folds, strategy, seed, **kw):
        if error is not None:
            raise error
        for i in range(len(scores)):
            kw["on_fold"](i, sum(scores[: i + 1]) / (i + 1))
        cross_validate.params = params
        mean = sum(scores) / len(scores)
        return CVResult(mean, 0.01, list(scores), [rounds] * len(scores) if rounds else [])

    return cross_validate


def _argv(data: Path, *params: str, space: dict | None = None) -> list[str]:
    space = space or {k: v.model_dump(mode="json") for k, v in SPACE.items()}
    argv = [
        "--algorithm",
        "lightgbm",
        "--train-data",
        str(data / "train.parquet"),
        "--transformer",
        str(data / "transformer"),
        "--fixed-params-json",
        '{"n_estimators": 100}',
        "--space-json",
        json.dumps(space),
    ]
    for p in params:
        argv += ["--param", p]
    return argv


PARAMS = ("learning_rate=0.05", "num_leaves=63", "boosting_type=gbdt")


def test_trial_output_and_exit_codes(trial_data, monkeypatch, capsys):
    import components.tune.cv as cv

    fake = _fake_cv([0.90, 0.92, 0.91], rounds=120)
    monkeypatch.setattr(cv, "cross_validate", fake)
    assert trial_module.main(_argv(trial_data, *PARAMS)) == 0
    out = capsys.readouterr().out
    found = _collect(out, ["cv_roc_auc", "cv_roc_auc_std", "best_rounds"])
    assert found["cv_roc_auc"] == pytest.approx([0.90, 0.91, 0.91])
    assert found["best_rounds"] == [180.0]  # 120 rounds on 2/3 of the rows, scaled to all rows
    assert fake.params == {
        "n_estimators": 100,
        "learning_rate": 0.05,
        "num_leaves": 63,
        "boosting_type": "gbdt",
    }

    monkeypatch.setattr(cv, "cross_validate", _fake_cv([], error=ValueError("num_leaves < 2")))
    assert trial_module.main(_argv(trial_data, *PARAMS)) == 1
    captured = capsys.readouterr()
    assert "cv_roc_auc=" not in captured.out and "num_leaves < 2" in captured.err

    monkeypatch.setattr(cv, "cross_validate", _fake_cv([float("nan")] * 3))
    assert trial_module.main(_argv(trial_data, *PARAMS)) == 1
    assert "cross-validation score is nan" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (PARAMS[:2], "no value for searched parameter(s) ['boosting_type']"),
        ((*PARAMS, "max_bin=63"), "unknown parameter 'max_bin'"),
        ((*PARAMS[:2], "boosting_type=goss"), "not one of"),
        ((*PARAMS, "learning_rate=0.1"), "given twice"),
        ((*PARAMS[1:], "learning_rate=${trialParameters.learning_rate}"), "not substituted"),
        ((*PARAMS[1:], "learning_rate"), "expected NAME=VALUE"),
    ],
)
def test_bad_trial_arguments_exit_2(trial_data, capsys, params, reason):
    assert trial_module.main(_argv(trial_data, *params)) == 2
    assert reason in capsys.readouterr().err


def test_a_missing_input_fails_the_trial(tmp_path, capsys):
    assert trial_module.main(_argv(tmp_path, *PARAMS)) == 1
    assert "failed:" in capsys.readouterr().err


def test_the_trial_never_talks_to_mlflow(trial_data, tmp_path, monkeypatch, capsys):
    """Even with an MLflow URI in its environment: trial pods have no MLflow login, and the
    track task logs the trials (test_katib_trials_reach_mlflow_like_local_trials)."""
    import components.tune.cv as cv

    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("KATIB_TRIAL_NAME", "tune-lightgbm-abc-x7k2")
    monkeypatch.setattr(cv, "cross_validate", _fake_cv([0.90, 0.92, 0.91]))
    assert trial_module.main(_argv(trial_data, *PARAMS)) == 0
    assert "cv_roc_auc=" in capsys.readouterr().out
    assert not store.exists()


def test_the_trial_reads_remote_artifacts(trial_data, monkeypatch, capsys):
    """On a cluster the trial gets the artifacts' URIs: it copies them with fsspec (here its
    in-memory filesystem; s3://, gs:// and KFP's minio:// go the same way)."""
    import fsspec

    import components.tune.cv as cv

    fs = fsspec.filesystem("memory")
    fs.pipe("/run-1/train.parquet", (trial_data / "train.parquet").read_bytes())
    for file in (trial_data / "transformer").iterdir():
        fs.pipe(f"/run-1/transformer/{file.name}", file.read_bytes())
    fake = _fake_cv([0.9, 0.9, 0.9])
    monkeypatch.setattr(cv, "cross_validate", fake)
    argv = _argv(trial_data, *PARAMS)
    argv[argv.index("--train-data") + 1] = "memory://run-1/train.parquet"
    argv[argv.index("--transformer") + 1] = "memory://run-1/transformer"
    assert trial_module.main(argv) == 0, capsys.readouterr().err
    fs.rm("/run-1", recursive=True)

    seen = []
    monkeypatch.setattr(
        fsspec.core, "url_to_fs", lambda url: seen.append(url) or (_ for _ in ()).throw(OSError)
    )
    with pytest.raises(OSError):
        trial_module.localize("minio://mlpipeline/v2/artifacts/train", trial_data)
    assert seen == ["s3://mlpipeline/v2/artifacts/train"]


def test_a_trial_on_the_staged_folds_scores_what_the_local_backend_scores(trial_data, tmp_path):
    """The tune task's staging, the rendered trial command with two assignments filled in as
    Katib fills them, run as Katib's StdOut collector wraps it: the `latest` objective equals the
    local backend's cross-validation for the same parameters and folds."""
    from components.common.artifacts import load_model, read_dataset
    from components.common.splitting import split_indices
    from components.tune.cv import cross_validate
    from components.tune.katib_staging import stage_inputs

    train_path, tf_path = str(trial_data / "train.parquet"), str(trial_data / "transformer")
    train = read_dataset(train_path)
    transformer, spec = load_model(tf_path)
    y = train[spec["label"]].to_numpy()
    splits = split_indices(y, 3, "stratified", 42)
    staged = stage_inputs(train_path, tf_path, splits, str(tmp_path / "stage"), "lightgbm-k")
    space = {k: SPACE[k] for k in ("learning_rate", "num_leaves")}
    fixed = {"n_estimators": 60, "n_jobs": 1}
    exp = render_experiment(
        namespace="mlpipe",
        algorithm="lightgbm",
        space=space,
        train_uri=staged.train_uri,
        transformer_uri=f"file://{staged.transformer_uri}",
        folds_uri=staged.folds_uri,
        fixed_params=fixed,
    )
    values = {"learning_rate": "0.08", "num_leaves": "21.0", "trialName": "t-2"}
    metrics = tmp_path / "metrics.log"
    argv = _trial_argv(exp, values, metrics)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    log = metrics.read_text()
    assert proc.returncode == 0, log
    objective = _collect(log, ["cv_roc_auc"])["cv_roc_auc"][-1]
    local = cross_validate(
        train,
        spec,
        transformer,
        "lightgbm",
        {**fixed, "learning_rate": 0.08, "num_leaves": 21},
        3,
        "stratified",
        42,
    )
    assert objective == pytest.approx(local.mean, abs=1e-6)  # printed with 6 decimals


def test_a_nan_is_reported_without_an_equals_sign(capsys):
    trial_module.emit("cv_roc_auc", float("nan"))
    captured = capsys.readouterr()
    assert captured.out == "" and "cv_roc_auc=" not in captured.err
