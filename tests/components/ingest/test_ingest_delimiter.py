"""CSV delimiters: `data_ingestion.delimiter` wherever CSV is read, and the hint for a file read
with the wrong one (it parses into one column of whole lines)."""

import pandas as pd
import pytest

from components.common.artifacts import read_dataset
from components.common.config import ConfigError, IngestionConfig, load_pipeline_config
from components.common.errors import DataError
from components.ingest.ingest import run
from components.monitor.batch import read_table

INGESTION = {"source_type": "file", "batch_size": 1000, "window": {"start": 2015, "end": 2016}}


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_csv_with_the_configured_delimiter(tmp_path, sample_data, delimiter):
    src = tmp_path / "data.csv"
    sample_data.to_csv(src, sep=delimiter, index=False)
    out = tmp_path / "out.parquet"
    meta = run(str(src), str(out), {**INGESTION, "delimiter": delimiter}, "year")
    assert meta["rows"] == len(sample_data)
    pd.testing.assert_frame_equal(read_dataset(out), sample_data, check_dtype=False)


@pytest.mark.parametrize(("written", "hint"), [(";", "';'"), ("\t", "'\\t'"), ("|", "'|'")])
def test_one_column_says_which_delimiter_was_meant(tmp_path, sample_data, written, hint):
    src = tmp_path / "data.csv"
    sample_data.to_csv(src, sep=written, index=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError) as err:
        run(str(src), str(out), INGESTION, "year")
    assert str(err.value) == (
        f"{src}: parsed into 1 column with delimiter ','; did you mean delimiter {hint}? "
        "(data_ingestion.delimiter)"
    )
    assert not out.exists()


def test_semicolon_read_as_comma_the_other_way_round(tmp_path, sample_data):
    src = tmp_path / "data.csv"
    sample_data.to_csv(src, index=False)
    with pytest.raises(DataError, match="did you mean delimiter ','"):
        run(str(src), str(tmp_path / "o.parquet"), {**INGESTION, "delimiter": ";"}, "year")


def test_decimal_commas_in_a_semicolon_file_get_the_hint_too(tmp_path):
    """The header parses into one column, a row with a decimal comma into two: a parse error."""
    src = tmp_path / "data.csv"
    src.write_text("year;AGEP;score\n2015;30;1,5\n2016;40;2,5\n")
    with pytest.raises(DataError) as err:
        run(str(src), str(tmp_path / "o.parquet"), INGESTION, "year")
    assert "unreadable csv file" in str(err.value)
    assert str(err.value).endswith("; did you mean delimiter ';'?")


def test_a_real_one_column_file_gets_no_hint(tmp_path):
    src = tmp_path / "data.csv"
    src.write_text("year\n2015\n2016\n")
    out = tmp_path / "o.parquet"
    run(str(src), str(out), INGESTION, "year")
    assert list(read_dataset(out).columns) == ["year"]


def test_the_monitor_batch_reader_uses_the_delimiter_and_hints(tmp_path, sample_data):
    src = tmp_path / "batch.csv"
    sample_data.head(50).to_csv(src, sep=";", index=False)
    df = read_table(src, ";")
    assert list(df.columns) == list(sample_data.columns) and len(df) == 50
    with pytest.raises(DataError, match=r"1 column with delimiter ','; did you mean delimiter ';'"):
        read_table(src)


@pytest.mark.parametrize(
    ("ingestion", "message"),
    [
        (
            {"delimiter": ";;"},
            "data_ingestion.delimiter: got ';;'; string should have at most 1 character",
        ),
        ({"delimiter": '"'}, "data_ingestion.delimiter: '\"' cannot separate fields"),
        (
            {"format": "parquet", "delimiter": ";"},
            "data_ingestion: delimiter applies to CSV files only, not parquet files",
        ),
    ],
)
def test_bad_delimiters_are_refused(ingestion, message):
    overrides = {f"data_ingestion.{k}": v for k, v in ingestion.items()}
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(overrides=overrides)
    assert message in str(err.value)


def test_delimiter_defaults_to_comma():
    assert IngestionConfig().delimiter == ","
