"""Tests of the monitor stage across its modules: decay, the decision and the CLI.

Each logic module's own unit tests are in test_<module>.py (test_drift, test_shift, test_batch,
test_actions, test_decay, test_decision, test_report)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.monitor import decay, decision
from tests.components.monitor.conftest import log_line

# ---------------------------------------------------------------- decay and decision

REFERENCE = {"roc_auc": 0.90, "expected_cost": 0.18, "decision_threshold": 0.5}
TOLERANCE = {"roc_auc": 0.02, "expected_cost": 0.02}
COST = {"false_positive": 1.0, "false_negative": 1.0}


def test_decay_is_measured_against_the_champions_own_evaluation():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    good = np.clip(y * 0.6 + rng.random(4000) * 0.4, 0, 1)  # separates well
    out = decay.measure(y, good, REFERENCE, TOLERANCE, COST)
    assert not out["decayed"] and out["roc_auc"] > 0.9
    noise = rng.random(4000)  # AUC ~0.5, cost ~0.5
    out = decay.measure(y, noise, REFERENCE, TOLERANCE, COST)
    assert out["decayed"] and len(out["reasons"]) == 2
    assert "roc_auc" in out["reasons"][0] and "expected cost" in out["reasons"][1]


def test_one_class_batch_has_no_auc_but_a_cost():
    out = decay.measure(np.ones(100), np.full(100, 0.9), REFERENCE, TOLERANCE, COST)
    assert out["roc_auc"] is None and out["expected_cost"] == 0.0 and not out["decayed"]


POLICY = {"on_drift": "retrain", "min_drifted_features": 1, "on_decay": "retrain", "min_rows": 200}
DRIFTED = {
    "AGEP": {"metric": "jensen_shannon", "value": 0.3, "threshold": 0.1, "drifted": True},
    "SEX": {"metric": "linf", "value": 0.01, "threshold": 0.1, "drifted": False},
}
CALM = {"SEX": {"metric": "linf", "value": 0.01, "threshold": 0.1, "drifted": False}}


def test_decision_policy():
    assert decision.decide(CALM, None, [], 1000, POLICY)["decision"] == "none"
    d = decision.decide(DRIFTED, None, [], 1000, POLICY)
    assert d["decision"] == "retrain" and d["drifted"] == ["AGEP"] and d["kinds"] == ["drift"]
    assert (
        decision.decide(DRIFTED, None, [], 1000, {**POLICY, "on_drift": "alert"})["decision"]
        == "alert"
    )
    decayed = {"decayed": True, "reasons": ["roc_auc 0.8 < 0.9"]}
    d = decision.decide(CALM, decayed, [], 1000, {**POLICY, "on_drift": "alert"})
    assert d["decision"] == "retrain" and d["kinds"] == ["performance_decay"]
    # bad data only alerts, whatever else it shows
    bad = [{"feature": "SEX", "description": "unexpected value 3"}]
    d = decision.decide(DRIFTED, decayed, bad, 1000, POLICY)
    assert d["decision"] == "alert" and d["kinds"] == ["data_anomaly"]
    # too few rows: not acted on
    assert decision.decide(DRIFTED, decayed, [], 50, POLICY)["decision"] == "none"
    two = {**POLICY, "min_drifted_features": 2}
    assert decision.decide(DRIFTED, None, [], 1000, two)["decision"] == "none"


# ---------------------------------------------------------------- the CLI


def test_monitor_cli_refuses_a_labels_file_without_its_columns_before_running(tmp_path, capsys):
    """A user's mistake: exit 2 with the columns found, no run and no pipeline_failure alert."""
    from pipelines.cli import build_parser, main

    log = tmp_path / "requests.jsonl"
    log.write_text(log_line(0, [{"AGEP": 30}]) + "\n")
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["r0"], "label": [1]}).to_csv(labels, index=False)
    out = tmp_path / "outputs"
    argv = ["monitor", "--request-log", str(log), "--labels", str(labels)]
    assert main([*argv, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "lacks column(s) employed; it has: request_id, label" in err
    assert not out.exists()  # no logs, no alert, no run
    assert main([*argv[:3], "--label-column", "label", "--output-dir", str(out)]) == 2
    assert "--label-column needs --labels FILE" in capsys.readouterr().err
    monitor = build_parser()._subparsers._group_actions[0].choices["monitor"]
    assert "--label-column" in monitor.format_help() and "request_id" in monitor.format_help()
