"""`mlpipe schema infer`'s logic (components.validate.draft): a draft that loads through the
project's schema loader and passes validation on the data it was drafted from; kinds, domains and
comments on a dataset built here; one-line refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from components.common.config import load_data_schema
from components.validate import validate
from components.validate.checks import BLOCKING, Contract, project_findings
from components.validate.draft import DraftError, draft_schema, infer, render
from tests.conftest import DATA_FILE, TFDV_PYTHON, needs_tfdv

RANDOM_SPLIT = {"method": "random", "test_fraction": 0.25, "seed": 1}


def _blocking(df: pd.DataFrame, schema_path, split: dict) -> list[dict]:
    contract = Contract.from_dict(load_data_schema(schema_path).model_dump(mode="json"))
    _, findings = project_findings(contract.usable(df), contract, split)  # as the job does
    return [f for f in findings if f["kind"] == BLOCKING]


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    """Integer codes with a hole, floats with a few missing, an int count, a few texts (a
    category), free text, an id."""
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame(
        {
            "row_id": np.arange(n) + 1000,
            "grade": rng.choice([1, 2, 3, 5, 6], n),
            "flag": rng.choice([0, 1], n),
            "income": rng.normal(50_000, 12_000, n).round(2),
            "ratio": rng.uniform(-0.5, 0.9, n),
            "city": rng.choice(["Boston", "Lowell", "Salem"], n),
            "note": [f"note {i}" for i in range(n)],
            "visits": rng.integers(0, 300, n),
            "target": rng.choice([0, 1], n, p=[0.7, 0.3]),
        }
    )
    df.loc[:9, "ratio"] = np.nan
    return df


def test_synthetic_data_gets_kinds_domains_and_comments(synthetic):
    draft = draft_schema(synthetic, "target", id_column="row_id")
    text = render(draft, "synthetic.parquet")
    data = yaml.safe_load(text)
    features = data["features"]
    assert features["grade"] == {"kind": "categorical", "dtype": "int", "values": [1, 2, 3, 5, 6]}
    assert features["flag"] == {"kind": "categorical", "dtype": "int", "values": [0, 1]}
    assert features["visits"]["kind"] == "numeric" and features["visits"]["dtype"] == "int"
    # widened, and not below 0 for a column without negative values
    assert features["visits"]["min"] == 0 and features["visits"]["max"] > 299
    income, ratio = features["income"], features["ratio"]
    assert (income["kind"], income["dtype"]) == ("numeric", "float")
    assert income["min"] < synthetic.income.min() and income["max"] > synthetic.income.max()
    assert ratio["min"] < synthetic.ratio.min() < 0  # negative values: widened below them
    assert ratio["max_missing_fraction"] >= 10 / 400
    assert features["city"] == {
        "kind": "categorical",
        "dtype": "string",
        "values": ["Boston", "Lowell", "Salem"],
    }
    assert "note" not in features and "row_id" not in features and "target" not in features
    assert data["id_column"] == "row_id" and data["time_column"] is None
    label = data["label"]
    assert label["name"] == "target" and label["values"] == [0, 1]
    rate = synthetic.target.mean()
    assert label["min_positive_rate"] < rate < label["max_positive_rate"]
    assert text.startswith("# DRAFT data schema")
    assert "REVIEW IT" in text.splitlines()[0]
    assert "# guessed categorical: 5 distinct integer values; codes [4] not seen" in text
    assert "(not below 0: no negative value seen)" in text
    assert "# guessed categorical: 3 distinct text values (code = position in values" in text
    assert "# note: not drafted: string values (400 distinct, e.g. 'note 0', 'note 1'" in text
    assert "too many distinct values for a category (at most 25" in text
    assert "2.5% missing" in text


def test_synthetic_draft_loads_and_validates_its_own_data(synthetic, tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(render(draft_schema(synthetic, "target", id_column="row_id"), "x"))
    # the free text column is ignored (read and dropped), the few texts are a string feature:
    # the data passes as it is
    assert load_data_schema(path).columns.ignore == ["note"]
    assert load_data_schema(path).features["city"].dtype == "string"
    assert _blocking(synthetic, path, RANDOM_SPLIT) == []


def test_columns_the_schema_cannot_declare_are_listed_not_drafted(synthetic):
    df = synthetic.assign(
        member=synthetic.flag == 1,
        seen_at=pd.Timestamp("2024-01-01") + pd.to_timedelta(synthetic.visits, unit="D"),
        bad=np.where(synthetic.grade == 6, np.inf, synthetic.income),
    )
    draft = draft_schema(df, "target")
    assert set(draft.skipped) == {"note", "member", "seen_at", "bad"}
    assert draft.schema["columns"]["ignore"] == list(draft.skipped)
    text = render(draft, "x")
    assert "# member: not drafted: true/false values (re-encode them as 0/1" in text
    assert "# seen_at: not drafted: timestamp values" in text
    assert "# bad: not drafted: " in text and " infinite values (validation blocks them" in text
    # without --id-column the id is a numeric feature, and the comment says what it may be
    assert draft.schema["features"]["row_id"]["kind"] == "numeric"
    assert "every value distinct: an id? then --id-column row_id" in text


def test_what_validation_will_block_anyway_is_a_warning(synthetic):
    df = synthetic.astype({"target": "float64", "row_id": "float64"})
    df.loc[[3, 4], "target"] = np.nan
    df.loc[5, "row_id"] = np.nan
    draft = draft_schema(df, "target", id_column="row_id")
    assert draft.warnings == [
        "label column 'target' has 2 rows without a value: validation blocks them, drop those rows",
        "id column 'row_id' has 1 row without a value: validation blocks them, drop those rows",
    ]
    assert "# WARNING: label column 'target' has 2 rows" in render(draft, "x")


def test_floats_with_whole_values_and_gaps_stay_categorical_codes():
    # an integer column with missing values arrives as float64 from Parquet
    df = pd.DataFrame({"code": [1.0, 2.0, np.nan, 3.0] * 50, "y": [0, 1] * 100})
    spec = draft_schema(df, "y").schema["features"]["code"]
    assert spec == {
        "kind": "categorical",
        "dtype": "float",
        "values": {"min": 1, "max": 3},
        "max_missing_fraction": 0.38,
    }


@pytest.mark.parametrize(
    ("df", "kwargs", "message"),
    [
        (pd.DataFrame({"a": [1, 2]}), {"label": "y"}, "label column 'y' not found (columns: 'a')"),
        (
            pd.DataFrame({"a": [1, 2, 3], "y": [0, 1, 2]}),
            {"label": "y"},
            "label 'y' is not binary: 3 distinct values",
        ),
        (
            pd.DataFrame({"a": [1, 2, 3], "y": [0.0, 1.0, np.inf]}),
            {"label": "y"},
            "label 'y' is not binary: 3 distinct values (e.g. 0, 1, inf)",
        ),
        (
            pd.DataFrame({"a": [1, 2], "y": ["yes", "no"]}),
            {"label": "y"},
            "label 'y' holds text values (e.g. 'no', 'yes'): encode it as 0/1",
        ),
        (
            pd.DataFrame({"a": [1, 2], "y": [0, 1]}),
            {"label": "y", "time_column": "when"},
            "time column 'when' not found",
        ),
        (
            pd.DataFrame({"a": [1, 2], "t": ["2020-01-01", "01/02/2020"], "y": [0, 1]}),
            {"label": "y", "time_column": "t"},
            "time column 't': 1 value neither a number nor an ISO date/datetime, e.g. '01/02/2020'",
        ),
        (
            pd.DataFrame({"a": ["x", "z"], "y": [0, 1]}),
            {"label": "y"},
            "no column can be a feature: string values",
        ),
    ],
)
def test_bad_inputs_are_refused_in_one_line(df, kwargs, message):
    with pytest.raises(DraftError) as err:
        draft_schema(df, **kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("times", "zone"),
    [
        (pd.Series(pd.date_range("2013-01-01", periods=400, freq="D").strftime("%Y-%m-%d")), "UTC"),
        (pd.Series(pd.date_range("2013-01-01", periods=400, freq="D", tz="Europe/Paris")), None),
    ],
)
def test_a_date_or_timestamp_time_column_drafts_the_time_block(synthetic, tmp_path, times, zone):
    """ISO strings or a tz-aware timestamp column: `time: {kind: timestamp, ...}` in the YAML,
    and the draft validates with date windows."""
    df = synthetic.assign(signed=times.to_numpy())
    text = render(draft_schema(df, "target", "signed", "row_id"), "x.parquet")
    assert "time: {kind: timestamp, timezone: " in text
    path = tmp_path / "data_schema.yaml"
    path.write_text(text)
    schema = load_data_schema(path)
    assert (schema.time.kind, schema.time.timezone) == ("timestamp", zone or "Europe/Paris")
    split = {"method": "time", "train_window": ["2013-01-01", "2013-09-30"]}
    split["test_window"] = ["2013-10-01", "2014-02-04"]
    assert _blocking(df, path, split) == []
    # a number time column drafts no block (kind number is the default)
    numeric = render(draft_schema(synthetic, "target", "visits", "row_id"), "x.parquet")
    assert "\ntime:" not in numeric


@pytest.mark.tfdv
@needs_tfdv()
def test_bundled_data_draft_loads_and_passes_validation(full_data, settings, tmp_path):
    """The bundled dataset -> draft (with TFDV) -> the project's loader -> validate, TFDV
    included, on the same data: nothing blocking."""
    lines: list[str] = []
    _, text = infer(
        full_data,
        "employed",
        "year",
        "id",
        source=str(DATA_FILE),
        python=str(TFDV_PYTHON),
        log=lines.append,
    )
    assert any("statistics and inferred schema of 277,677 rows" in line for line in lines)
    assert "# kinds and domains: pandas; TFDV 1." in text
    assert "; TFDV: INT, 0 missing" in text
    path = tmp_path / "data_schema.yaml"
    path.write_text(text)
    schema = load_data_schema(path)
    assert schema.categorical[:3] == ["SCHL", "MAR", "RELP"]
    assert schema.numeric == ["AGEP"]
    assert (schema.id_column, schema.time_column, schema.label.name) == ("id", "year", "employed")
    split = settings.pipeline.feature_engineering.split.model_dump(mode="json")
    assert _blocking(full_data, path, split) == []
    meta = validate.run(
        str(DATA_FILE),
        schema.model_dump(mode="json", exclude_none=True),
        split,
        python=str(TFDV_PYTHON),
        log=lambda line: None,
        statistics_dir=str(tmp_path / "statistics"),
        schema_dir=str(tmp_path / "schema"),
        anomalies_dir=str(tmp_path / "anomalies"),
        report_path=str(tmp_path / "report.html"),
    )
    assert (meta["status"], meta["blocking"]) == ("passed", 0)
