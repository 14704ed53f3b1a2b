"""`mlpipe schema infer` through the CLI's entry point: CSV and Parquet, files and folders, the
draft written with -o and loadable, one-line refusals on stderr."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.common.config import load_data_schema
from components.common.tfdv_env import TFDV_PYTHON_ENV
from pipelines.cli import main
from tests.conftest import TFDV_PYTHON, needs_tfdv


@pytest.fixture()
def csv_dir(tmp_path):
    """Two CSV files of one table (a folder as ingest would read it) and a note that is no data."""
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "year": np.repeat([2020, 2021, 2022], n // 3),
            "tier": rng.choice([1, 2, 3], n),
            "score": rng.normal(0, 1, n),
            "colour": rng.choice(["red", "blue"], n),
            "note": [f"n{i}" for i in range(n)],
            "label": rng.choice([0, 1], n),
        }
    )
    folder = tmp_path / "data"
    folder.mkdir()
    df.iloc[:150].to_csv(folder / "part-1.csv", index=False)
    df.iloc[150:].to_csv(folder / "part-2.csv", index=False)
    (folder / "README.txt").write_text("not data")
    return folder


def _infer(*args: str) -> int:
    return main(["schema", "infer", *args])


@pytest.mark.tfdv
@needs_tfdv()
def test_infer_a_csv_folder_writes_a_draft_that_loads(csv_dir, tmp_path, capsys):
    out = tmp_path / "conf" / "data_schema.yaml"
    args = ["--label", "label", "--time-column", "year", "--id-column", "id"]
    assert _infer(str(csv_dir), *args, "-o", str(out), "--tfdv-python", str(TFDV_PYTHON)) == 0
    printed = capsys.readouterr()
    assert f"wrote {out}: 300 rows, 7 columns; 3 features drafted, 1 not drafted" in printed.out
    assert "not drafted: note: string values (300 distinct, e.g. 'n0', 'n1'," in printed.out
    assert "statistics and inferred schema of 300 rows" in printed.err  # TFDV's job ran
    schema = load_data_schema(out)
    assert schema.categorical == ["tier", "colour"] and schema.numeric == ["score"]
    assert schema.features["colour"].values == ["blue", "red"]
    assert schema.features["tier"].codes() == [1, 2, 3]
    assert (schema.id_column, schema.time_column) == ("id", "year")
    text = out.read_text()
    assert "; TFDV: INT, 0 missing" in text and "; TFDV: FLOAT, 0 missing" in text
    assert "# note: not drafted: string values (300 distinct" in text

    # an existing file is kept unless --force
    assert _infer(str(csv_dir), *args, "-o", str(out), "--no-tfdv") == 1
    err = capsys.readouterr().err
    assert err == f"mlpipe schema infer: {out} exists (use --force to replace it)\n"
    assert _infer(str(csv_dir), *args, "-o", str(out), "--no-tfdv", "--force") == 0
    assert "no TFDV (--no-tfdv)" in out.read_text()


def test_infer_prints_the_draft_without_output_file(tmp_path, capsys):
    data = tmp_path / "d.parquet"
    pd.DataFrame({"x": np.arange(200) * 0.5, "y": [0, 1] * 100}).to_parquet(data)
    assert _infer(str(data), "--label", "y", "--no-tfdv") == 0
    out = capsys.readouterr().out
    assert out.startswith("# DRAFT data schema")
    assert "  x: {kind: numeric, dtype: float, min: 0.0, max: 110.0}" in out


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, ["--label", "y"], "file not found:"),
        (b"not parquet", ["--label", "y"], "unreadable parquet file"),
        (b"x,y\n1,0\n2,1\n3,2\n", ["--label", "y"], "label 'y' is not binary: 3 distinct"),
        (b"x,y\n1,0\n2,1\n", ["--label", "z"], "label column 'z' not found"),
    ],
)
def test_bad_inputs_are_refused_in_one_line(content, args, message, tmp_path, capsys):
    data = tmp_path / ("d.csv" if content and content.startswith(b"x,") else "d.parquet")
    if content is not None:
        data.write_bytes(content)
    assert _infer(str(data), *args, "--no-tfdv", "-o", str(tmp_path / "s.yaml")) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlpipe schema infer: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "s.yaml").exists()


def test_a_folder_of_clashing_files_and_a_missing_tfdv_env_are_refused(
    tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "parts"
    folder.mkdir()
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_parquet(folder / "a.parquet")
    pd.DataFrame({"x": ["a", "b"], "y": [0, 1]}).to_parquet(folder / "b.parquet")
    assert _infer(str(folder), "--label", "y", "--no-tfdv") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mlpipe schema infer: {folder}: the files do not fit together: ")

    data = folder / "a.parquet"
    monkeypatch.setenv(TFDV_PYTHON_ENV, str(tmp_path / "no-python"))
    assert _infer(str(data), "--label", "y") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mlpipe schema infer: {TFDV_PYTHON_ENV}=")
    assert err.endswith("(or draft without TFDV: --no-tfdv)\n") and err.count("\n") == 1


@pytest.mark.parametrize("dates", [True, False])
def test_a_timestamp_draft_says_the_windows_must_be_dates(csv_dir, tmp_path, capsys, dates):
    data = tmp_path / "dated.csv"
    df = pd.concat([pd.read_csv(p) for p in sorted(csv_dir.glob("*.csv"))], ignore_index=True)
    if dates:
        df["year"] = df["year"].astype(str) + "-06-30"  # ISO dates: a timestamp time column
    df.to_csv(data, index=False)
    out = tmp_path / "schema.yaml"
    args = ["--label", "label", "--time-column", "year", "--no-tfdv", "-o", str(out)]
    assert _infer(str(data), *args) == 0
    printed = capsys.readouterr().out
    assert (load_data_schema(out).time.kind == "timestamp") is dates
    assert ("with the time windows as ISO dates: data_ingestion.window" in printed) is dates
