"""components/common/categories.py: a string feature's texts <-> codes. encode/unseen/decode on
the edge values (missing, unknown, out of range), encode_frame, recoding between two `values`
lists, the mapping a Dataset of codes carries (mark) and its re-coding to a model's own mapping
or refusal in one line (for_model), and either form of rows to texts or codes.

tests/components/features/test_string_features.py covers the mapping's basic cases beside the
features stage; this module covers the functions one by one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.common import categories
from components.common.artifacts import read_dataset, write_dataset
from components.common.categories import UNSEEN

SPEC = {"dtype": "string", "values": ["b", "a", "c"]}  # b=0, a=1, c=2
NUMERIC = {"dtype": "int", "kind": "numeric"}


def _entry(name: str, spec: dict) -> dict:
    """A feature as a model's feature spec lists it."""
    return {"name": name, **spec}


# ---------------------------------------------------------------- encode / unseen / decode


def test_encode_of_texts_all_present_is_int64():
    codes = categories.encode(pd.Series(["a", "c", "b", "a"]), SPEC)
    assert codes.dtype == "int64" and codes.tolist() == [1, 2, 0, 1]


def test_encode_keeps_missing_as_nan_and_makes_unknown_texts_unseen():
    series = pd.Series(["c", None, "zzz", np.nan, 7, "B", ["a"]], dtype=object)
    codes = categories.encode(series, SPEC)
    assert codes.dtype == "float64"  # int64 has no NaN
    assert codes.iloc[0] == 2 and codes.iloc[2] == UNSEEN
    assert codes.iloc[4] == UNSEEN  # a number is not a declared text
    assert codes.iloc[5] == UNSEEN  # case matters: "B" is not "b"
    assert codes.iloc[6] == UNSEEN  # a list (a JSON request's array) is no text either
    assert codes.isna().tolist() == [False, True, False, True, False, False, False]
    assert codes.index.equals(series.index)


def test_encode_of_a_spec_without_values_makes_every_text_unseen():
    codes = categories.encode(pd.Series(["a"]), {"dtype": "string", "values": None})
    assert codes.tolist() == [UNSEEN]


def test_unseen_lists_each_undeclared_present_value_once_sorted_as_text():
    series = pd.Series(["q", "a", None, 10, "q", 2, np.nan, "b"], dtype=object)
    assert categories.unseen(series, SPEC) == [10, 2, "q"]  # "10" < "2" < "q"
    assert categories.unseen(pd.Series(["a", None, "b"]), SPEC) == []


def test_decode_gives_none_for_unseen_missing_and_out_of_range_codes():
    codes = [0, 2, 1.0, np.int64(1), UNSEEN, np.nan, None, 3, -2]
    assert categories.decode(codes, SPEC) == ["b", "c", "a", "a", None, None, None, None, None]
    assert categories.decode(pd.Series([2.0, np.nan]), SPEC) == ["c", None]
    assert categories.decode([], SPEC) == []
    # nullable integer codes (a Parquet batch written with pandas' Int64): NA is missing
    assert categories.decode(pd.Series([2, pd.NA, 0], dtype="Int64"), SPEC) == ["c", None, "b"]


def test_encode_then_decode_is_the_identity_on_declared_texts():
    texts = pd.Series(["c", "b", "a", None], dtype=object)
    assert categories.decode(categories.encode(texts, SPEC), SPEC) == ["c", "b", "a", None]


# ---------------------------------------------------------------- encode_frame


def test_encode_frame_encodes_only_the_string_features_it_holds():
    df = pd.DataFrame({"employer": ["a", "c"], "age": [30, 40], "other": ["a", "b"]})
    features = {"employer": SPEC, "age": NUMERIC, "absent": SPEC}
    out = categories.encode_frame(df, features)
    assert out["employer"].tolist() == [1, 2] and out["employer"].dtype == "int64"
    assert out["age"].tolist() == [30, 40]
    assert out["other"].tolist() == ["a", "b"]  # not a feature: untouched
    assert df["employer"].tolist() == ["a", "c"]  # the caller's frame is not changed


