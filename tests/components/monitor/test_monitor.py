"""Unit tests of the monitor stage's plain logic: drift measures, decay, the decision, reading
batches and request logs, the shifted batch, the report and the actions (alert + trigger)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from components.common.alerts import AlertSink
from components.common.errors import DataError
from components.monitor import actions, batch, decay, decision, drift, report, shift


def summary(df: pd.DataFrame, schema) -> dict:
    """A statistics summary in the TFDV job's format, built with pandas (test data only)."""
    features = {}
    for name, spec in schema.features.items():
        if name not in df.columns:
            continue
        s = df[name]
        if spec.kind == "categorical":
            counts = s.value_counts()
            features[name] = {
                "kind": "categorical",
                "top_values": [[str(k), int(v)] for k, v in counts.items()],
            }
        else:
            counts, edges = np.histogram(s, bins=10)
            features[name] = {
                "kind": "numeric",
                "histogram": [
                    [float(edges[i]), float(edges[i + 1]), float(c)] for i, c in enumerate(counts)
                ],
            }
    return {"rows": len(df), "features": features}


# ---------------------------------------------------------------- drift


def test_linf_is_the_largest_change_in_any_share():
    assert drift.linf({"1": 0.5, "2": 0.5}, {"1": 0.75, "2": 0.25}) == pytest.approx(0.25)
    assert drift.linf({"1": 1.0}, {"2": 1.0}) == pytest.approx(1.0)  # disjoint codes
    assert drift.linf({}, {}) == 0.0


def test_jensen_shannon_is_zero_for_equal_and_one_for_disjoint_histograms():
    h = [[0, 10, 5], [10, 20, 5]]
    _, p, q = drift.histogram_distributions(h, h)
    assert drift.jensen_shannon(p, q) == pytest.approx(0.0)
    _, p, q = drift.histogram_distributions([[0, 10, 5]], [[20, 30, 7]])
    assert drift.jensen_shannon(p, q) == pytest.approx(1.0)


def test_rebinning_spreads_mass_uniformly_over_a_bucket():
    edges, p, q = drift.histogram_distributions([[0, 10, 10]], [[0, 5, 4], [5, 10, 4]])
    assert edges == [0, 5, 10]
    assert p == pytest.approx([0.5, 0.5]) and q == pytest.approx([0.5, 0.5])


def test_year_over_year_drift_is_tiny_and_a_shift_is_caught(full_data, schema):
    y2015 = full_data[full_data.year == 2015]
    y2016 = full_data[full_data.year == 2016]
    ref = summary(y2015, schema)
    same = drift.measure(ref, summary(y2016, schema), schema)
    assert drift.drifted(same) == []
    assert same["AGEP"]["metric"] == "jensen_shannon" and same["AGEP"]["value"] < 0.01
    assert same["SEX"]["metric"] == "linf"
    shifted = drift.measure(ref, summary(shift.shift_batch(y2016, seed=1), schema), schema)
    hits = drift.drifted(shifted)
    assert {"AGEP", "MAR"} <= set(hits)
    assert all(shifted[n]["value"] > shifted[n]["threshold"] for n in hits)


def test_a_feature_missing_from_a_summary_is_reported_not_measured(schema):
    ref = {"features": {"AGEP": {"histogram": [[0, 99, 10]]}}}
    out = drift.measure(ref, {"features": {}}, schema)
    assert out["AGEP"]["missing"] and "value" not in out["AGEP"]
    assert drift.drifted(out) == []


def test_thresholds_come_from_the_data_schema(schema):
    assert drift.drift_spec(schema, "AGEP") == ("jensen_shannon", 0.1)
    assert drift.drift_spec(schema, "SEX") == ("linf", schema.checks.drift_threshold_default)


# ---------------------------------------------------------------- shifted batch


def test_the_shifted_batch_stays_inside_the_declared_domains(full_data, schema):
    y = full_data[full_data.year == 2017].sample(5000, random_state=0)
    out = shift.shift_batch(y, seed=3)
    assert len(out) == len(y) and out["id"].is_unique and out["id"].min() > y["id"].max()
    assert out["AGEP"].mean() > y["AGEP"].mean() + 5
    for name, spec in schema.features.items():
        if spec.kind == "categorical":
            assert set(out[name].unique()) <= set(spec.codes()), name
        else:
            assert out[name].between(spec.min, spec.max).all(), name


