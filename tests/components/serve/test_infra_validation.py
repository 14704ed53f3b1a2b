"""Infra validation passes a good model's server and rejects one that answers differently."""

from __future__ import annotations

import json
import shutil

import pytest

from components.common.artifacts import FEATURE_SPEC_FILE
from components.common.model_integrity import write_manifest
from components.serve.infra_validation import InfraValidationError, validate_infra

ROWS = 40


def test_good_model_passes(lgbm_model_dir):
    report = validate_infra(lgbm_model_dir, lgbm_model_dir.parent / "test.parquet", n_rows=ROWS)
    assert report["passed"] and report["failures"] == []
    assert report["rows"] == ROWS
    assert set(report["max_abs_diff"]) == {"v1_one_row", "v2_one_row", "v1_batch", "v2_batch"}
    assert max(report["max_abs_diff"].values()) <= 1e-6
    assert report["latency_ms"]["p99"] <= report["latency_ms"]["budget_p99"]
    assert report["requests"] > ROWS


def test_server_that_answers_differently_is_rejected(lgbm_model_dir):
    with pytest.raises(InfraValidationError, match="answers differ from the offline") as err:
        validate_infra(
            lgbm_model_dir, lgbm_model_dir.parent / "test.parquet", n_rows=ROWS, fault="invert"
        )
    report = err.value.report
    assert not report["passed"]
    assert {f.split(":")[0] for f in report["failures"]} == {
        "v1_one_row",
        "v2_one_row",
        "v1_batch",
        "v2_batch",
    }


@pytest.mark.integration  # starts its own server
def test_tampered_model_dir_is_rejected(lgbm_model_dir, tmp_path):
    """A feature spec that no longer matches the data: the server refuses real rows."""
    tampered = tmp_path / "model"
    shutil.copytree(lgbm_model_dir, tampered)
    spec = json.loads((tampered / FEATURE_SPEC_FILE).read_text())
    for feature in spec["features"]:
        if feature["name"] == "SEX":
            feature["values"] = [1]
    (tampered / FEATURE_SPEC_FILE).write_text(json.dumps(spec))
    # a model dir written that way (its manifest agrees): what is tested is the server's input
    # validation, not integrity (an unrecorded edit is refused: tests/common/test_model_integrity)
    write_manifest(tampered)
    with pytest.raises(InfraValidationError, match="HTTP 400") as err:
        validate_infra(tampered, lgbm_model_dir.parent / "test.parquet", n_rows=ROWS)
    assert "SEX" in str(err.value)


@pytest.mark.integration  # starts its own server
def test_latency_budget_is_enforced(lgbm_model_dir):
    with pytest.raises(InfraValidationError, match="latency: one-row p99"):
        validate_infra(
            lgbm_model_dir,
            lgbm_model_dir.parent / "test.parquet",
            n_rows=10,
            fault="latency:15",
            p99_budget_ms=10,
        )
