"""Faults take effect only with the explicit switch (`--allow-faults` / MLPIPE_ALLOW_FAULTS=1);
without it a configured fault is refused at startup, by both CLIs. (The switch itself:
test_faults.py.)"""

from __future__ import annotations

import pytest

from components.serve.__main__ import main as serve_main
from components.serve.faults import ALLOW_ENV, FAULT_ENV
from pipelines.cli import main as mlpipe


@pytest.fixture(autouse=True)
def no_switch(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    monkeypatch.delenv(FAULT_ENV, raising=False)


def test_both_clis_refuse_a_fault_at_startup(capsys, tmp_path):
    args = ["--model-dir", str(tmp_path), "--model-name", "m", "--fault", "invert"]
    assert serve_main(args) == 2
    assert "--allow-faults" in capsys.readouterr().err
    assert mlpipe(["serve", "--model", str(tmp_path), "--fault", "invert"]) == 2
    assert "--allow-faults" in capsys.readouterr().err
