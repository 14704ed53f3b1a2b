"""Unit tests of components/monitor/batch.py: reading batch files and (rotated) request logs,
joining late labels, and the content digest that identifies a batch."""

from __future__ import annotations

import pandas as pd
import pytest

from components.common.errors import DataError
from components.monitor import batch
from tests.components.monitor.conftest import log_line


def test_request_log_rows_failed_and_unreadable_lines(tmp_path):
    log = tmp_path / "requests.jsonl"
    log.write_text(
        "\n".join(
            [
                log_line(0, [{"AGEP": 30, "SEX": 1}, {"AGEP": 40, "SEX": 2}]),
                log_line(1, [{"AGEP": 50, "SEX": 1}], status=500),
                "{not json",
                log_line(2, [{"AGEP": 60, "SEX": 2}], status="ok"),
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
    empty.write_text(log_line(0, [{"AGEP": 1}], status=503) + "\n")
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