def test_encode_frame_without_string_features_returns_the_frame_itself():
    df = pd.DataFrame({"age": [30]})
    assert categories.encode_frame(df, {"age": NUMERIC, "employer": SPEC}) is df


# ---------------------------------------------------------------- recode / same_mapping


def test_appending_a_value_keeps_every_old_code():
    old = {"dtype": "string", "values": ["b", "a"]}
    new = {"dtype": "string", "values": ["b", "a", "c"]}
    assert all(categories.mapping(new)[t] == c for t, c in categories.mapping(old).items())
    # rows coded with `new`, for a model trained on `old`: "c" is unknown to it
    assert categories.recode(pd.Series([0, 1, 2]), old, new).tolist() == [0, 1, UNSEEN]


def test_a_reordered_list_recodes_by_text_and_is_not_the_same_mapping():
    old = {"dtype": "string", "values": ["b", "a", "c"]}
    new = {"dtype": "string", "values": ["c", "b", "a"]}
    assert not categories.same_mapping(old, new)
    assert categories.same_mapping(old, {"values": ("b", "a", "c")})  # a tuple is the same list
    recoded = categories.recode(pd.Series([0, 1, 2, 0]), old, new)
    assert recoded.dtype == "int64"
    assert categories.decode(recoded, old) == ["c", "b", "a", "c"]  # the texts did not change


def test_recode_keeps_missing_codes_missing_and_an_unseen_code_unseen():
    old = {"values": ["x", "y"]}
    new = {"values": ["y", "x"]}
    recoded = categories.recode(pd.Series([0.0, np.nan, float(UNSEEN)]), old, new)
    assert recoded.dtype == "float64"
    assert recoded.iloc[0] == 1 and np.isnan(recoded.iloc[1]) and recoded.iloc[2] == UNSEEN


# ---------------------------------------------------------------- mark / for_model / as_texts


MODEL_FEATURES = [_entry("employer", SPEC), _entry("age", NUMERIC)]


def _rows(values: list[str], texts: list[str | None]) -> pd.DataFrame:
    """Rows whose `employer` codes follow `values`, marked with that mapping."""
    spec = {"dtype": "string", "values": values}
    df = pd.DataFrame({"employer": texts, "age": range(len(texts))})
    return categories.mark(categories.encode_frame(df, {"employer": spec}), {"employer": spec})


def test_mark_records_the_mapping_of_each_string_feature_present():
    df = pd.DataFrame({"employer": [0, 1], "age": [30, 40]})
    marked = categories.mark(df, {"employer": SPEC, "age": NUMERIC, "absent": SPEC})
    assert marked.attrs[categories.ATTRS_KEY] == {"employer": ["b", "a", "c"]}
    assert categories.ATTRS_KEY not in df.attrs  # a copy is marked


def test_the_mark_survives_a_dataset_artifact(tmp_path):
    marked = _rows(["c", "b", "a"], ["a", "c"])
    write_dataset(marked, tmp_path / "d.parquet")
    back = read_dataset(tmp_path / "d.parquet")
    assert back.attrs[categories.ATTRS_KEY] == {"employer": ["c", "b", "a"]}


def test_for_model_with_the_model_mapping_returns_the_rows_as_they_are():
    rows = _rows(["b", "a", "c"], ["a", "c"])
    assert categories.for_model(rows, MODEL_FEATURES) is rows


def test_for_model_recodes_rows_coded_with_another_mapping_to_the_models():
    rows = _rows(["a", "c", "b", "d"], ["a", "c", None, "b"])  # "d" declared, never present
    out = categories.for_model(rows, MODEL_FEATURES)
    assert categories.decode(out["employer"], SPEC) == ["a", "c", None, "b"]
    assert out["employer"].iloc[0] == 1 and out["employer"].iloc[1] == 2  # the model's a, c
    assert rows["employer"].iloc[0] == 0  # the caller's rows keep their own codes (a=0)
    assert out["age"].tolist() == [0, 1, 2, 3]


