"""Faults take effect only with the explicit switch (`--allow-faults` / MLPIPE_ALLOW_FAULTS=1);
without it a configured fault is refused at startup, by both CLIs."""

from __future__ import annotations

import pytest

from components.serve.__main__ import main as serve_main
from components.serve.faults import ALLOW_ENV, FAULT_ENV, FaultsNotAllowed, faults_from_env
from pipelines.cli import main as mlpipe


@pytest.fixture(autouse=True)
def no_switch(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.delenv(FAULT_ENV, raising=False)


def test_a_fault_without_the_switch_is_refused(monkeypatch):
    with pytest.raises(FaultsNotAllowed, match="--allow-faults"):
        faults_from_env(["invert"])
    monkeypatch.setenv(FAULT_ENV, "error:0.5")
    with pytest.raises(FaultsNotAllowed, match=ALLOW_ENV):
        faults_from_env()
    monkeypatch.setenv(ALLOW_ENV, "0")
    with pytest.raises(FaultsNotAllowed):
        faults_from_env()


def test_the_switch_lets_faults_through(monkeypatch):
    assert faults_from_env(["invert"], allow=True).invert
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert faults_from_env(["latency:5"]).latency_ms == 5
    assert not faults_from_env().active  # no fault configured: nothing to allow


def test_both_clis_refuse_a_fault_at_startup(capsys, tmp_path):
    args = ["--model-dir", str(tmp_path), "--model-name", "m", "--fault", "invert"]
    assert serve_main(args) == 2
    assert "--allow-faults" in capsys.readouterr().err
    assert mlpipe(["serve", "--model", str(tmp_path), "--fault", "invert"]) == 2
    assert "--allow-faults" in capsys.readouterr().err
