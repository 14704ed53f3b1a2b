"""The gate task (compare.py) against a real MLflow registry (SQLite in a temporary folder) with
real models scored on real rows of the bundled data: the champion's evaluation on the
challenger's rows, the verdict and report files, the MLflow run the verdict goes on, and what it
logs there."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from components.common import model_integrity, registry
from components.common.config import REPO_ROOT, EvaluationConfig
from components.evaluate import compare
from components.evaluate.evaluate import run as evaluate_run
from components.evaluate.gate import decide
from tests.fixtures.models import FEATURES, LABEL, logistic, register, save
from tests.support.mlflow_env import use_tracking_uri

DATA = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
CFG = EvaluationConfig(explain={"enabled": False}).model_dump(mode="json")


@pytest.fixture(scope="module")
def rows():
    df = pd.read_parquet(DATA, columns=[*FEATURES, LABEL, "year"])
    return df[df.year == 2015].sample(4000, random_state=0), df[df.year == 2016].sample(
        3000, random_state=1
    )


@pytest.fixture(scope="module")
def models(rows, tmp_path_factory):
    """A good model (all features) and a degraded one (without the strongest features)."""
    train, _ = rows
    root = tmp_path_factory.mktemp("models")
    good = logistic(train)
    weak = logistic(train, [f for f in FEATURES if f not in ("AGEP", "MIL", "RELP")])
    return {"good": good, "weak": weak, "root": root}


@pytest.fixture()
def store(mlflow_store):
    return mlflow_store


def gate(models, rows, tmp_path, which: str, cfg=CFG):
    """Evaluate model `which` (pure evaluate), then run the gate task's logic on it."""
    _, test = rows
    test_path = tmp_path / "test.parquet"
    test.to_parquet(test_path)
    model_dir = save(*models[which], tmp_path / which)
    evaluate_run(str(model_dir), str(test_path), cfg, str(tmp_path / "summary.json"))
    return compare.run(
        str(test_path),
        str(tmp_path / "summary.json"),
        cfg,
        "m",
        str(tmp_path / "blessing"),
        str(tmp_path / "report"),
    )


def test_empty_registry_gates_on_absolute_thresholds(store, models, rows, tmp_path):
    blessing, _, champion = gate(models, rows, tmp_path, "good")
    assert blessing.blessed and champion is None
    assert blessing.mode == "absolute only (no champion yet)"
    written = json.loads((tmp_path / "blessing").read_text())
    assert written["blessed"] is True and written["champion_metrics"] is None
    assert "No champion in the registry yet" in (tmp_path / "report").read_text()


def test_degraded_challenger_is_blocked_against_the_champion(store, models, rows, tmp_path):
    version = register(*models["good"], "m", "good")
    cfg = {**CFG, "thresholds": {"roc_auc": 0.5}}  # the weak model clears the absolute bar
    blessing, challenger, champion = gate(models, rows, tmp_path, "weak", cfg)
    assert champion["model"]["version"] == version
    drop = champion["metrics"]["roc_auc"] - challenger["metrics"]["roc_auc"]
    assert drop >= 0.02, drop  # the degradation is real, not noise
    assert not blessing.blessed and blessing.champion_version == version
    assert len(blessing.failed_checks) == 1
    assert blessing.failed_checks[0].startswith("roc_auc ")
    assert f"champion v{version}" in blessing.failed_checks[0]
    # the champion was scored on the challenger's rows: its metrics are in the blessing
    written = json.loads((tmp_path / "blessing").read_text())
    assert written["champion_metrics"]["roc_auc"] == pytest.approx(champion["metrics"]["roc_auc"])
    report = (tmp_path / "report").read_text()
    assert "Gate: BLOCKED" in report and f"champion v{version}" in report
    # nothing moved in the registry
    assert registry.alias_version(store, "m", registry.CHAMPION).version == int(version)
    assert registry.alias_version(store, "m", registry.CHALLENGER) is None


def test_equal_or_better_challenger_passes(store, models, rows, tmp_path):
    register(*models["weak"], "m", "weak")
    blessing, challenger, champion = gate(models, rows, tmp_path, "good")
    assert blessing.blessed and blessing.mode == "absolute + vs champion"
    assert challenger["metrics"]["roc_auc"] > champion["metrics"]["roc_auc"]


def test_champion_on_other_features_is_scored_on_its_own_columns(store, models, rows, tmp_path):
    # the champion uses fewer features than the challenger: each reads its own columns
    register(*models["weak"], "m", "weak")
    blessing, _, champion = gate(models, rows, tmp_path, "good")
    assert champion["model"]["features"] == len(FEATURES) - 3
    assert blessing.champion_error is None


def test_unreachable_registry_fails_the_gate(models, rows, tmp_path, monkeypatch):
    use_tracking_uri(monkeypatch, "http://127.0.0.1:9")  # gate configures MLflow's global URI
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(mlflow.exceptions.MlflowException):
        gate(models, rows, tmp_path, "good")
    assert not (tmp_path / "blessing").exists()  # no verdict without a registry answer


