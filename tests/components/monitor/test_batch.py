"""Unit tests of components/monitor/batch.py: reading batch files and (rotated) request logs,
joining late labels, and the content digest that identifies a batch."""

from __future__ import annotations

import json

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


ROWS = pd.DataFrame({"AGEP": [30, 40, 50], "SEX": [1, 2, 1]})


@pytest.mark.parametrize("name", ["b.csv", "b.TXT", "b.jsonl", "b.ndjson", "b.json", "b.parquet"])
def test_read_table_picks_the_reader_by_extension(tmp_path, name):
    path = tmp_path / name
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        ROWS.to_csv(path, index=False)
    elif suffix == ".parquet":
        ROWS.to_parquet(path)
    else:
        ROWS.to_json(path, orient="records", lines=True)
    pd.testing.assert_frame_equal(batch.read_table(path), ROWS)
    pd.testing.assert_frame_equal(batch.read_table(str(path)), ROWS)  # a path as text


def test_read_table_reads_another_extension_as_parquet(tmp_path):
    ROWS.to_parquet(tmp_path / "batch.data")
    pd.testing.assert_frame_equal(batch.read_table(tmp_path / "batch.data"), ROWS)


def test_read_table_uses_the_delimiter_and_names_the_one_the_file_uses(tmp_path):
    path = tmp_path / "b.csv"
    ROWS.to_csv(path, index=False, sep=";")
    pd.testing.assert_frame_equal(batch.read_table(path, delimiter=";"), ROWS)
    with pytest.raises(
        DataError, match="1 column with delimiter ','; did you mean delimiter ';'"
    ) as err:
        batch.read_table(path)
    assert err.value.subject == str(path)
    # one real column: nothing to hint at, read as it is
    (tmp_path / "one.csv").write_text("AGEP\n30\n40\n")
    assert batch.read_table(tmp_path / "one.csv")["AGEP"].tolist() == [30, 40]


def test_read_table_failures_name_the_file(tmp_path):
    for name in ("gone.csv", "gone.parquet", "gone.jsonl"):
        with pytest.raises(DataError, match=f"batch file .*{name} does not exist"):
            batch.read_table(tmp_path / name)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"cannot read .*empty\.csv"):
        batch.read_table(tmp_path / "empty.csv")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"cannot read .*bad\.jsonl"):
        batch.read_table(tmp_path / "bad.jsonl")


def test_request_statuses_that_count_as_ok_and_as_failed(tmp_path):
    statuses = [None, 200, 399, "OK", "success", "Succeeded", 400, 503, "error", "500", True]
    log = tmp_path / "requests.jsonl"
    log.write_text("\n".join(log_line(i, [{"AGEP": i}], s) for i, s in enumerate(statuses)))
    df, counts = batch.read_request_log(log)
    assert counts == {"requests": 6, "failed": 5, "unreadable": 0}
    assert df["request_id"].tolist() == ["r0", "r1", "r2", "r3", "r4", "r5"]


def test_malformed_entries_and_rows_are_counted_unreadable(tmp_path):
    log = tmp_path / "requests.jsonl"
    entries = [
        json.dumps({"request_id": "a", "status": 200}),  # no inputs
        json.dumps({"request_id": "b", "inputs": {"AGEP": 1}}),  # not a list
        json.dumps(["a", "list"]),  # not an object
        "   ",  # blank: not a request at all
        json.dumps({"request_id": "c", "inputs": [{"AGEP": 5}, "junk", {"AGEP": 6}]}),
    ]
    log.write_text("\n".join(entries) + "\n")
    df, counts = batch.read_request_log(log)
    assert counts == {"requests": 1, "failed": 0, "unreadable": 4}
    # the bad row is skipped, the others keep their position in the request
    assert df["AGEP"].tolist() == [5, 6] and df["row"].tolist() == [0, 2]
    # no outputs logged: no prediction, no version or time either
    assert df["prediction"].isna().all() and df["model_version"].isna().all()


def test_fewer_outputs_than_inputs_leave_the_rest_without_prediction(tmp_path):
    log = tmp_path / "requests.jsonl"
    entry = {"request_id": "a", "inputs": [{"AGEP": 1}, {"AGEP": 2}], "outputs": [0.25]}
    log.write_text(json.dumps(entry) + "\n")
    df, _ = batch.read_request_log(log)
    assert df["prediction"].tolist()[0] == 0.25 and pd.isna(df["prediction"].iloc[1])


def test_a_rotated_request_log_is_read_oldest_first(tmp_path):
    log = tmp_path / "requests.jsonl"
    (tmp_path / "requests.jsonl.2").write_text(log_line(0, [{"AGEP": 20}]) + "\n")
    (tmp_path / "requests.jsonl.1").write_text(log_line(1, [{"AGEP": 21}]) + "\n")
    log.write_text(log_line(2, [{"AGEP": 22}]) + "\n")
    (tmp_path / "requests.jsonl.bak").write_text(log_line(3, [{"AGEP": 99}]) + "\n")
    df, counts = batch.read_request_log(log)
    assert df["AGEP"].tolist() == [20, 21, 22] and counts["requests"] == 3
    log.unlink()  # the current file rotated away: the older files are still read
    assert batch.read_request_log(log)[0]["AGEP"].tolist() == [20, 21]


def test_read_labels_replaces_a_column_named_like_the_label_by_the_named_one(tmp_path):
    path = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["a"], "employed": [9], "truth": [1]}).to_csv(path, index=False)
    out = batch.read_labels(path, "employed", column="truth")
    assert out.columns.tolist() == ["request_id", "employed"] and out["employed"].tolist() == [1]
    same = batch.read_labels(path, "employed")
    assert same.columns.tolist() == ["request_id", "employed", "truth"]
    pd.DataFrame({"employed": [1]}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        batch.read_labels(path, "employed")
    assert "lacks column(s) request_id; it has: employed" in str(err.value)
    assert "--label-column" not in str(err.value)  # the label column is there
    assert err.value.subject == "employed"


def test_attach_labels_first_label_wins_and_a_logged_label_is_replaced(tmp_path):
    logged = pd.DataFrame(
        {"request_id": ["a", "a", "b"], "row": [0, 1, 0], "employed": [7, 7, 7], "AGEP": [1, 2, 3]}
    )
    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {"request_id": ["a", "a", "b", "zz"], "row": [1, 1, 0, 0], "employed": [1, 0, 0, 1]}
    ).to_csv(labels, index=False)
    joined = batch.attach_labels(logged, labels, "employed")
    assert len(joined) == 3 and joined["AGEP"].tolist() == [1, 2, 3]  # no row added or lost
    assert pd.isna(joined["employed"].iloc[0]) and joined["employed"].tolist()[1:] == [1, 0]


def test_rows_digest_is_content_and_column_names_not_index_or_file():
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert batch.rows_digest(df) == batch.rows_digest(df.set_axis([10, 11]))
    assert len(batch.rows_digest(df)) == 64
    others = [
        df.rename(columns={"b": "c"}),
        df[["b", "a"]],
        df.iloc[::-1].reset_index(drop=True),  # row order counts
        df.assign(a=[1, 3]),
        df.head(1),
    ]
    assert len({batch.rows_digest(df), *map(batch.rows_digest, others)}) == 6
    empty = pd.DataFrame({"a": []})
    assert batch.rows_digest(empty) == batch.rows_digest(pd.DataFrame({"a": []}))
    assert batch.rows_digest(empty) != batch.rows_digest(pd.DataFrame({"b": []}))