def test_flipping_labels_changes_only_the_label(full_data):
    y = full_data[full_data.year == 2017].head(2000)
    out = shift.flip_labels(y, "employed", 0.3, seed=0)
    changed = (out["employed"] != y["employed"]).mean()
    assert 0.25 < changed < 0.35
    pd.testing.assert_frame_equal(out.drop(columns="employed"), y.drop(columns="employed"))


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


# ---------------------------------------------------------------- batches and request logs


def _log_line(i: int, rows: list[dict], status=200) -> str:
    return json.dumps(
        {
            "ts": 1.0 + i,
            "model": "acs-employment",
            "model_version": "3",
            "request_id": f"r{i}",
            "protocol": "v1",
            "status": status,
            "latency_ms": 0.7,
            "inputs": rows,
            "outputs": [0.1 * (k + 1) for k in range(len(rows))],
        }
    )


def test_request_log_rows_failed_and_unreadable_lines(tmp_path):
    log = tmp_path / "requests.jsonl"
    log.write_text(
        "\n".join(
            [
                _log_line(0, [{"AGEP": 30, "SEX": 1}, {"AGEP": 40, "SEX": 2}]),
                _log_line(1, [{"AGEP": 50, "SEX": 1}], status=500),
                "{not json",
                _log_line(2, [{"AGEP": 60, "SEX": 2}], status="ok"),
                "",
            ]
        )
    )
    df, counts = batch.read_request_log(log)
    assert counts == {"requests": 2, "failed": 1, "unreadable": 1}
    assert df["AGEP"].tolist() == [30, 40, 60]
    assert df["request_id"].tolist() == ["r0", "r0", "r2"] and df["row"].tolist() == [0, 1, 0]
    assert df["prediction"].tolist() == pytest.approx([0.1, 0.2, 0.1])
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["r0", "r0"], "row": [0, 1], "employed": [1, 0]}).to_csv(labels)
    joined = batch.attach_labels(df, labels, "employed")
    assert joined["employed"].tolist()[:2] == [1, 0] and pd.isna(joined["employed"].iloc[2])


def test_bad_inputs_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        batch.read_request_log(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(_log_line(0, [{"AGEP": 1}], status=503) + "\n")
    with pytest.raises(DataError, match="no successful request rows"):
        batch.read_request_log(empty)
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    with pytest.raises(DataError, match="cannot read"):
        batch.read_table(broken)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"id": [1]}).to_csv(labels)
    with pytest.raises(DataError, match="lacks"):
        batch.attach_labels(pd.DataFrame({"request_id": ["a"], "row": [0]}), labels, "employed")


def test_rows_digest_follows_content_not_the_file(tmp_path, sample_data):
    a = sample_data.head(100)
    a.to_parquet(tmp_path / "a.parquet")
    a.to_csv(tmp_path / "a.csv", index=False)
    assert batch.rows_digest(batch.read_table(tmp_path / "a.parquet")) == batch.rows_digest(a)
    assert batch.rows_digest(a) != batch.rows_digest(sample_data.head(101))


# ---------------------------------------------------------------- report


def test_report_has_a_plot_per_feature_and_the_decision(sample_data, schema):
    ref = summary(sample_data[sample_data.year == 2015], schema)
    new = summary(shift.shift_batch(sample_data[sample_data.year == 2016]), schema)
    measurements = drift.measure(ref, new, schema)
    result = {
        "decision": decision.decide(measurements, None, [], 2000, POLICY),
        "drift": measurements,
        "decay": None,
        "anomalies": [],
        "rows": 2000,
        "batch_digest": "ab" * 32,
        "champion_version": "4",
        "context": {"batch": "b.parquet", "registered_model": "acs-employment"},
    }
    page = report.render(result, ref, new)
    plots = re.findall(r"<figure data-plot='drift-(\w+)'>", page)
    assert sorted(plots) == sorted(schema.feature_names)
    assert "RETRAIN" in page and "No labels" in page and "<script" not in page


# ---------------------------------------------------------------- actions


def _result(digest="d" * 64, verdict="retrain", drifted=("AGEP", "MAR")):
    reasons = [f"{n}: drifted" for n in drifted]
    return {
        "batch_digest": digest,
        "rows": 3000,
        "registered_model": "acs-employment",
        "champion_version": "2",
        "anomalies": [],
        "decay": None,
        "newest": 2017,
        "decision": {
            "decision": verdict,
            "reasons": reasons if verdict != "none" else [],
            "kinds": ["drift"] if verdict != "none" else [],
            "drifted": list(drifted) if verdict != "none" else [],
        },
        "context": {"batch": "b2017.parquet"},
    }


