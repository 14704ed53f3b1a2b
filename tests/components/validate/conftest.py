"""Fixtures shared by the validate stage's test modules: the project's data schema as the stage
receives it (a dict), its check contract, and the bad-data cases' base sample."""

from __future__ import annotations

import pandas as pd
import pytest

from components.validate.checks import Contract
from tests.fixtures.bad_data import base_sample

# a schema without `features`: only id, time and label are known (TFDV infers the rest)
PARTIAL_SCHEMA = {"id_column": "id", "time_column": "year", "label": {"name": "employed"}}


@pytest.fixture(scope="module")
def schema_dict(schema) -> dict:
    return schema.model_dump(mode="json", exclude_none=True)


@pytest.fixture(scope="module")
def contract(schema_dict) -> Contract:
    return Contract.from_dict(schema_dict)


@pytest.fixture(scope="module")
def base(full_data) -> pd.DataFrame:
    return base_sample(full_data)
