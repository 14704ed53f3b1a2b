"""`dtype: string` categorical features: the shared text <-> code mapping, the project's pandas
checks on raw texts, the features stage's encoding, and TFDV's string_domain on a real job."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.common import categories
from components.common.artifacts import load_model, read_dataset
from components.common.config import FeatureSpec
from components.common.errors import DataError
from components.features.features import run as features
from components.validate import validate
from components.validate.checks import Contract, project_findings
from tests.conftest import needs_tfdv
from tests.fixtures.strings_data import EMPLOYERS, string_frame, string_schema_dict
from tests.support.tfdv_jobs import run_tfdv_jobs

SPLIT = {"method": "time", "train_window": [2015, 2015], "test_window": [2016, 2016]}
SPEC = FeatureSpec(kind="categorical", dtype="string", values=["b", "a", "c"])


# ---------------------------------------------------------------- mapping


def test_the_code_is_the_position_in_values_and_unseen_is_the_sentinel():
    assert categories.mapping(SPEC) == {"b": 0, "a": 1, "c": 2}
    assert SPEC.codes() == [0, 1, 2]
    codes = categories.encode(pd.Series(["a", "c", "b", "zzz"]), SPEC)
    assert codes.tolist() == [1, 2, 0, categories.UNSEEN] and codes.dtype == "int64"
    assert categories.decode([1, 2, 0, categories.UNSEEN], SPEC) == ["a", "c", "b", None]


def test_missing_stays_missing_and_a_number_is_unseen():
    codes = categories.encode(pd.Series(["a", None, 3], dtype=object), SPEC)
    assert codes.iloc[0] == 1 and np.isnan(codes.iloc[1]) and codes.iloc[2] == categories.UNSEEN
    assert categories.unseen(pd.Series(["a", None, 3, "q", "q"], dtype=object), SPEC) == [3, "q"]


def test_the_spec_dict_of_a_saved_model_maps_like_the_schema():
    entry = {"name": "x", **SPEC.model_dump(mode="json", exclude_none=True)}
    assert categories.is_string(entry) and categories.mapping(entry) == categories.mapping(SPEC)


def test_recode_follows_the_text_when_a_value_is_inserted_in_the_middle():
    old = FeatureSpec(kind="categorical", dtype="string", values=["a", "c"])
    new = FeatureSpec(kind="categorical", dtype="string", values=["a", "b", "c"])
    assert not categories.same_mapping(old, new)
    # new codes a=0, b=1, c=2 -> old codes a=0, c=1, b unknown to the old model
    assert categories.recode(pd.Series([0, 2, 1]), old, new).tolist() == [0, 1, categories.UNSEEN]


# ---------------------------------------------------------------- project checks (pandas)


@pytest.fixture()
def contract() -> Contract:
    return Contract.from_dict(string_schema_dict())


def _blocking(df: pd.DataFrame, contract: Contract) -> list[dict]:
    _, findings = project_findings(contract.usable(df), contract, SPLIT)
    return [f for f in findings if f["kind"] == "blocking"]


def test_declared_texts_pass_the_project_checks(contract):
    assert _blocking(string_frame(600), contract) == []


def test_an_unseen_text_is_blocking_and_named(contract):
    df = string_frame(600)
    df.loc[[5, 7], "employer"] = "Unemployed"  # 2015 rows: the train window
    blocking = _blocking(df, contract)
    assert [(f["window"], f["feature"], f["check"]) for f in blocking] == [
        ("train", "employer", "unseen_value")
    ]
    message, subject = validate.blocking_message(blocking)
    assert subject == "employer" and "'Unemployed'" in message and "2 values" in message


def test_numbers_in_a_string_feature_are_a_wrong_type(contract):
    df = string_frame(600)
    df["degree"] = df["degree"].map({d: i for i, d in enumerate(sorted(set(df["degree"])))})
    blocking = _blocking(df, contract)
    assert [(f["feature"], f["check"]) for f in blocking] == [("degree", "wrong_type")]
    assert "expected string values" in blocking[0]["description"]


# ---------------------------------------------------------------- features stage


def test_features_encode_texts_to_the_declared_codes(tmp_path):
    df = string_frame(600)
    df.to_parquet(tmp_path / "data.parquet")
    features(
        str(tmp_path / "data.parquet"),
        string_schema_dict(),
        {"split": SPLIT, "categorical_encoding": "onehot"},
        str(tmp_path / "train"),
        str(tmp_path / "test"),
        str(tmp_path / "transformer"),
    )
    train = read_dataset(tmp_path / "train")
    want = df[df["year"] == 2015]["employer"].map(EMPLOYERS.index).to_numpy()
    np.testing.assert_array_equal(train["employer"].to_numpy(), want)
    _, spec = load_model(tmp_path / "transformer")
    entry = next(f for f in spec["features"] if f["name"] == "employer")
    assert entry["dtype"] == "string" and entry["values"] == EMPLOYERS  # the mapping ships


def test_features_refuse_an_undeclared_text(tmp_path):
    df = string_frame(600)
    df.loc[3, "degree"] = "Diploma"
    df.to_parquet(tmp_path / "data.parquet")
    with pytest.raises(DataError, match="degree"):
        features(
            str(tmp_path / "data.parquet"),
            string_schema_dict(),
            {"split": SPLIT},
            str(tmp_path / "train"),
            str(tmp_path / "test"),
            str(tmp_path / "transformer"),
        )


# ---------------------------------------------------------------- TFDV (real job)


@pytest.mark.tfdv
@needs_tfdv()
def test_tfdv_gets_a_string_domain_and_reports_an_unseen_text(tmp_path):
    clean, bad = string_frame(600), string_frame(600)
    bad.loc[bad["year"] == 2016, "employer"] = "Unemployed"  # the whole test window
    argvs = []
    for name, df in (("clean", clean), ("bad", bad)):
        df.to_parquet(tmp_path / f"{name}.parquet")
        argvs.append(
            validate.job_command(
                "python",
                str(tmp_path / f"{name}.parquet"),
                string_schema_dict(),
                SPLIT,
                str(tmp_path / name),
            )[3:]
        )
    proc = run_tfdv_jobs(argvs, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    schema = json.loads((tmp_path / "clean" / "schema" / "schema.json").read_text())
    employer = next(f for f in schema["tfdv_schema"]["feature"] if f["name"] == "employer")
    assert employer["type"] == "BYTES"
    assert employer["string_domain"]["value"] == EMPLOYERS

    def findings(name: str) -> list[dict]:
        summary = tmp_path / name / "anomalies" / "anomalies.json"
        return json.loads(summary.read_text())["findings"]

    assert [f for f in findings("clean") if f["kind"] == "blocking"] == []
    tfdv = [f for f in findings("bad") if f["source"] == "tfdv" and f["kind"] == "blocking"]
    assert {(f["window"], f["feature"]) for f in tfdv} == {("test", "employer")}
    assert "Unemployed" in " ".join(f["description"] for f in tfdv)
    project = [f for f in findings("bad") if f["source"] == "project" and f["kind"] == "blocking"]
    assert [(f["feature"], f["check"]) for f in project] == [("employer", "unseen_value")]


# ---------------------------------------------------------------- schema infer


def test_a_draft_declares_few_texts_as_string_categories_and_ignores_free_text(tmp_path):
    from components.common.config import load_data_schema
    from components.validate.draft import draft_schema, render

    df = string_frame(600)
    path = tmp_path / "schema.yaml"
    path.write_text(render(draft_schema(df, "label", "year", "person_id"), "x"))
    schema = load_data_schema(path)
    assert schema.features["employer"].dtype == "string"
    assert schema.features["employer"].values == sorted(EMPLOYERS)
    assert schema.features["degree"].values == sorted(set(df["degree"]))
    assert sorted(schema.columns.ignore) == ["comment", "reviewed"]
    contract = Contract.from_dict(schema.model_dump(mode="json"))
    assert _blocking(df, contract) == []


# ---------------------------------------------------------------- monitoring representation


def test_a_request_log_and_a_raw_batch_meet_in_texts_for_drift_and_in_codes_for_scoring():
    entry = {"name": "employer", **SPEC.model_dump(mode="json", exclude_none=True)}
    logged = pd.DataFrame({"employer": [1, 0, 2], "age": [30, 40, 50]})  # the validator's codes
    raw = pd.DataFrame({"employer": ["a", "b", "c"], "age": [30, 40, 50]}, dtype=object)
    assert categories.to_texts(logged, [entry])["employer"].tolist() == ["a", "b", "c"]
    assert categories.to_texts(raw, [entry]) is raw
    assert categories.to_codes(raw, [entry])["employer"].tolist() == [1, 0, 2]
    assert categories.to_codes(logged, [entry]) is logged