def test_one_alert_and_one_trigger_per_incident(tmp_path):
    sink = AlertSink(tmp_path / "logs")
    triggers = actions.TriggerStore(str(tmp_path / "triggers"))
    first = actions.act(_result(), sink, triggers)
    assert first["alert"]["status"] == "sent" and first["retrain"]["status"] == "claimed"
    (entry,) = sink.entries()
    assert entry["kind"] == "drift" and len(entry["reasons"]) == 2  # grouped: one alert
    again = actions.act(_result(), sink, triggers)
    assert again["alert"]["status"] == "duplicate" and again["retrain"]["status"] == "duplicate"
    assert len(sink.entries()) == 1 and len(triggers.entries()) == 1
    calm = actions.act(_result("e" * 64, "none"), sink, triggers)
    assert calm["alert"] is None and calm["retrain"]["status"] == "not needed"
    off = actions.act(_result("f" * 64), sink, triggers, retrain_enabled=False)
    assert off["retrain"]["status"] == "disabled" and len(triggers.entries()) == 1
    triggers.update("d" * 64, status="succeeded", registered="3")
    assert triggers.entries()[0]["status"] == "succeeded"


def test_an_alert_the_webhook_missed_goes_out_with_the_next_quiet_run(tmp_path):
    """The webhook is down when the drift alert is sent: it waits as pending; the next run
    decides `none` (no alert of its own) and still delivers it, once."""
    import socket

    from tests.support.webhook import Receiver

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    triggers = actions.TriggerStore(str(tmp_path / "triggers"))
    down = AlertSink(tmp_path / "logs", f"http://127.0.0.1:{port}/h", retries=0)
    first = actions.act(_result(), down, triggers)
    assert first["alert"]["webhook"]["status"] == "pending"
    with Receiver(port=port, path="/h") as receiver:
        up = AlertSink(tmp_path / "logs", receiver.url, retries=0)
        calm = actions.act(_result("e" * 64, "none"), up, triggers)
        again = actions.act(_result("e" * 64, "none"), up, triggers)
    assert calm["alert"] is None and calm["resent"][0]["webhook"]["status"] == "delivered"
    assert again["resent"] == [] and len(receiver.bodies) == 1
    assert "drift" in receiver.bodies[0]["text"]


def test_retraining_window_ends_at_the_batch_and_tests_on_it(settings):
    out = actions.retrain_overrides(settings, 2017, "/data/x.parquet")
    assert out["data_ingestion.window"] == {"start": 2015, "end": 2017}
    assert out["feature_engineering.split.train_window"] == [2015, 2016]
    assert out["feature_engineering.split.test_window"] == [2017, 2017]
    assert out["data_ingestion.source_url"] == "/data/x.parquet"
    assert actions.retrain_overrides(settings, None) == {}


def test_retraining_window_is_capped_and_only_a_time_split_gets_one(settings):
    from components.common.config import override_settings

    capped = override_settings(settings, {"monitoring.retrain_window_years": 1})
    assert actions.retrain_overrides(capped, 2018)["data_ingestion.window"] == {
        "start": 2017,
        "end": 2018,
    }
    shuffled = override_settings(settings, {"feature_engineering.split.method": "random"})
    assert actions.retrain_overrides(shuffled, 2018, "/x.parquet") == {
        "data_ingestion.source_url": "/x.parquet"
    }


def test_labels_file_with_its_own_label_column_name(tmp_path):
    """Issue 18 item 4: a `label` column works when named; the error lists the columns found."""
    logged = pd.DataFrame({"request_id": ["a", "b"], "row": [0, 0], "AGEP": [30, 40]})
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["a", "b"], "label": [1, 0]}).to_csv(labels, index=False)
    joined = batch.attach_labels(logged, labels, "employed", column="label")
    assert joined["employed"].tolist() == [1, 0] and "label" not in joined.columns
    with pytest.raises(DataError) as err:
        batch.attach_labels(logged, labels, "employed")  # default: the schema's label name
    message = str(err.value)
    assert "lacks column(s) employed; it has: request_id, label" in message
    assert "--label-column" in message


def test_monitor_cli_refuses_a_labels_file_without_its_columns_before_running(tmp_path, capsys):
    """A user's mistake: exit 2 with the columns found, no run and no pipeline_failure alert."""
    from pipelines.cli import build_parser, main

    log = tmp_path / "requests.jsonl"
    log.write_text(_log_line(0, [{"AGEP": 30}]) + "\n")
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