def tracked_run(pipeline_run: str, experiment: str = "t") -> str:
    """The MLflow run track leaves for `pipeline_run` (found or created by the tag track sets)."""
    from components.common import mlflow_utils as mu

    return mu.parent_run_id(experiment, pipeline_run)


def test_the_verdict_goes_on_tracks_run_or_on_its_own_run_when_track_was_cached(store):
    from components.common import mlflow_utils as mu

    tracked = tracked_run("pipeline-run-1")
    assert compare.verdict_run("t", "pipeline-run-1", tracked) == tracked
    # a re-run served track from the cache: its run_id is the earlier pipeline run's
    own = compare.verdict_run("t", "pipeline-run-2", tracked)
    assert own != tracked
    tags = mlflow.get_run(own).data.tags
    assert tags[mu.PIPELINE_RUN_TAG] == "pipeline-run-2"
    assert tags[mu.RESULTS_RUN_TAG] == tracked  # `mlpipe runs` shows the params from there
    assert compare.verdict_run("t", "pipeline-run-2", tracked) == own  # a retry: the same run
    assert mu.GATE_TAG not in mlflow.get_run(tracked).data.tags  # the earlier verdict stays


def test_the_gate_refuses_a_missing_track_run_id(store):
    from components.common.errors import StageError

    with pytest.raises(StageError, match="logged_model output has no run_id"):
        compare.verdict_run("t", "pipeline-run-1", None)


def test_gate_records_its_verdict_in_mlflow(store, models, rows, tmp_path):
    version = register(*models["good"], "m", "good")
    blessing, _, champion = gate(models, rows, tmp_path, "weak")
    run_id = tracked_run("pipeline-run-1")
    compare.log_to_mlflow(
        run_id,
        blessing,
        champion,
        {"blessing.json": str(tmp_path / "blessing"), "report.html": str(tmp_path / "report")},
    )
    run = mlflow.get_run(run_id)
    assert run.data.tags["mlpipe.gate"] == "blocked"
    assert run.data.tags["mlpipe.gate.champion_version"] == version
    assert "roc_auc" in run.data.tags["mlpipe.gate.failed_checks"]
    assert run.data.metrics["champion.roc_auc"] == pytest.approx(champion["metrics"]["roc_auc"])
    files = {f.path for f in mlflow.MlflowClient().list_artifacts(run_id, "gate")}
    assert files == {"gate/blessing.json", "gate/report.html"}


def test_a_logged_report_is_on_disk_once_on_a_local_store(store, models, rows, tmp_path):
    register(*models["good"], "m", "good")
    blessing, _, champion = gate(models, rows, tmp_path, "weak")
    report = tmp_path / "report"
    first = tracked_run("run-1")
    compare.log_to_mlflow(first, blessing, champion, {"report.html": str(report)})
    root = Path(mlflow.get_run(first).info.artifact_uri.removeprefix("file://"))
    logged = root / "gate" / "report.html"
    assert logged.stat().st_ino == report.stat().st_ino  # a hard link, not a copy
    kept = logged.read_bytes()
    # the next verdict replaces its output file (a new file): the logged report keeps its bytes
    gate(models, rows, tmp_path, "good")
    assert report.read_bytes() != kept and logged.read_bytes() == kept


def test_an_unchanged_rerun_references_the_earlier_report_instead_of_logging_it(
    store, models, rows, tmp_path
):
    register(*models["good"], "m", "good")
    blessing, _, champion = gate(models, rows, tmp_path, "weak")
    files = {"blessing.json": str(tmp_path / "blessing"), "report.html": str(tmp_path / "report")}
    client = mlflow.MlflowClient()

    def logged(run_id):
        return {f.path for f in client.list_artifacts(run_id, "gate")}

    first = tracked_run("run-1")
    compare.log_to_mlflow(first, blessing, champion, files)
    assert logged(first) == {"gate/blessing.json", "gate/report.html"}
    # the same verdict inputs, decided again: the same bytes (the report is deterministic);
    # nothing logged again, tags point at run-1's copy
    before = (tmp_path / "report").read_bytes()
    blessing, _, champion = gate(models, rows, tmp_path, "weak")
    assert (tmp_path / "report").read_bytes() == before
    second = tracked_run("run-2")
    compare.log_to_mlflow(second, blessing, champion, files)
    assert second != first and logged(second) == set()
    tags = mlflow.get_run(second).data.tags
    assert tags["mlpipe.gate.same_as.report.html"] == f"runs:/{first}/gate/report.html"
    assert tags["mlpipe.gate"] == "blocked"  # the verdict is recorded on every run
    # a referencing run is never itself the target of a reference
    third = tracked_run("run-3")
    compare.log_to_mlflow(third, blessing, champion, files)
    assert (
        mlflow.get_run(third)
        .data.tags["mlpipe.gate.same_as.report.html"]
        .startswith(f"runs:/{first}/")
    )
    # a changed report (here: another challenger's) is logged in full
    gate(models, rows, tmp_path, "good")
    fourth = tracked_run("run-4")
    compare.log_to_mlflow(fourth, blessing, champion, files)
    assert "gate/report.html" in logged(fourth)
    assert "mlpipe.gate.same_as.report.html" not in mlflow.get_run(fourth).data.tags


