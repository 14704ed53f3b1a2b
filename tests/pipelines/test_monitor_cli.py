"""`mlpipe monitor --every`: each interval assesses only batches it has not assessed yet."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from pipelines import monitor_cli, monitoring_run
from pipelines.cli import main


def test_every_skips_assessed_batches_and_assesses_new_ones(tmp_path, monkeypatch, capsys):
    assessed: list[str] = []

    def fake_run(settings, file, *args, **kwargs):  # a test double of the monitoring run
        name = file.rsplit("/", 1)[-1]
        assessed.append(name)
        return SimpleNamespace(ok=assessed.count("bad.parquet") > 1 or name != "bad.parquet")

    def write(name: str, age: int) -> None:
        pd.DataFrame({"AGEP": [age]}).to_parquet(tmp_path / name)

    monkeypatch.setattr(monitoring_run, "run_monitoring_local", fake_run)
    monkeypatch.setattr(monitoring_run, "format_monitoring_summary", lambda run: "summary")
    write("a.parquet", 30)
    write("bad.parquet", 40)  # its first check fails: tried again next interval
    between = iter(
        [
            lambda: (write("b.parquet", 50), write("a.parquet", 30)),  # new; same rows again
            lambda: None,  # nothing new
            lambda: write("a.parquet", 31),  # changed rows: a new batch
        ]
    )
    monkeypatch.setattr(monitor_cli.time, "sleep", lambda _s: next(between)())
    argv = ["monitor", "--batch", str(tmp_path / "*.parquet"), "--every", "1s"]
    assert main([*argv, "--iterations", "4", "--output-dir", str(tmp_path / "o")]) == 1
    assert assessed == ["a.parquet", "bad.parquet", "b.parquet", "bad.parquet", "a.parquet"]
    out = capsys.readouterr().out
    assert out.count("mlpipe: no new batch (3 already assessed)") == 1  # interval 3 only
