import pandas as pd
import pytest

from components.common.artifacts import read_dataset, sha256_file
from components.common.config import IngestionConfig
from components.common.errors import DataError
from components.ingest.ingest import _location, run, source_digest

INGESTION = {"source_type": "file", "batch_size": 1000, "window": {"start": 2015, "end": 2016}}


def test_parquet_window_and_metadata(tmp_path, full_data):
    src = tmp_path / "src.parquet"
    full_data.sample(5000, random_state=1).to_parquet(src)
    out = tmp_path / "out.parquet"
    meta = run(str(src), str(out), INGESTION, "year", digest="abc")
    df = read_dataset(out)
    assert set(df.year.unique()) <= {2015, 2016}
    assert meta["rows"] == len(df) and meta["rows_read"] == 5000
    assert meta["sha256"] == sha256_file(out)
    assert meta["columns"] == list(full_data.columns)
    assert meta["source_digest"] == "abc"


def test_csv_glob_in_chunks(tmp_path, sample_data):
    for i, part in enumerate((sample_data[:1500], sample_data[1500:])):
        part.to_csv(tmp_path / f"part{i}.csv", index=False)
    out = tmp_path / "out.parquet"
    meta = run(str(tmp_path / "part*.csv"), str(out), INGESTION, "year")
    assert meta["rows"] == len(sample_data)
    pd.testing.assert_frame_equal(read_dataset(out), sample_data, check_dtype=False)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.write_bytes(b"PAR1 this is not parquet"), "unreadable parquet"),
    ],
)
def test_unusable_files(tmp_path, setup, message):
    src = tmp_path / "data.parquet"
    setup(src)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=message):
        run(str(src), str(out), INGESTION, "year")
    assert not out.exists()  # nothing half-written


def test_no_match_and_bad_extension(tmp_path):
    with pytest.raises(DataError, match="no file matches"):
        run(str(tmp_path / "*.parquet"), str(tmp_path / "o.parquet"), INGESTION, "year")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        run(str(tmp_path / "data.xlsx"), str(tmp_path / "o.parquet"), INGESTION, "year")


def test_header_only_csv_is_empty(tmp_path, sample_data):
    src = tmp_path / "data.csv"
    sample_data.head(0).to_csv(src, index=False)
    with pytest.raises(DataError, match="no rows"):
        run(str(src), str(tmp_path / "o.parquet"), INGESTION, "year")


def test_window_needs_time_column_and_rows(tmp_path, sample_data):
    src = tmp_path / "d.parquet"
    sample_data.drop(columns="year").to_parquet(src)
    with pytest.raises(DataError, match="'year' is missing") as err:
        run(str(src), str(tmp_path / "o.parquet"), INGESTION, "year")
    assert err.value.subject == "year"
    sample_data.to_parquet(src)
    later = {**INGESTION, "window": {"start": 2030, "end": 2031}}
    with pytest.raises(DataError, match="no rows with year in 2030-2031"):
        run(str(src), str(tmp_path / "o.parquet"), later, "year")


def test_source_digest_follows_content(tmp_path, sample_data):
    src = tmp_path / "d.parquet"
    sample_data.to_parquet(src)
    first = source_digest(str(src))
    assert source_digest(str(src)) == first
    sample_data.head(100).to_parquet(src)
    assert source_digest(str(src)) != first


def test_the_source_parameter_overrides_a_url_source():
    """`--param source=...` must reach a url source too (it is what a cluster run changes)."""
    cfg = IngestionConfig(source_type="url", source_url="s3://bucket/configured.parquet")
    assert _location(cfg, "s3://bucket/given.parquet") == "s3://bucket/given.parquet"
    assert _location(cfg, "") == "s3://bucket/configured.parquet"


def test_a_relative_file_source_is_refused_in_cluster_mode(monkeypatch):
    monkeypatch.setenv("MLPIPE_CLUSTER", "1")
    cfg = IngestionConfig()  # data/acs_employment_ma_2015_2018.parquet
    with pytest.raises(DataError, match="relative to the repository.*object store"):
        _location(cfg, "")
    assert _location(cfg, "/mnt/data/x.parquet") == "/mnt/data/x.parquet"  # a mounted volume
    monkeypatch.setenv("MLPIPE_CLUSTER", "0")
    assert _location(cfg, "").endswith("/data/acs_employment_ma_2015_2018.parquet")