# ---------------------------------------------------------------- champion_evaluation


def test_no_champion_means_nothing_to_compare_with(store, models, rows, tmp_path):
    register(*models["good"], "m", "good", promote=False)  # a version, but no champion alias
    _, test = rows
    test.to_parquet(tmp_path / "test.parquet")
    cfg = compare.parse_config(CFG)
    got = compare.champion_evaluation("m", str(tmp_path / "test.parquet"), cfg)
    assert got == (None, None, None)
    assert compare.champion_evaluation("unknown", str(tmp_path / "test.parquet"), cfg) == (
        None,
        None,
        None,
    )


def test_the_champion_is_scored_on_the_given_rows_without_explanations(
    store, models, rows, tmp_path
):
    version = register(*models["good"], "m", "good")
    _, test = rows
    test.head(1000).to_parquet(tmp_path / "test.parquet")
    # explanations on in the config: the challenger's evaluation has them, the champion's never
    cfg = compare.parse_config({**CFG, "explain": {"enabled": True}})
    summary, got_version, error = compare.champion_evaluation(
        "m", str(tmp_path / "test.parquet"), cfg
    )
    assert (got_version, error) == (version, None)
    assert summary["model"]["version"] == version and "explain" not in summary
    assert 0.5 < summary["metrics"]["roc_auc"] <= 1


def test_a_champion_that_cannot_score_the_rows_is_reported_not_raised(
    store, models, rows, tmp_path
):
    version = register(*models["good"], "m", "good")
    _, test = rows
    test.drop(columns=["SCHL"]).to_parquet(tmp_path / "test.parquet")
    summary, got_version, error = compare.champion_evaluation(
        "m", str(tmp_path / "test.parquet"), compare.parse_config(CFG)
    )
    assert summary is None and got_version == version
    assert "SCHL" in error


def test_a_champion_whose_files_differ_from_its_manifest_is_not_loaded(
    store, models, rows, tmp_path
):
    version = register(*models["good"], "m", "good")
    # the registry's manifest no longer matches the stored files: nothing may be unpickled
    store.set_model_version_tag("m", version, model_integrity.MANIFEST_SHA256_TAG, "0" * 64)
    _, test = rows
    test.head(200).to_parquet(tmp_path / "test.parquet")
    summary, got_version, error = compare.champion_evaluation(
        "m", str(tmp_path / "test.parquet"), compare.parse_config(CFG)
    )
    assert summary is None and got_version == version
    assert error.startswith("cannot load it: ")


def test_a_champion_that_cannot_be_scored_blocks_the_challenger(store, models, rows, tmp_path):
    """Fail closed: a champion the gate cannot compare with blocks, whatever the challenger."""
    version = register(*models["good"], "m", "good")
    store.set_model_version_tag("m", version, model_integrity.MANIFEST_SHA256_TAG, "0" * 64)
    blessing, _, champion = gate(models, rows, tmp_path, "good")
    assert not blessing.blessed and champion is None
    assert blessing.champion_version == version and "cannot load it" in blessing.champion_error
    written = json.loads((tmp_path / "blessing").read_text())
    assert written["blessed"] is False and written["champion_metrics"] is None


# ---------------------------------------------------------------- log_to_mlflow


def test_a_passed_verdict_without_a_champion_logs_no_champion_tags(store, tmp_path):
    challenger = {"metrics": {"roc_auc": 0.9, "log_loss": 0.3, "accuracy": 0.85}, "slices": []}
    challenger["metrics"].update(decision_threshold=0.5, expected_cost=0.1)
    blessing = decide(challenger, None, compare.parse_config(CFG))
    assert blessing.blessed
    (tmp_path / "blessing").write_text("{}")
    run_id = tracked_run("pipeline-run-1")
    compare.log_to_mlflow(
        run_id,
        blessing,
        None,
        {"blessing.json": str(tmp_path / "blessing"), "report.html": str(tmp_path / "none")},
    )
    run = mlflow.get_run(run_id)
    tags = run.data.tags
    assert tags["mlpipe.gate"] == "passed" and tags["mlpipe.gate.mode"] == blessing.mode
    assert "mlpipe.gate.failed_checks" not in tags
    assert "mlpipe.gate.champion_version" not in tags
    assert not any(k.startswith("champion.") for k in run.data.metrics)
    # a file that is not there is skipped, not logged and not tagged
    files = {f.path for f in mlflow.MlflowClient().list_artifacts(run_id, "gate")}
    assert files == {"gate/blessing.json"}
    assert not any(k.endswith(".report.html") for k in tags)
