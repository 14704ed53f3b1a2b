"""Unit tests of components/validate/checks.py: the project's own data checks on plain pandas
(the schema's contract, each dataset- and window-level check, the split into windows, constant
features, roles and TFDV corroboration). No TFDV job: the stage's tests of that are in
test_validate.py."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from components.validate import checks
from components.validate.checks import Contract, project_findings
from tests.components.validate.conftest import PARTIAL_SCHEMA
from tests.fixtures.bad_data import CASES_BY_NAME, DEFAULT_SPLIT, constant_sex_in_train


def _kinds(findings: list[dict]) -> list[tuple]:
    return [(f["window"], f["feature"], f["check"], f["kind"], f.get("value")) for f in findings]


def _changed(schema_dict: dict, **changes) -> Contract:
    """The project's schema with some top-level sections changed (a deep copy)."""
    data = copy.deepcopy(schema_dict)
    for key, value in changes.items():
        data[key] = value
    return Contract.from_dict(data)


def _checks(findings: list[dict]) -> list[tuple]:
    return [(f["window"], f["feature"], f["check"]) for f in findings]


# ---------------------------------------------------------------- moved from test_validate.py


def test_clean_sample_has_no_project_finding(base, contract):
    windows, findings = project_findings(base, contract, DEFAULT_SPLIT)
    assert findings == []
    assert {k: len(v) for k, v in windows.items()} == {"train": 1000, "test": 1000}


def test_exact_code_set_catches_what_an_int_range_cannot(base, contract):
    """ANC declares [1, 2, 3, 4, 8]: TFDV's int_domain is 1..8, so 5 passes TFDV."""
    _, findings = project_findings(
        CASES_BY_NAME["anc_code_hole"].make(base), contract, DEFAULT_SPLIT
    )
    assert [(f["window"], f["feature"], f["check"]) for f in findings] == [
        ("test", "ANC", "unseen_code")
    ]


def test_max_missing_fraction_of_a_feature_overrides_the_default(base, schema_dict):
    relaxed = json.loads(json.dumps(schema_dict))
    relaxed["features"]["MAR"]["max_missing_fraction"] = 0.5
    df = CASES_BY_NAME["null_flood"].make(base)
    _, findings = project_findings(df, Contract.from_dict(relaxed), DEFAULT_SPLIT)
    assert findings == []


def test_duplicate_rows_are_measured_reported_then_blocking(base, contract, schema_dict):
    """People share profiles: a share is a finding only well above the natural one."""
    assert checks.duplicate_row_share(base, contract) < 0.15
    assert checks.duplicate_row_share(base.head(0), contract) == 0.0
    doubled = pd.concat([base] * 5, ignore_index=True)  # ~80 %: over 75, not over 90
    doubled["id"] = range(len(doubled))
    findings = checks.dataset_checks(doubled, contract)
    assert [(f["check"], f["kind"]) for f in findings] == [("duplicate_rows", "drift")]
    assert 0.75 < findings[0]["share"] < 0.9
    assert "reported above 75.0%" in findings[0]["description"]
    stricter = json.loads(json.dumps(schema_dict))
    stricter["checks"]["max_duplicate_row_fraction"] = 0.5
    strict = Contract.from_dict(stricter)
    findings = checks.dataset_checks(doubled, strict)
    assert [(f["check"], f["kind"]) for f in findings] == [("duplicate_rows", "blocking")]


