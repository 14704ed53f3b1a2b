"""`mlpipe simulate` on a sample: the champion serves, each year's traffic is monitored through
the request log, the shifted year is detected and retrained on, and the timeline is printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from components.common.alerts import AlertSink
from components.common.config import REPO_ROOT
from components.monitor.actions import TriggerStore
from pipelines.simulate import ROWS_PER_REQUEST
from tests.conftest import needs_tfdv

pytestmark = [pytest.mark.integration, pytest.mark.tfdv, needs_tfdv()]


def test_sampled_simulation_detects_the_shift_and_retrains_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",)}
    env.pop("MLPIPE_ALERT_WEBHOOK", None)
    cmd = [sys.executable, "-m", "pipelines.cli", "simulate", "--sample", "1200"]
    cmd += ["--years", "2016", "2017", "--shift", "2017", "--output-dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("batch "))
    rows = lines[head + 1 : head + 3]
    assert rows[0].startswith("2016 clean") and " none " in rows[0]
    assert rows[1].startswith("2017 shifted") and " retrain " in rows[1]
    assert "AGEP" in rows[1] or "MAR" in rows[1]  # the shifted features lead the drift
    # where the time went: one line, every phase this run went through
    phases = next(line for line in lines if line.startswith("simulate: time by phase: "))
    for name in ("first champion", "traffic", "monitoring", "retraining"):
        assert f" {name} " in phases, phases
    # exactly one alert (the shifted year) and one retraining trigger
    alerts = AlertSink(tmp_path / "logs").entries()
    assert [a["kind"] for a in alerts if a["incident"].startswith("monitor:")] == ["drift"]
    triggers = TriggerStore(str(tmp_path / "state" / "monitor" / "retrain_triggers")).entries()
    assert len(triggers) == 1
    # the request logs hold the served traffic (one line per request)
    served = (tmp_path / "data" / "requests-2016.jsonl").read_text().splitlines()
    assert len(served) == -(-1200 // ROWS_PER_REQUEST) and json.loads(served[0])["status"] == 200
