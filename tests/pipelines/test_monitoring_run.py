"""The monitoring pipeline under kfp.local on samples of the bundled data, against a champion
trained here: a clean batch changes nothing; a shifted batch raises exactly one alert (received
by a real webhook server on 127.0.0.1) and starts exactly one retraining run, and re-running it
stays quiet; flipped labels trigger retraining without feature drift; a failing webhook does not
fail the run. One output folder and registry for the module; the clean batch is monitored by a
module fixture before any test can move the champion, so each test passes alone or in any order."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from components.common.alerts import AlertSink
from components.common.config import override_settings
from components.common.mlflow_utils import default_tracking_uri
from components.monitor.actions import TriggerStore
from components.monitor.shift import flip_labels, shift_batch
from pipelines.local_run import run_local
from pipelines.monitoring_run import run_monitoring_local
from tests.conftest import needs_tfdv
from tests.support.mlflow_env import use_tracking_uri
from tests.support.webhook import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]

FAST = {
    "model_training.algorithms": ["lightgbm"],
    "model_training.hyperparameter_tuning": False,
    "model_training.params.lightgbm": {"n_estimators": 150},
    "evaluation.explain.enabled": False,
    # the deploy stage swaps servers without analysis windows; latency is not the point here
    "deployment.rollout.strategy": "direct",
    "deployment.infra_validation.p99_budget_ms": 5000,
}


@pytest.fixture(scope="module")
def work(tmp_path_factory, full_data, settings):
    root = tmp_path_factory.mktemp("monitoring")
    sample = pd.concat(
        [full_data[full_data.year == y].sample(2500, random_state=y) for y in (2015, 2016)],
        ignore_index=True,
    )
    source = root / "history.parquet"
    sample.to_parquet(source)
    fresh = full_data[(full_data.year == 2017)].sample(2500, random_state=7)
    batches = {
        "clean": fresh,
        "shifted": shift_batch(fresh, seed=1),
        "flipped": flip_labels(fresh, "employed", 0.3, seed=2),
    }
    for name, df in batches.items():
        df.to_parquet(root / f"{name}.parquet")
    out = root / "outputs"
    s = override_settings(settings, {**FAST, "data_ingestion.source_url": str(source)})
    # the module's store and state for every test; all of it (MLflow's global URI too) is put
    # back at the module's end
    with pytest.MonkeyPatch.context() as patch:
        use_tracking_uri(patch, default_tracking_uri(out / "mlflow"))
        patch.setenv("MLPIPE_STATE_DIR", str(out / "state"))
        champion = run_local(s, out)
        assert champion.ok and champion.deployment["outcome"] == "promoted", champion.error
        yield {"root": root, "out": out, "settings": s}


@pytest.fixture(scope="module", autouse=True)
def clean_batch(work) -> dict:
    """The clean batch monitored against the champion `work` trained, before any test retrains
    (a champion retrained on the shifted batch would see the clean one differently): what the
    clean test checks, whichever tests run and in whatever order."""
    with Receiver() as receiver:
        sink = AlertSink(work["out"] / "logs", receiver.url)
        run = monitor(work, "clean", sink)
    triggers = TriggerStore(str(work["out"] / "state" / "monitor" / "retrain_triggers"))
    return {"run": run, "alerts": list(receiver.bodies), "triggers": triggers.entries()}


def versions(work) -> list[str]:
    client = mlflow.MlflowClient(default_tracking_uri(work["out"] / "mlflow"))
    return sorted(v.version for v in client.search_model_versions("name = 'acs-employment'"))


def monitor(work, name: str, sink: AlertSink, retrain: bool = True):
    run = run_monitoring_local(
        work["settings"],
        str(work["root"] / f"{name}.parquet"),
        "batch",
        "",
        work["out"],
        retrain=retrain,
        sink=sink,
    )
    assert run.ok, f"{run.failed_stage}: {run.error}"
    return run


def test_a_clean_batch_raises_nothing(work, clean_batch):
    run = clean_batch["run"]
    assert run.decision == "none", run.result["decision"]
    assert run.result["decision"]["drifted"] == []
    assert run.result["decay"]["roc_auc"] > 0.85  # labels present: decay measured
    assert clean_batch["alerts"] == [] and run.actions["alert"] is None
    assert run.actions["retrain"]["status"] == "not needed" and run.retrain is None
    assert clean_batch["triggers"] == []
    page = Path(run.report).read_text()
    assert page.count("<figure data-plot='drift-") == 16
    run_tags = mlflow.MlflowClient(default_tracking_uri(work["out"] / "mlflow")).get_run(
        run.mlflow_run_id
    )
    assert run_tags.data.tags["mlpipe.decision"] == "none"
    assert "task.batch_statistics.peak_rss_mb" in run_tags.data.metrics


def test_a_shifted_batch_alerts_once_and_retrains_once(work):
    before = versions(work)
    with Receiver() as receiver:
        sink = AlertSink(work["out"] / "logs", receiver.url)
        run = monitor(work, "shifted", sink)
        assert run.decision == "retrain"
        assert {"AGEP", "MAR"} <= set(run.result["decision"]["drifted"])
        assert len(receiver.bodies) == 1  # one alert for every drifted feature
        text = json.dumps(receiver.bodies[0])
        assert "AGEP" in text and "MAR" in text and receiver.bodies[0]["blocks"]
        assert run.actions["retrain"]["status"] == "claimed"
        assert run.retrain is not None and run.retrain.ok, run.retrain and run.retrain.error
        assert run.retrain.gate is not None  # the gate decided about the retrained model
        triggers = TriggerStore(str(work["out"] / "state" / "monitor" / "retrain_triggers"))
        (trigger,) = triggers.entries()
        assert trigger["status"] == "succeeded" and trigger["newest"] == 2017
        after_first = versions(work)
        # the same batch again: no second alert, no second retraining run
        again = monitor(work, "shifted", sink)
        assert again.actions["retrain"]["status"] == "duplicate" and again.retrain is None
        assert again.actions["alert"]["status"] == "duplicate"
        assert len(receiver.bodies) == 1 and len(triggers.entries()) == 1
    assert versions(work) == after_first
    # the retrained model became a version only if the gate passed it
    assert len(after_first) == len(before) + (1 if run.retrain.gate_passed else 0)


def test_label_shift_triggers_retraining_without_feature_drift(work):
    with Receiver([500, 500, 500, 500]) as receiver:  # and the webhook is failing
        # its own alert log: the alert it leaves pending would be resent by the next test's
        # run into that test's webhook (the shifted-batch test then saw two alerts)
        logs = work["out"] / "logs-failing-webhook"
        sink = AlertSink(logs, receiver.url, retries=1, backoff_s=0.01)
        run = monitor(work, "flipped", sink, retrain=False)
    assert run.result["decision"]["drifted"] == []
    assert run.result["decay"]["decayed"] and run.decision == "retrain"
    assert run.result["decision"]["kinds"] == ["performance_decay"]
    assert run.actions["alert"]["webhook"]["status"] == "pending"  # retried; resent next time
    assert len(receiver.bodies) == 2 and run.ok  # the failing webhook did not fail the run
    assert run.actions["retrain"]["status"] == "disabled"