def test_duplicate_row_share_is_hashed_in_slices_in_bounded_memory(full_data, contract):
    """The share is the same whatever the slice (duplicates across slice borders count) and the
    peak allocation stays well under the table's size (hashing it whole: ~1.2x)."""
    import tracemalloc

    doubled = pd.concat([full_data] * 2, ignore_index=True)
    table_bytes = doubled.memory_usage(index=False).sum()
    whole = checks.duplicate_row_share(doubled, contract, chunk_rows=len(doubled))
    assert 0.75 < whole < 0.8  # the bundled data's ~54 %, then every row once more
    assert checks.duplicate_row_share(doubled.head(2000), contract, chunk_rows=7) == (
        checks.duplicate_row_share(doubled.head(2000), contract)
    )
    tracemalloc.start()
    try:
        sliced = checks.duplicate_row_share(doubled, contract, chunk_rows=50_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sliced == whole
    assert peak < 0.5 * table_bytes


def test_contract_without_features_checks_only_what_it_knows(base):
    contract = Contract.from_dict(PARTIAL_SCHEMA)
    assert not contract.declared
    _, findings = project_findings(base.assign(extra=base.index % 3), contract, DEFAULT_SPLIT)
    assert findings == []  # no declared columns: an extra one is not a finding
    _, findings = project_findings(
        CASES_BY_NAME["label_value_2"].make(base), contract, DEFAULT_SPLIT
    )
    assert [f["check"] for f in findings] == ["label_values"]


def test_a_feature_constant_in_one_window_only_names_the_window(base, contract):
    _, findings = project_findings(constant_sex_in_train(base), contract, DEFAULT_SPLIT)
    assert _kinds(findings) == [("train", "SEX", "constant_in_window", "drift", 1)]
    assert "2 distinct values in the dataset" in findings[0]["description"]
    test_only = base.copy()
    test_only.loc[test_only.year == 2016, "DIS"] = 2
    _, findings = project_findings(test_only, contract, DEFAULT_SPLIT)
    assert _kinds(findings) == [("test", "DIS", "constant_in_window", "drift", 2)]


def test_healthy_and_empty_columns_are_not_constant(base, contract):
    """Two values are enough; a column with no value at all is the missing-values check's."""
    two = base.assign(SEX=[1, 2] * (len(base) // 2))
    assert checks.constant_findings(two, {"train": two}, contract) == []
    empty = base.assign(SEX=float("nan"))
    assert checks.constant_findings(empty, {"train": empty}, contract) == []
    inferred = Contract.from_dict(PARTIAL_SCHEMA)  # no declared features: every other column
    found = checks.constant_findings(base.assign(extra=7), {}, inferred)
    assert _kinds(found) == [("dataset", "extra", "constant", "drift", 7)]


def test_format_codes():
    assert checks.format_codes([1, 2]) == "[1, 2]"
    assert checks.format_codes([1, 2, 3, 4, 8]) == "[1, 2, 3, 4, 8]"
    assert checks.format_codes(list(range(25))) == "[0..24]"


# ---------------------------------------------------------------- findings and the contract


def test_a_finding_is_a_plain_dict_with_defaults_and_extra_fields():
    f = checks.finding("train", "AGEP", "out_of_range", "1 value", share=0.5)
    assert f == {
        "window": "train",
        "feature": "AGEP",
        "check": "out_of_range",
        "kind": "blocking",
        "description": "1 value",
        "source": "project",
        "share": 0.5,
    }
    assert json.loads(json.dumps(f)) == f  # it goes to anomalies.json as it is


def test_contract_of_the_project_schema(contract):
    assert contract.declared
    assert contract.required_columns[:2] == ["id", "year"]
    assert contract.required_columns[-1] == "employed"
    assert len(contract.required_columns) == len(contract.features) + 3
    assert contract.label_name == "employed" and contract.positive_value() == 1
    assert contract.max_missing("AGEP") == 0.0  # the checks' default
    assert contract.max_missing("not a column") == 0.0


def test_contract_of_no_schema_knows_nothing_and_requires_nothing():
    for empty in (None, {}):
        contract = Contract.from_dict(empty)
        assert not contract.declared
        assert contract.required_columns == [] and contract.label_name is None
        assert contract.checks.min_rows == 100 and contract.ignore == ()


def test_contract_of_a_partial_schema_reads_label_checks_and_ignored_columns():
    contract = Contract.from_dict(
        {
            **PARTIAL_SCHEMA,
            "label": {"name": "employed", "values": [1, 2]},
            "checks": {"min_rows": 5, "max_missing_fraction": 0.25},
            "columns": {"ignore": ["notes"]},
        }
    )
    assert contract.required_columns == ["id", "year", "employed"]
    assert contract.positive_value() == 2  # the last declared label value
    assert contract.checks.min_rows == 5 and contract.max_missing("anything") == 0.25
    df = pd.DataFrame({"id": [1], "notes": ["x"], "other": [2]})
    assert list(contract.usable(df).columns) == ["id", "other"]
    kept = df[["id", "other"]]
    assert contract.usable(kept) is kept  # nothing ignored: the same frame, no copy


def test_an_invalid_schema_is_refused(schema_dict):
    bad = copy.deepcopy(schema_dict)
    bad["features"]["SEX"]["values"] = {"min": 2, "max": 1}
    with pytest.raises(ValidationError, match="SEX"):
        Contract.from_dict(bad)
    with pytest.raises(ValidationError):
        Contract.from_dict({**PARTIAL_SCHEMA, "checks": {"min_rows": 0}})
    with pytest.raises(ValidationError):
        Contract.from_dict({**PARTIAL_SCHEMA, "checks": {"no_such_check": 1}})


# ---------------------------------------------------------------- formatting helpers


@pytest.mark.parametrize(
    "fraction,shown",
    [(0, "0%"), (0.0123, "1.2%"), (0.001, "0.1%"), (0.0004, "0.040%"), (1, "100.0%")],
)
def test_percent_never_shows_a_small_share_as_zero(fraction, shown):
    assert checks.percent(fraction) == shown


def test_value_examples():
    assert checks.value_examples([3, 1, 3, 2]) == "1, 2, 3"
    assert checks.value_examples([150, -1, 3, 2, 7]) == "-1, 2, 3, ..."
    assert checks.value_examples(np.array([2.0, 1.5, np.inf])) == "1.5, 2, inf"
    assert checks.value_examples(["b", "a"]) == "'a', 'b'"
    assert checks.value_examples([1, "a"]) == "1, 'a'"  # unsortable: as found, no error


def test_format_codes_long_and_unsorted():
    assert checks.format_codes([8, 1, 2]) == "[1, 2, 8]"
    assert checks.format_codes([1, 2, 3, 4, 5, 6]) == "[1, 2, 3, 4, 5, 6]"  # short: listed
    evens = list(range(0, 26, 2))
    assert checks.format_codes(evens) == "[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, ...]"


def test_is_numeric_and_as_float():
    assert checks.is_numeric(pd.Series([1, 2])) and checks.is_numeric(pd.Series([1.5]))
    assert not checks.is_numeric(pd.Series([True, False]))
    assert not checks.is_numeric(pd.Series(["1"]))
    values = checks.as_float(pd.Series(pd.array([1, None], dtype="Int64")))
    assert values.dtype == np.float64 and values[0] == 1.0 and np.isnan(values[1])


# ---------------------------------------------------------------- dataset-level checks


def test_an_empty_dataset_is_one_finding(base, contract):
    assert _checks(checks.dataset_checks(base.head(0), contract)) == [("dataset", None, "empty")]
    assert checks.dataset_checks(base.head(0), contract)[0]["description"] == (
        "the dataset has 0 rows"
    )
    (f,) = checks.dataset_checks(pd.DataFrame(index=range(3)), contract)
    assert (f["check"], f["description"]) == ("empty", "the dataset has no columns")
    windows, findings = project_findings(base.head(0), contract, DEFAULT_SPLIT)
    assert windows == {} and _checks(findings) == [("dataset", None, "empty")]


def test_a_missing_column_hints_at_its_new_name(base, contract):
    found = checks.dataset_checks(base.rename(columns={"AGEP": "agep"}), contract)
    assert [(f["feature"], f["check"], f["description"]) for f in found] == [
        ("AGEP", "missing_column", "column is missing (renamed to 'agep'?)"),
        ("agep", "unexpected_column", "not declared in the data schema"),
    ]
    found = checks.dataset_checks(base.rename(columns={"SCHL": "SCHL_2"}), contract)
    assert found[0]["description"] == "column is missing (renamed to 'SCHL_2'?)"
    found = checks.dataset_checks(base.drop(columns=["SCHL"]), contract)
    assert [(f["feature"], f["description"]) for f in found] == [("SCHL", "column is missing")]


@pytest.mark.parametrize(
    "values,expected",
    [
        (["30", "abc"], "expected int values, found text: 1000 non-numeric values (e.g. 'abc')"),
        (["30", "41"], "expected int values, found text: numbers stored as text (e.g. '30', "),
        ([True, False], "expected int values, found true/false values"),
        (pd.to_datetime(["2015-01-01", "2016-01-01"]), "expected int values, found dates"),
    ],
    ids=["non-numeric", "numbers-as-text", "bool", "dates"],
)
def test_a_wrongly_typed_column_says_what_it_holds(base, contract, values, expected):
    df = base.assign(AGEP=np.resize(np.asarray(values, dtype=object), len(base)))
    if isinstance(values, pd.DatetimeIndex):
        df["AGEP"] = np.resize(values.to_numpy(), len(base))
    elif isinstance(values[0], bool):
        df["AGEP"] = df["AGEP"].astype(bool)
    (f,) = checks.dataset_checks(df, contract)
    assert (f["feature"], f["check"], f["kind"]) == ("AGEP", "wrong_type", "blocking")
    assert f["description"].startswith(expected)


def test_a_string_feature_holding_numbers_is_a_wrong_type(base, schema_dict):
    features = copy.deepcopy(schema_dict["features"])
    features["SEX"] = {"kind": "categorical", "dtype": "string", "values": ["m", "f"]}
    contract = _changed(schema_dict, features=features)
    texts = base.assign(SEX=np.where(base.SEX == 1, "m", "f"))
    assert checks.dataset_checks(texts, contract) == []
    mixed = texts.astype({"SEX": object})
    mixed.loc[0, "SEX"] = 3
    (f,) = checks.dataset_checks(mixed, contract)
    assert (f["feature"], f["check"]) == ("SEX", "wrong_type")
    assert f["description"] == "expected string values, found 1 non-text value (e.g. '3')"
    (f,) = checks.dataset_checks(base, contract)  # codes where texts are declared
    assert f["description"] == "expected string values, found int64 values"


def test_time_values_missing_or_unreadable(base, contract, schema_dict):
    df = base.astype({"year": float})
    df.loc[[3, 4], "year"] = np.nan
    (f,) = checks.dataset_checks(df, contract)
    assert (f["feature"], f["check"]) == ("year", "missing_values")
    assert f["description"] == "2 rows without a value: they belong to no window"
    stamped = _changed(schema_dict, time={"kind": "timestamp"})
    dates = base.assign(year=np.where(base.year == 2015, "2015-06-01", "2016-06-01"))
    assert checks.dataset_checks(dates, stamped) == []
    dates.loc[7, "year"] = "not a date"
    (f,) = checks.dataset_checks(dates, stamped)
    assert (f["feature"], f["check"], f["kind"]) == ("year", "unparseable_time", "blocking")
    assert f["description"] == "1 value not readable as time.kind timestamp, e.g. 'not a date'"


def test_duplicate_ids_up_to_the_allowed_share(base, contract, schema_dict):
    df = base.copy()
    df.loc[1, "id"] = df.loc[0, "id"]
    (f,) = checks.dataset_checks(df, contract)
    assert (f["feature"], f["check"]) == ("id", "duplicate_ids")
    assert f["description"] == (
        f"1 duplicate id (0.050%, at most 0% allowed; e.g. {df.loc[0, 'id']})"
    )
    lenient = _changed(
        schema_dict, checks={**schema_dict["checks"], "max_duplicate_id_fraction": 0.001}
    )
    assert checks.dataset_checks(df, lenient) == []
    missing = base.astype({"id": float})
    missing.loc[[0, 1], "id"] = np.nan  # two missing ids are not one id twice
    assert checks.dataset_checks(missing, contract) == []


def test_duplicate_row_share_without_declared_features(base):
    """The inferred contract compares every column but id and time, label included."""
    contract = Contract.from_dict(PARTIAL_SCHEMA)
    twice = pd.concat([base, base], ignore_index=True).assign(id=range(2 * len(base)))
    assert checks.duplicate_row_share(twice, contract) >= 0.5
    only_keys = twice[["id", "year"]]
    assert checks.duplicate_row_share(only_keys, contract) == 0.0  # nothing to compare


# ---------------------------------------------------------------- per-window checks


@pytest.fixture(scope="module")
def train(base) -> pd.DataFrame:
    return base[base.year == 2015].reset_index(drop=True)


def test_a_clean_window_has_no_finding(train, contract):
    assert checks.window_checks(train, "train", contract) == []


def test_too_few_rows_and_an_empty_window(train, contract):
    (f,) = checks.window_checks(train.head(50), "test", contract)
    assert (f["window"], f["check"]) == ("test", "min_rows")
    assert f["description"] == "only 50 rows, fewer than min_rows 100"
    (f,) = checks.window_checks(train.head(0), "test", contract)
    assert f["description"] == "only 0 rows, fewer than min_rows 100"


@pytest.mark.parametrize(
    "column,value,check,description",
    [
        ("AGEP", np.inf, "not_finite", "1 infinite value (inf)"),
        ("AGEP", 30.5, "not_integer", "1 non-integer value in an int column (e.g. 30.5)"),
        ("AGEP", 150, "out_of_range", "1 value outside the range [0, 99] (150)"),
        ("AGEP", -1, "out_of_range", "1 value outside the range [0, 99] (-1)"),
        ("SEX", 1.5, "not_integer", "1 non-integer value in an int column (e.g. 1.5)"),
        ("ANC", 5, "unseen_code", "1 value outside the domain [1, 2, 3, 4, 8] (5)"),
        ("SCHL", 25, "unseen_code", "1 value outside the domain [0..24] (25)"),
        ("employed", 2, "label_values", "1 value outside [0, 1] (2)"),
    ],
)
def test_one_bad_value_is_one_finding(train, contract, column, value, check, description):
    df = train.astype({column: float})
    df.loc[0, column] = value
    (f,) = checks.window_checks(df, "train", contract)
    assert (f["window"], f["feature"], f["check"], f["kind"]) == (
        "train",
        column,
        check,
        "blocking",
    )
    assert f["description"] == description
    assert checks.window_checks(df, "train", contract, skip={column}) == []


def test_missing_values_of_a_feature_and_of_the_id(train, contract):
    df = train.astype({"MAR": float, "id": float})
    df.loc[:9, "MAR"] = np.nan
    df.loc[0, "id"] = np.nan
    found = checks.window_checks(df, "test", contract)
    assert [(f["feature"], f["check"], f["description"]) for f in found] == [
        ("MAR", "missing_values", "10 missing values (1.0%, at most 0% allowed)"),
        ("id", "missing_values", "1 missing value (0.1%, at most 0% allowed)"),
    ]
    # an inferred contract declares no id check
    assert checks.window_checks(df, "test", Contract.from_dict(PARTIAL_SCHEMA)) == []


def test_the_positive_rate_of_the_label(train, contract):
    (f,) = checks.window_checks(train.assign(employed=1), "train", contract)
    assert (f["feature"], f["check"]) == ("employed", "positive_rate")
    assert f["description"] == "positive rate 1.000 outside [0.05, 0.95]"
    (f,) = checks.window_checks(train.assign(employed=0), "train", contract)
    assert f["description"] == "positive rate 0.000 outside [0.05, 0.95]"
    nothing = train.assign(employed=np.nan)  # no label value at all: missing, no rate
    assert _checks(checks.window_checks(nothing, "train", contract)) == [
        ("train", "employed", "missing_values")
    ]


def test_a_range_open_on_one_side(train, schema_dict):
    features = copy.deepcopy(schema_dict["features"])
    features["AGEP"].pop("max")
    contract = _changed(schema_dict, features=features)
    (f,) = checks.window_checks(train.assign(AGEP=-3), "train", contract)
    assert f["description"] == f"{len(train)} values outside the range [0, inf] (-3)"
    assert checks.window_checks(train.assign(AGEP=10_000), "train", contract) == []


# ---------------------------------------------------------------- windows and the whole run


def test_split_windows(base, contract):
    windows, found = checks.split_windows(base, contract, DEFAULT_SPLIT, set())
    assert found == [] and {k: len(v) for k, v in windows.items()} == {"train": 1000, "test": 1000}
    assert set(windows["train"].year) == {2015} and set(windows["test"].year) == {2016}


def test_an_impossible_split_is_a_finding_not_an_error(base, contract):
    no_time = base.drop(columns=["year"])
    windows, found = checks.split_windows(no_time, contract, DEFAULT_SPLIT, set())
    assert windows == {} and _checks(found) == [("dataset", "year", "split")]
    assert found[0]["description"] == "a time split needs a time column"
    # already reported missing or mistyped: no second finding
    assert checks.split_windows(no_time, contract, DEFAULT_SPLIT, {"year"}) == ({}, [])
    random = {"method": "random", "test_fraction": 0.2, "seed": 1}
    windows, found = checks.split_windows(base, Contract.from_dict({}), random, set())
    assert windows == {} and found[0]["description"] == "a random split needs the label"
    later = {**DEFAULT_SPLIT, "test_window": [2030, 2030]}
    windows, found = checks.split_windows(base, contract, later, set())
    assert windows == {} and [(f["check"], f["kind"]) for f in found] == [
        ("empty_window", "blocking")
    ]
    assert "2030" in found[0]["description"]


def test_a_mistyped_column_is_reported_once(base, contract):
    """Its values are not numbers: no window check reads them (they would not convert)."""
    df = base.astype({"AGEP": str})
    df.loc[[0, 1500], "AGEP"] = "n/a"  # one in each window
    _, found = project_findings(df, contract, DEFAULT_SPLIT)
    assert _checks(found) == [("dataset", "AGEP", "wrong_type")]
    assert found[0]["role"] == "feature"
    windows, found = project_findings(base.drop(columns=["year"]), contract, DEFAULT_SPLIT)
    assert windows == {} and _checks(found) == [("dataset", "year", "missing_column")]
    assert found[0]["role"] == "time"


# ---------------------------------------------------------------- roles and TFDV corroboration


def test_assign_roles(contract):
    found = [
        checks.finding("dataset", name, "c", "d")
        for name in ("AGEP", "employed", "id", "year", "extra", None)
    ]
    roles = [f["role"] for f in checks.assign_roles(found, contract)]
    assert roles == ["feature", "label", "id", "time", "column", None]
    inferred = checks.assign_roles(
        [checks.finding("train", "AGEP", "c", "d")], Contract.from_dict(PARTIAL_SCHEMA)
    )
    assert inferred[0]["role"] == "column"  # not declared a feature


def test_corroboration_needs_a_blocking_project_finding_on_the_same_column():
    found = [
        checks.finding("train", "SEX", "constant_in_window", "one value", kind="drift"),
        checks.finding("train", "SEX", "tfdv:X", "x", source="tfdv"),
        checks.finding("test", None, "min_rows", "only 5 rows"),
        checks.finding("test", None, "min_rows", "only 5 rows"),
        checks.finding("test", None, "tfdv:LOW", "low", source="tfdv"),
        checks.finding("test", "AGEP", "tfdv:drift", "d", kind="drift", source="tfdv"),
    ]
    checks.mark_corroborating(found)
    assert [f.get("corroborates") for f in found] == [None, None, None, None, ["min_rows"], None]
    counted = checks.counted_blocking(found)
    assert [f["check"] for f in counted] == ["tfdv:X", "min_rows", "min_rows"]
    assert checks.counted_blocking([]) == []