def _one_line_error(df: pd.DataFrame, features: list[dict]) -> str:
    with pytest.raises(ValueError) as err:
        categories.for_model(df, features)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_for_model_refuses_rows_that_carry_no_mapping():
    unmarked = pd.DataFrame({"employer": [0, 1], "age": [1, 2]})
    message = _one_line_error(unmarked, MODEL_FEATURES)
    assert message == "feature 'employer': the rows do not say which texts their codes mean"
    # marked, but not for this feature
    other = categories.mark(pd.DataFrame({"employer": [0], "age": [1]}), {})
    assert "'employer'" in _one_line_error(other, MODEL_FEATURES)


def test_for_model_refuses_a_text_the_model_has_no_code_for():
    rows = _rows(["b", "a", "c", "Unemployed", "Retired"], ["a", "Unemployed", "Unemployed"])
    message = _one_line_error(rows, MODEL_FEATURES)
    assert message.startswith("feature 'employer': the model has no code for ['Unemployed']")
    assert "(2 rows)" in message and "['b', 'a', 'c']" in message  # the model's values


def test_for_model_refuses_texts_for_a_feature_the_model_takes_as_integers():
    rows = pd.DataFrame({"employer": [0], "age": [3]})
    rows = categories.mark(rows, {"employer": SPEC, "age": SPEC})  # age coded from texts
    message = _one_line_error(rows, MODEL_FEATURES)
    assert message == "feature 'age': the model takes integer codes, the rows texts"


def test_as_texts_decodes_every_marked_feature():
    rows = _rows(["c", "a", "b"], ["a", None, "b"])
    rows.loc[2, "employer"] = UNSEEN
    out = categories.as_texts(rows)
    assert out["employer"].tolist() == ["a", None, None]
    assert out["age"].tolist() == [0, 1, 2]
    assert rows["employer"].iloc[0] == 1  # a copy


def test_as_texts_of_unmarked_rows_returns_them_as_they_are():
    df = pd.DataFrame({"employer": [0, 1]})
    assert categories.as_texts(df) is df


# ---------------------------------------------------------------- to_texts / to_codes


def test_to_texts_decodes_codes_and_leaves_texts_and_other_columns():
    logged = pd.DataFrame({"employer": [1.0, np.nan, 2.0, float(UNSEEN)], "age": [1, 2, 3, 4]})
    out = categories.to_texts(logged, MODEL_FEATURES)
    assert out["employer"].tolist() == ["a", None, "c", None]
    assert out["employer"].dtype == object
    assert out["age"].tolist() == [1, 2, 3, 4]
    assert logged["employer"].iloc[0] == 1.0  # the caller's frame is not changed
    raw = pd.DataFrame({"employer": ["a", None], "age": [1, 2]})
    assert categories.to_texts(raw, MODEL_FEATURES) is raw
    assert categories.to_texts(raw[["age"]], MODEL_FEATURES)["age"].tolist() == [1, 2]


def test_to_codes_encodes_texts_and_leaves_codes():
    raw = pd.DataFrame({"employer": ["c", "nope", None], "age": [1, 2, 3]})
    out = categories.to_codes(raw, MODEL_FEATURES)
    assert out["employer"].iloc[0] == 2 and out["employer"].iloc[1] == UNSEEN
    assert np.isnan(out["employer"].iloc[2])
    assert raw["employer"].tolist() == ["c", "nope", None]
    codes = pd.DataFrame({"employer": [0, 1], "age": [1, 2]})
    assert categories.to_codes(codes, MODEL_FEATURES) is codes


def test_to_codes_and_to_texts_handle_pandas_string_dtype():
    raw = pd.DataFrame({"employer": pd.Series(["b", "a"], dtype="string")})
    assert categories.to_codes(raw, MODEL_FEATURES)["employer"].tolist() == [0, 1]
    assert categories.to_texts(raw, MODEL_FEATURES) is raw
