"""The quality gate: decide() on its own (the gate task against a real registry:
test_compare.py)."""

from components.common.config import EvaluationConfig
from components.evaluate.gate import Check, decide

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
