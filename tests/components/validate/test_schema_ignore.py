"""`columns.ignore` in the data schema: listed columns are dropped before any check and never
become features; an unlisted unexpected column stays blocking; ignored and declared is refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.common.artifacts import load_model, read_dataset
from components.common.config import DEFAULT_DATA_SCHEMA, ConfigError, load_data_schema
from components.common.errors import DataError
from components.features.features import run as features_run
from components.validate import validate
from components.validate.checks import Contract, project_findings
from tests.conftest import TFDV_PYTHON, needs_tfdv
from tests.fixtures.bad_data import DEFAULT_SPLIT, base_sample
from tests.support.tfdv_jobs import validate_outputs

IGNORED = ["SERIALNO", "notes"]


def _schema(**columns) -> dict:
    data = yaml.safe_load(DEFAULT_DATA_SCHEMA.read_text())
    data["columns"] = columns
    return data


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _with_extra(df: pd.DataFrame, *names: str) -> pd.DataFrame:
    df = df.copy()
    for name in names:
        df[name] = [f"{name}-{i}" for i in range(len(df))]  # text: never a usable feature
    return df


@pytest.fixture(scope="module")
def base(full_data) -> pd.DataFrame:
    return base_sample(full_data)


def test_ignore_is_accepted(tmp_path):
    schema = load_data_schema(_write(tmp_path, _schema(ignore=IGNORED)))
    assert schema.columns.ignore == IGNORED
    assert not set(IGNORED) & set(schema.feature_names)
    assert not set(IGNORED) & set(schema.required_columns)


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("SEX", "a feature"),
        ("employed", "the label"),
        ("id", "the id column"),
        ("year", "the time column"),
    ],
)
def test_a_column_both_ignored_and_declared_is_refused(tmp_path, name, role):
    path = _write(tmp_path, _schema(ignore=["notes", name]))
    with pytest.raises(ConfigError) as error:
        load_data_schema(path)
    assert str(error.value) == (
        f"{path}: columns: ignore lists columns the schema uses: {name!r} is {role}"
    )


def test_a_column_ignored_twice_is_refused(tmp_path):
    path = _write(tmp_path, _schema(ignore=["notes", "notes"]))
    with pytest.raises(ConfigError, match=r"columns\.ignore: \['notes'\] listed more than once"):
        load_data_schema(path)


def test_ignored_columns_are_dropped_and_unlisted_ones_stay_blocking(base):
    contract = Contract.from_dict(_schema(ignore=IGNORED))
    df = contract.usable(_with_extra(base, *IGNORED, "income"))
    assert not set(IGNORED) & set(df.columns)
    windows, findings = project_findings(df, contract, DEFAULT_SPLIT)
    assert [(f["feature"], f["check"]) for f in findings] == [("income", "unexpected_column")]
    message, subject = validate.blocking_message(findings)
    assert subject == "income" and "not declared in the data schema" in message
    assert all(not set(IGNORED) & set(w.columns) for w in windows.values())
    # without the extra column the ignored ones pass
    _, findings = project_findings(
        contract.usable(_with_extra(base, *IGNORED)), contract, DEFAULT_SPLIT
    )
    assert findings == []


def test_an_ignored_column_never_reaches_the_features_or_the_feature_spec(base, tmp_path):
    data = _schema(ignore=IGNORED)
    df = _with_extra(base, *IGNORED)
    contract = Contract.from_dict(data)
    assert project_findings(contract.usable(df), contract, DEFAULT_SPLIT)[1] == []
    src = tmp_path / "data.parquet"
    df.to_parquet(src, index=False)
    feature_cfg = {"split": DEFAULT_SPLIT, "feature_selection": "none"}
    meta = features_run(
        str(src),
        load_data_schema(_write(tmp_path, data)).model_dump(mode="json"),
        feature_cfg,
        str(tmp_path / "train.parquet"),
        str(tmp_path / "test.parquet"),
        str(tmp_path / "transformer"),
    )
    _, spec = load_model(tmp_path / "transformer")
    names = [f["name"] for f in spec["features"]]
    assert len(names) == 16 and not set(IGNORED) & set(names)
    assert not set(IGNORED) & set(meta["transformer"]["features"])
    for part in ("train", "test"):
        assert not set(IGNORED) & set(read_dataset(tmp_path / f"{part}.parquet").columns)


@needs_tfdv()
def test_the_tfdv_job_drops_ignored_columns_and_blocks_unlisted_ones(base, tmp_path):
    """One launch of the validate stage: TFDV sees no ignored column (no new-column anomaly)."""
    data = load_data_schema(_write(tmp_path, _schema(ignore=IGNORED))).model_dump(
        mode="json", exclude_none=True
    )
    src = tmp_path / "data.parquet"
    _with_extra(base, *IGNORED, "income").to_parquet(src, index=False)
    lines: list[str] = []
    with pytest.raises(DataError) as err:
        validate.run(
            str(src),
            data,
            {"split": DEFAULT_SPLIT},
            python=str(TFDV_PYTHON),
            log=lines.append,
            **validate_outputs(tmp_path),
        )
    assert str(err.value) == "column 'income': not declared in the data schema"
    assert any(
        "dropped 2 ignored column(s) (columns.ignore): SERIALNO, notes" in line for line in lines
    )
