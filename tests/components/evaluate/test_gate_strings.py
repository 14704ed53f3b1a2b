"""The gate scores the registry's champion on the challenger's test rows: when the champion was
trained on another mapping of a string feature (a value inserted in the middle of `values`), its
codes are re-coded by text, and a text the champion has no code for refuses the comparison. Real
models (features + train stages), a real MLflow store."""

from __future__ import annotations

import pandas as pd
import pytest

from components.common.artifacts import load_model
from components.common.config import DataSchema, EvaluationConfig
from components.evaluate import compare
from components.evaluate.evaluate import run as evaluate_run
from tests.fixtures.models import register
from tests.fixtures.strings_data import EMPLOYERS, string_frame, string_schema_dict
from tests.serve.conftest import train_model

CFG = EvaluationConfig(
    explain={"enabled": False}, slices={"features": ["employer"], "buckets": {"age": [30, 50]}}
).model_dump(mode="json")
INSERTED = ["Gov", "Contractor", "Private", "Self-emp"]  # "Contractor" moves Private's code


def _schema(values: list[str]) -> DataSchema:
    data = string_schema_dict()
    data["features"]["employer"]["values"] = values
    return DataSchema.model_validate(data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The champion on the old mapping and a challenger on the new one, same data."""
    root = tmp_path_factory.mktemp("gate-strings")
    data = string_frame(3000)
    old = train_model(root / "old", data, _schema(EMPLOYERS))
    new = train_model(root / "new", data, _schema(INSERTED))
    with_contractor = data.copy()
    with_contractor.loc[with_contractor.index[-40:], "employer"] = "Contractor"  # test window
    newer = train_model(root / "contractor", with_contractor, _schema(INSERTED))
    return old, new, newer


def _gate(challenger_dir, tmp_path):
    test_path = str(challenger_dir.parent / "test.parquet")
    evaluate_run(str(challenger_dir), test_path, CFG, str(tmp_path / "summary.json"))
    return compare.run(
        test_path,
        str(tmp_path / "summary.json"),
        CFG,
        "m",
        str(tmp_path / "b"),
        str(tmp_path / "r"),
    )


def test_the_codes_of_the_two_mappings_differ(trained):
    old, new, _ = trained
    a = pd.read_parquet(old.parent / "test.parquet")["employer"]
    b = pd.read_parquet(new.parent / "test.parquet")["employer"]
    assert (a != b).any()  # Private is 1 in one, 2 in the other: scoring codes as-is is wrong


def test_a_champion_on_another_mapping_is_scored_by_text(mlflow_store, trained, tmp_path):
    old, new, _ = trained
    register(*load_model(old), "m", "old")
    own = evaluate_run(str(old), str(old.parent / "test.parquet"), CFG)  # its own codes
    blessing, _, champion = _gate(new, tmp_path)
    assert blessing.champion_error is None
    assert champion["metrics"]["roc_auc"] == pytest.approx(own["metrics"]["roc_auc"], abs=1e-12)
    assert champion["metrics"]["log_loss"] == pytest.approx(own["metrics"]["log_loss"], abs=1e-12)
    # slices of a string feature are named by its texts, the same under either mapping
    employer = next(s for s in champion["slices"] if s["feature"] == "employer")
    assert {s["value"] for s in employer["slices"]} == set(EMPLOYERS)
    assert employer == next(s for s in own["slices"] if s["feature"] == "employer")


def test_a_text_the_champion_never_knew_refuses_the_comparison(mlflow_store, trained, tmp_path):
    old, _, newer = trained
    register(*load_model(old), "m", "old")
    blessing, _, champion = _gate(newer, tmp_path)
    assert champion is None and not blessing.blessed
    assert "'employer'" in blessing.champion_error and "Contractor" in blessing.champion_error
    assert any("cannot compare with champion" in f for f in blessing.failed_checks)
