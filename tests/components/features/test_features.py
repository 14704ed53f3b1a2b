import numpy as np
import pytest

from components.common.artifacts import load_model, read_dataset
from components.common.errors import DataError
from components.features.features import build_transformer, run, select_features

SPLIT = {"method": "time", "train_window": [2015, 2015], "test_window": [2016, 2016], "seed": 1}


def _cfg(**kw):
    return {
        "split": SPLIT,
        "scaling_method": "standard",
        "categorical_encoding": "native",
        "feature_selection": "none",
        "max_features": None,
        **kw,
    }


def _run(tmp_path, df, schema, **kw):
    src = tmp_path / "data.parquet"
    df.to_parquet(src)
    meta = run(
        str(src),
        schema.model_dump(mode="json"),
        _cfg(**kw),
        str(tmp_path / "train.parquet"),
        str(tmp_path / "test.parquet"),
        str(tmp_path / "transformer"),
    )
    return meta


def test_time_split_and_native_transformer(tmp_path, sample_data, schema):
    meta = _run(tmp_path, sample_data, schema)
    train, test = read_dataset(tmp_path / "train.parquet"), read_dataset(tmp_path / "test.parquet")
    assert len(train) == 2000 and len(test) == 2000
    assert list(train.columns[:2]) == ["year", "id"] and "employed" in train.columns
    assert spec_keys(tmp_path) == ["year", "id"]
    transformer, spec = load_model(tmp_path / "transformer")
    out = transformer.transform(train[[f["name"] for f in spec["features"]]])
    assert out.shape == (2000, 16)
    # numeric first, scaled; categorical codes kept as they are for the GBDT
    assert abs(out[:, 0].mean()) < 1e-6
    assert spec["native_categorical_indices"] == list(range(1, 16))
    assert spec["categorical"] == sorted(spec["categorical"])
    np.testing.assert_array_equal(out[:, 1], train[spec["categorical"][0]].to_numpy())
    assert meta["train"]["rows"] == 2000


def spec_keys(path):
    return load_model(path / "transformer")[1]["keys"]


def test_random_split_is_stratified(tmp_path, sample_data, schema):
    split = {"method": "random", "test_fraction": 0.25, "seed": 3}
    _run(tmp_path, sample_data, schema, split=split)
    test = read_dataset(tmp_path / "test.parquet")
    assert len(test) == pytest.approx(1000, abs=2)
    assert test.employed.mean() == pytest.approx(sample_data.employed.mean(), abs=0.01)


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
@pytest.mark.parametrize("scaling", ["minmax", "robust", "none"])
def test_encodings_and_scalers(sample_data, schema, encoding, scaling):
    t = build_transformer(["AGEP"], ["SEX", "MAR"], scaling, encoding)
    out = t.fit_transform(sample_data[["AGEP", "SEX", "MAR"]])
    assert out.shape[1] == (1 + 2 + 5 if encoding == "onehot" else 3)
    if scaling == "minmax":
        assert out[:, 0].min() == 0 and out[:, 0].max() == 1


@pytest.mark.parametrize("method", ["mutual_info", "importance", "rfe"])
def test_selection_keeps_max_features(sample_data, schema, method):
    kept = select_features(sample_data, schema, method, 5, seed=0)
    assert len(kept) == 5 and set(kept) <= set(schema.feature_names)
    # age and schooling carry most of the signal for employment
    assert "AGEP" in kept


def test_missing_feature_column(tmp_path, sample_data, schema):
    with pytest.raises(DataError, match="'MAR' is missing"):
        _run(tmp_path, sample_data.drop(columns="MAR"), schema)


def test_empty_test_window(tmp_path, sample_data, schema):
    split = {**SPLIT, "test_window": [2018, 2018]}
    with pytest.raises(DataError, match="test split is empty"):
        _run(tmp_path, sample_data, schema, split=split)
    assert not (tmp_path / "train.parquet").exists()


def _schema_in_order(schema, names: list[str]) -> dict:
    """The schema as a task receives it, its features mapping in the order `names`."""
    data = schema.model_dump(mode="json")
    data["features"] = {n: data["features"][n] for n in names}
    return data


@pytest.mark.parametrize("selection", ["none", "importance"])
def test_feature_order_does_not_depend_on_the_schema_mapping_order(
    tmp_path, sample_data, schema, selection
):
    # a KFP struct parameter (a protobuf map) reaches each task with its keys in another order
    src = tmp_path / "data.parquet"
    sample_data.to_parquet(src)
    names = schema.feature_names
    outputs = []
    for i, order in enumerate([names, names[::-1], names[1::2] + names[::2]]):
        out = tmp_path / str(i)
        meta = run(
            str(src),
            _schema_in_order(schema, order),
            _cfg(feature_selection=selection, max_features=8),
            str(out / "train.parquet"),
            str(out / "test.parquet"),
            str(out / "transformer"),
        )
        outputs.append(meta)
    digests = {
        (m["transformer"]["sha256"], m["train"]["sha256"], m["test"]["sha256"]) for m in outputs
    }
    assert len(digests) == 1
    features = outputs[0]["transformer"]["features"]
    numeric = [f for f in features if schema.features[f].kind == "numeric"]
    assert features == sorted(numeric) + sorted(set(features) - set(numeric))
