"""`mlpipe clean`: old runs' outputs go; recent runs, the registry's and the cache's stay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines import clean_cli
from pipelines.cli import main

RUNS = [f"mlpipe-training-20261203-10{m:02d}00" for m in range(4)]  # oldest first
KFP = [f"mlpipe-training-2026-12-03-10-{m:02d}-01-123456" for m in range(4)]


def _outputs(root: Path) -> Path:
    out = root / "outputs"
    for run, kfp in zip(RUNS, KFP, strict=True):
        (out / "models" / run).mkdir(parents=True)
        (out / "models" / run / "model.pkl").write_bytes(b"m" * 1_000_000)
        (out / "data").mkdir(exist_ok=True)
        (out / "data" / f"{run}.parquet").write_bytes(b"d" * 500_000)
        (out / "reports").mkdir(exist_ok=True)
        (out / "reports" / f"{run}-evaluation.html").write_text("<html/>")
        (out / "logs").mkdir(exist_ok=True)
        (out / "logs" / f"{run}.log").write_text("log")
        (out / "kfp" / kfp / "train").mkdir(parents=True)
        (out / "kfp" / kfp / "train" / "model").write_bytes(b"k" * 100_000)
    (out / "kfp" / ".kfp_cache").mkdir()
    # the cache's entry for a task first run in the oldest run: its folder must stay
    (out / "kfp" / ".kfp_cache" / "abc.json").write_text(
        f'{{"model": {{"path": "{out}/kfp/{KFP[0]}/train/model"}}}}'
    )
    (out / "mlflow").mkdir()
    (out / "mlflow" / "keep.txt").write_text("store")
    (out / "state").mkdir()
    return out


def _register(out: Path, run: str, tagged: int) -> None:
    """A real MLflow registry (sqlite): the champion's source is `run`'s model folder; the
    challenger's MLflow run is tagged with kfp's run name KFP[tagged], which only the run's log
    names (as a real run's does)."""
    import mlflow

    from components.common.mlflow_utils import PIPELINE_RUN_TAG

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow' / 'mlflow.db'}")
    client.create_registered_model("acs-employment")
    mv = client.create_model_version("acs-employment", str(out / "models" / run), run_id=None)
    client.set_registered_model_alias("acs-employment", "champion", mv.version)
    experiment = client.create_experiment("e", artifact_location=str(out / "mlflow" / "a"))
    mlflow_run = client.create_run(experiment, tags={PIPELINE_RUN_TAG: KFP[tagged]})
    (out / "logs" / f"{RUNS[tagged]}.log").write_text(f"Running pipeline: {KFP[tagged]}\n")
    source = str(out / "mlflow" / "a" / "model")  # in the store, as log_model puts it
    mv = client.create_model_version("acs-employment", source, run_id=mlflow_run.info.run_id)
    client.set_registered_model_alias("acs-employment", "challenger", mv.version)


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(clean_cli, "process_paths", lambda: set())
    return _outputs(tmp_path)


def test_keeps_the_newest_runs_the_cached_and_the_registry_and_removes_the_rest(out, capsys):
    _register(out, RUNS[1], tagged=2)
    assert main(["clean", "--keep", "1", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in (out / "models").iterdir()) == RUNS[1:]
    assert not (out / "data" / f"{RUNS[0]}.parquet").exists()
    assert not (out / "reports" / f"{RUNS[0]}-evaluation.html").exists()
    assert not (out / "logs" / f"{RUNS[0]}.log").exists()
    assert (out / "logs" / f"{RUNS[1]}.log").exists()  # the champion's run, whole
    assert (out / "reports" / f"{RUNS[2]}-evaluation.html").exists()  # the challenger's
    kfp = sorted(p.name for p in (out / "kfp").iterdir() if not p.name.startswith("."))
    assert kfp == [KFP[0], KFP[2], KFP[3]]  # the cache's, the challenger's, the newest
    assert (out / "mlflow" / "keep.txt").exists() and (out / "state").exists()
    assert f"kept {RUNS[1]}: the registry's current versions come from it" in printed
    assert f"kept {RUNS[2]}: the registry's current versions come from it" in printed
    assert f"kept kfp/{KFP[0]}: the task cache points at it" in printed
    # freed: one run's model + data (1.5 MB), one kfp folder (0.1 MB), small files
    assert "removed 5 path(s), 1.6 MB" in printed


def test_dry_run_removes_nothing_and_says_what_would_go(out, capsys):
    before = sorted(str(p) for p in out.rglob("*"))
    assert main(["clean", "--keep", "0", "--dry-run", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(str(p) for p in out.rglob("*")) == before
    assert f"would remove models/{RUNS[3]}" in printed and "would remove 19 path(s)" in printed


def test_a_model_a_running_process_was_given_stays(out, monkeypatch, capsys):
    served = out / "models" / RUNS[0]
    monkeypatch.setattr(clean_cli, "process_paths", lambda: {served})
    assert main(["clean", "--keep", "0", "--output-dir", str(out)]) == 0
    assert served.exists() and not (out / "models" / RUNS[1]).exists()
    assert f"kept {RUNS[0]}: a running process uses it" in capsys.readouterr().out


def test_all_empties_the_outputs_folder_and_nothing_else(out, tmp_path, capsys):
    beside = tmp_path / "beside.txt"
    beside.write_text("not ours")
    assert main(["clean", "--all", "--output-dir", str(out)]) == 0
    assert out.is_dir() and list(out.iterdir()) == [] and beside.exists()
    assert "the registry and MLflow store too" in capsys.readouterr().out


def test_hard_linked_files_free_nothing_until_the_last_name_goes(out):
    model = out / "models" / RUNS[0] / "model.pkl"
    os.link(model, out / "kfp" / KFP[3] / "train" / "linked.pkl")
    assert clean_cli._size(out / "models" / RUNS[0]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--keep", "-1"], "--keep must be 0 or more"),
        (["--keep", "two"], "--keep takes a whole number"),
        (["--everything"], "unrecognized arguments: --everything"),
    ],
)
def test_bad_flags_are_refused_before_anything_is_removed(out, capsys, argv, message):
    before = sorted(str(p) for p in out.rglob("*"))
    with pytest.raises(SystemExit) as exit_:
        main(["clean", *argv, "--output-dir", str(out)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert sorted(str(p) for p in out.rglob("*")) == before


def test_never_removes_outside_the_outputs_folder(tmp_path):
    with pytest.raises(RuntimeError, match="refusing to remove"):
        clean_cli._remove(tmp_path / "elsewhere", tmp_path / "outputs")
