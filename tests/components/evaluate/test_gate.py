"""The quality gate: decide() on its own, and the gate task against a real MLflow registry (SQLite
in a temporary folder) with real models scored on real rows of the bundled data."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from components.common import registry
from components.common.config import REPO_ROOT, EvaluationConfig
from components.evaluate import compare
from components.evaluate.evaluate import run as evaluate_run
from components.evaluate.gate import Check, decide
from tests.fixtures.models import FEATURES, LABEL, logistic, register, save
from tests.support.mlflow_env import use_tracking_uri

DATA = REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet"
CFG = EvaluationConfig(explain={"enabled": False}).model_dump(mode="json")


def summary(**metrics) -> dict:
    base = {"roc_auc": 0.90, "log_loss": 0.40, "accuracy": 0.82, "decision_threshold": 0.5}
    base["expected_cost"] = 0.18
    return {"metrics": {**base, **metrics}, "slices": []}


# ---------------------------------------------------------------- decide


def test_first_model_passes_on_absolute_thresholds_alone():
    b = decide(summary(), None, CFG)
    assert b.blessed and b.mode == "absolute only (no champion yet)"
    assert [c["kind"] for c in b.checks] == ["absolute"]
    assert b.decision_threshold == 0.5 and b.expected_cost == 0.18


def test_absolute_threshold_failure_names_metric_and_limit():
    b = decide(summary(roc_auc=0.80), None, CFG)
    assert not b.blessed
    assert b.failed_checks == ["roc_auc 0.8000 < 0.85 (minimum)"]


def test_regression_against_champion_blocks():
    b = decide(summary(roc_auc=0.88), summary(roc_auc=0.90), CFG, champion_version="3")
    assert not b.blessed and b.mode == "absolute + vs champion"
    assert b.failed_checks == ["roc_auc 0.8800 < 0.895 (champion v3 0.9000 - tolerance 0.005)"]
    # within the tolerance: passes
    assert decide(summary(roc_auc=0.897), summary(roc_auc=0.90), CFG, champion_version="3").blessed


def test_lower_is_better_metrics_compare_the_other_way():
    cfg = {**CFG, "thresholds": {"log_loss": 0.5}, "max_regression": {"log_loss": 0.01}}
    assert decide(summary(log_loss=0.40), summary(log_loss=0.45), cfg, champion_version="1").blessed
    b = decide(summary(log_loss=0.47), summary(log_loss=0.45), cfg, champion_version="1")
    assert b.failed_checks == ["log_loss 0.4700 > 0.46 (champion v1 0.4500 + tolerance 0.01)"]
    b = decide(summary(log_loss=0.55), None, cfg)
    assert b.failed_checks == ["log_loss 0.5500 > 0.5 (maximum)"]


def test_slice_thresholds_and_gaps():
    ch = summary()
    ch["slices"] = [
        {
            "feature": "SEX",
            "slices": [
                {"value": "1", "rows": 900, "judged": True, "roc_auc": 0.91},
                {"value": "2", "rows": 800, "judged": True, "roc_auc": 0.78},
                {"value": "3", "rows": 5, "judged": False, "roc_auc": 0.10},  # never judged
            ],
            "gaps": {"roc_auc": {"gap": 0.13, "best": "1", "worst": "2"}},
        }
    ]
    cfg = {**CFG, "slices": {"thresholds": {"roc_auc": 0.80}, "max_gap": {"roc_auc": 0.10}}}
    b = decide(ch, None, cfg)
    assert not b.blessed
    assert b.failed_checks == [
        "roc_auc 0.7800 < 0.8 (slice SEX=2, 800 rows)",
        "roc_auc 0.1300 > 0.1 (gap across SEX: best 1, worst 2)",
    ]


def test_champion_that_cannot_be_scored_fails_closed():
    b = decide(summary(), None, CFG, champion_version="2", champion_error="lacks SCHL")
    assert not b.blessed and b.mode == "champion not comparable"
    assert b.failed_checks == ["cannot compare with champion v2: lacks SCHL"]
    # ... unless no comparison is asked for
    cfg = {**CFG, "max_regression": {}}
    assert decide(summary(), None, cfg, champion_version="2", champion_error="x").blessed


def test_check_figures_agree_with_the_verdict():
    assert Check("absolute", "roc_auc", 0.84996, 0.85, True).describe() == "roc_auc 0.84996 < 0.85"
    assert Check("absolute", "f1", 0.85, 0.85, True).describe() == "f1 0.8500 >= 0.85"
    assert Check("absolute", "brier", 0.2, 0.2, False).describe() == "brier 0.2000 <= 0.2"


# ---------------------------------------------------------------- the gate task, real registry


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
