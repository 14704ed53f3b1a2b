"""A timestamp time column (schema `time: {kind: timestamp}`) with date windows: config errors,
the time split, the ingest window, the watermark round trip and validation's finding. The
integer-year path is covered by the existing tests of each stage."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from components.common.artifacts import read_dataset
from components.common.config import (
    DEFAULT_DATA_SCHEMA,
    DEFAULT_PIPELINE_CONFIG,
    ConfigError,
    load_settings,
)
from components.common.errors import DataError
from components.common.runtime_env import STATE_ENV
from components.common.splitting import split
from components.ingest.commit import commit
from components.ingest.ingest import NoNewData, run
from components.ingest.state import StateStore
from components.validate.checks import Contract, project_findings

TS = {"kind": "timestamp", "timezone": "UTC"}
DATES = {
    "monitoring.decision": {"on_drift": "alert", "on_decay": "alert"},
    "data_ingestion.window": {"start": "2013-01-01", "end": "2014-12-31"},
    "feature_engineering.split.train_window": ["2013-01-01", "2013-09-30"],
    "feature_engineering.split.test_window": ["2013-10-01", "2013-12-31"],
}


def _schema_file(tmp_path, time: dict | None = TS, column: str = "signup_date"):
    data = yaml.safe_load(DEFAULT_DATA_SCHEMA.read_text())
    data["time_column"] = column
    if time is not None:
        data["time"] = time
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _dated(full_data: pd.DataFrame, n: int = 730) -> pd.DataFrame:
    """Rows of the bundled data with an ISO date column: one row a day from 2013-01-01."""
    df = full_data.head(n).drop(columns=["year"]).reset_index(drop=True)
    days = pd.date_range("2013-01-01", periods=n, freq="D")
    df.insert(1, "signup_date", days.strftime("%Y-%m-%d"))
    return df


# ---------------------------------------------------------------- config


def test_date_windows_load_for_a_timestamp_column(tmp_path):
    settings = load_settings(schema_path=_schema_file(tmp_path), overrides=DATES)
    split_cfg = settings.pipeline.feature_engineering.split
    assert split_cfg.train_window == ("2013-01-01", "2013-09-30")
    assert settings.schema_.time.kind == "timestamp"


def test_yaml_dates_unquoted_become_iso_strings(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "feature_engineering:\n  split:\n"
        "    train_window: [2013-01-01, 2013-09-30]\n    test_window: [2013-10-01, 2013-12-31]\n"
        "data_ingestion:\n  window: {start: 2013-01-01, end: 2013-12-31}\n"
        "monitoring:\n  decision: {on_drift: alert, on_decay: alert}\n"
    )
    settings = load_settings(config, _schema_file(tmp_path))
    assert settings.pipeline.data_ingestion.window.end == "2013-12-31"


@pytest.mark.parametrize(
    ("time", "overrides", "message"),
    [
        (
            None,  # a number column (the default kind) given date windows
            DATES,
            "feature_engineering.split.train_window: window bound '2013-01-01': the time "
            "column is a number",
        ),
        (
            TS,  # a timestamp column given the bundled integer windows
            {},
            "feature_engineering.split.train_window: window bound 2015: the time column is a "
            "timestamp",
        ),
        (
            TS,
            {**DATES, "data_ingestion.window": {"start": 2013, "end": 2014}},
            "data_ingestion.window: window bound 2013: the time column is a timestamp",
        ),
        (
            TS,
            {**DATES, "monitoring.retrain_window_years": 2},
            "monitoring.retrain_window_years: not supported for a timestamp time column",
        ),
        (
            TS,
            {**DATES, "monitoring.decision": {"on_drift": "alert"}},  # on_decay: retrain
            "monitoring.decision.on_decay: automatic retraining needs a number time column",
        ),
    ],
)
def test_a_window_of_the_wrong_kind_is_a_one_line_error(tmp_path, time, overrides, message):
    with pytest.raises(ConfigError) as err:
        load_settings(schema_path=_schema_file(tmp_path, time), overrides=overrides)
    lines = str(err.value).splitlines()
    # one per problem, blaming the --set flag or the config file the value came from
    assert all(line.startswith((str(DEFAULT_PIPELINE_CONFIG), "--set ")) for line in lines)
    assert any(message in line for line in lines)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"feature_engineering.split.test_window": ["2013-09-30", "2013-12-31"]},
            "train_window and test_window overlap",  # the train end day covers 09-30 entirely
        ),
        (
            {"feature_engineering.split.train_window": ["2013-09-30", "2013-01-01"]},
            "train_window: start 2013-09-30 is after end 2013-01-01",
        ),
        (
            {"feature_engineering.split.train_window": ["2013-01-01", 2014]},
            "give two numbers or two dates",
        ),
        ({"data_ingestion.window": {"start": "2013-01-01", "end": "soon"}}, "'soon' is not"),
    ],
)
def test_bad_date_windows_are_config_errors(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(schema_path=_schema_file(tmp_path), overrides={**DATES, **overrides})


def test_unknown_timezone_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="time.timezone: unknown timezone 'Mars/Base'"):
        load_settings(schema_path=_schema_file(tmp_path, {**TS, "timezone": "Mars/Base"}))


# ---------------------------------------------------------------- split


def test_time_split_by_dates_on_iso_strings(full_data):
    df = _dated(full_data)
    cfg = {"method": "time", "train_window": ["2013-01-01", "2013-09-30"]}
    cfg["test_window"] = ["2013-10-01", "2013-12-31"]
    train, test = split(df, cfg, "employed", "signup_date", "features", TS)
    assert (len(train), len(test)) == (273, 92)  # 2013-09-30 is in train (whole end day)
    assert train.signup_date.max() == "2013-09-30" and test.signup_date.min() == "2013-10-01"
    with pytest.raises(DataError, match="the time column is a timestamp"):
        split(df, {**cfg, "train_window": [2013, 2013]}, "employed", "signup_date", "f", TS)
    with pytest.raises(DataError, match="the test split is empty .window 2020-01-01-2020-12-31"):
        split(
            df,
            {**cfg, "test_window": ["2020-01-01", "2020-12-31"]},
            "employed",
            "signup_date",
            "f",
            TS,
        )


# ---------------------------------------------------------------- ingest


def _ingest(tmp_path, src, name: str, **cfg) -> tuple[dict, pd.DataFrame]:
    out = tmp_path / f"{name}.parquet"
    meta = run(str(src), str(out), {"source_url": str(src), **cfg}, "signup_date", time_spec=TS)
    return meta, read_dataset(out)


def test_ingest_window_of_dates_on_iso_strings_and_aware_timestamps(tmp_path, full_data):
    df = _dated(full_data)
    src = tmp_path / "iso.csv"
    df.to_csv(src, index=False)
    window = {"start": "2013-03-01", "end": "2013-03-31"}
    meta, got = _ingest(tmp_path, src, "iso", window=window, batch_size=100)
    assert meta["rows"] == 31 and str(got.signup_date.tolist()[0]) == "2013-03-01"
    src = tmp_path / "iso.parquet"  # Parquet keeps them strings
    df.to_parquet(src)
    meta, got = _ingest(tmp_path, src, "iso-strings", window=window)
    assert meta["rows"] == 31 and got.signup_date.tolist()[0] == "2013-03-01"
    # the same dates as tz-aware Parquet timestamps at 23:30 New York = 04:30 UTC the next day
    aware = df.assign(
        signup_date=pd.to_datetime(df.signup_date)
        .dt.tz_localize("America/New_York")
        .add(pd.Timedelta(hours=23, minutes=30))
    )
    src = tmp_path / "aware.parquet"
    aware.to_parquet(src)
    meta, got = _ingest(tmp_path, src, "aware", window=window)
    assert meta["rows"] == 31  # 02-28 23:30 New York is 03-01 UTC; 03-31 23:30 is 04-01 UTC
    assert str(got.signup_date.min().date()) == "2013-02-28"
    with pytest.raises(DataError, match="no rows with signup_date in 2020-01-01-2020-12-31"):
        _ingest(tmp_path, src, "none", window={"start": "2020-01-01", "end": "2020-12-31"})


def test_timestamp_watermark_round_trips_through_the_json_state(tmp_path, full_data, monkeypatch):
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "state"))
    df = _dated(full_data, 40)
    # mixed offsets: lexical order of the strings is not time order
    df["signup_date"] = [f"2013-01-{d:02d}T01:00:00+02:00" for d in range(1, 21)] + [
        f"2013-01-{d:02d}T00:30:00Z" for d in range(1, 21)
    ]
    src = tmp_path / "src.parquet"  # strings (a CSV reader would parse them)
    df.head(30).to_parquet(src)  # 01-01..01-20 at +02:00, 01-01..01-10 Z
    inc = {"incremental": {"watermark_column": "signup_date"}}
    meta, got = _ingest(tmp_path, src, "r1", **inc)
    assert len(got) == 30
    assert meta["watermark"]["to"] == {"value": "2013-01-19T23:00:00+00:00", "type": "timestamp"}
    commit(meta)
    (record,) = StateStore(tmp_path / "state").watermarks().values()
    assert record["value"] == "2013-01-19T23:00:00+00:00"
    df.to_parquet(src)  # 01-11..01-20 Z added: only those after 01-19 23:00 UTC are new
    meta2, got2 = _ingest(tmp_path, src, "r2", **inc)
    assert got2.signup_date.tolist() == ["2013-01-20T00:30:00Z"]
    commit(meta2)
    with pytest.raises(NoNewData, match="signup_date > 2013-01-20T00:30:00\\+00:00"):
        _ingest(tmp_path, src, "r3", **inc)


# ---------------------------------------------------------------- validation


def test_an_unreadable_time_value_is_a_blocking_finding(tmp_path, full_data):
    schema = yaml.safe_load(_schema_file(tmp_path).read_text())
    contract = Contract.from_dict(schema)
    df = _dated(full_data)
    split_cfg = {"method": "time", "train_window": ["2013-01-01", "2013-09-30"]}
    split_cfg["test_window"] = ["2013-10-01", "2013-12-31"]
    windows, findings = project_findings(df, contract, split_cfg)
    assert [f for f in findings if f["feature"] == "signup_date"] == []
    assert len(windows["train"]) == 273
    df.loc[5, "signup_date"] = "31/12/2013"
    _, findings = project_findings(df, contract, split_cfg)
    (bad,) = [f for f in findings if f["check"] == "unparseable_time"]
    assert bad["kind"] == "blocking" and bad["feature"] == "signup_date"
    assert "1 value not readable as time.kind timestamp, e.g. '31/12/2013'" in bad["description"]
    # a number time column keeps its wrong_type finding (today's behaviour), no second one
    number = Contract.from_dict({**schema, "time": {"kind": "number"}})
    _, findings = project_findings(df, number, {"method": "random"})
    assert [f["check"] for f in findings if f["feature"] == "signup_date"] == ["wrong_type"]


def test_a_date_window_on_sql_is_applied_by_the_writer_not_pushed_down(tmp_path, full_data):
    """SQLite stores the ISO dates as text; the window is not put in the query (text comparison
    would decide there) and the writer keeps the right rows."""
    import sqlite3

    db = tmp_path / "signups.db"
    with sqlite3.connect(db) as conn:
        _dated(full_data, 60).to_sql("signups", conn, index=False)
    cfg = {
        "source_type": "sql",
        "source_url": f"sqlite:///{db}",
        "sql": {"table": "signups"},
        "window": {"start": "2013-01-10", "end": "2013-01-19"},
    }
    out = tmp_path / "sql.parquet"
    meta = run("", str(out), cfg, "signup_date", time_spec=TS)
    assert (meta["rows_read"], meta["rows"]) == (60, 10)
    assert read_dataset(out).signup_date.tolist()[-1] == "2013-01-19"


def test_time_aware_folds_see_a_timestamp_column_in_time_order(tmp_path, full_data, schema):
    """Features hands tune the time column as its UTC key: the lexsort tune does on the keys is
    time order even where the strings' offsets make text order wrong."""
    from components.common.artifacts import load_model
    from components.features.features import run as features_run
    from components.tune.tune import _order

    df = _dated(full_data, 400)
    # 01-02T00:30+02:00 (01-01 22:30 UTC) sorts after 01-01T23:00Z as text, before it in time
    df.loc[0, "signup_date"] = "2013-01-01T23:00:00Z"
    df.loc[1, "signup_date"] = "2013-01-02T00:30:00+02:00"
    src = tmp_path / "data.parquet"
    df.to_parquet(src)
    data_schema = {**schema.model_dump(mode="json"), "time_column": "signup_date", "time": TS}
    split_cfg = {"method": "time", "train_window": ["2013-01-01", "2013-09-30"]}
    split_cfg |= {"test_window": ["2013-10-01", "2013-12-31"], "seed": 1}
    cfg = {"split": split_cfg, "scaling_method": "none", "categorical_encoding": "native"}
    cfg |= {"feature_selection": "none", "max_features": None}
    outs = [str(tmp_path / n) for n in ("train.parquet", "test.parquet", "transformer")]
    features_run(str(src), data_schema, cfg, *outs)
    train = read_dataset(outs[0])
    keys = load_model(tmp_path / "transformer")[1]["keys"]
    first = train.iloc[_order(train, keys)[:2]]
    assert first.id.tolist() == [df.id[1], df.id[0]]  # 22:30 UTC before 23:00 UTC
    assert first.signup_date.iloc[0] == pd.Timestamp("2013-01-01 22:30", tz="UTC").value
