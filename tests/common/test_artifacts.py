"""components/common/artifacts.py: whole numbers restored after KFP's doubles, atomic writes
(nothing replaced, no temporary left, old content kept when the block fails; readable modes
after success), the directory digest, Dataset and JSON artifacts, and model dirs loaded only
after their manifest checks out."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from components.common.artifacts import (
    FEATURE_SPEC_FILE,
    MODEL_FILE,
    atomic_dir,
    atomic_path,
    load_model,
    read_dataset,
    read_json,
    restore_ints,
    save_model,
    sha256_dir,
    sha256_file,
    write_dataset,
    write_json,
)
from components.common.model_integrity import MANIFEST_FILE, ModelIntegrityError, write_manifest


class Boom(Exception):
    """Raised inside an atomic block: the write failed half-way."""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- restore_ints


def test_restore_ints_turns_whole_floats_back_into_ints_at_any_depth():
    through_kfp = {
        "rows": 137911.0,
        "window": [2015.0, 2016.0],
        "nested": {"deep": [{"n": -3.0}], "zero": 0.0},
    }
    restored = restore_ints(through_kfp)
    assert restored == {
        "rows": 137911,
        "window": [2015, 2016],
        "nested": {"deep": [{"n": -3}], "zero": 0},
    }
    assert type(restored["rows"]) is int and type(restored["window"][0]) is int
    assert type(restored["nested"]["deep"][0]["n"]) is int


def test_restore_ints_keeps_fractions_bools_and_other_values():
    value = {"share": 0.25, "flag": True, "off": False, "text": "2015.0", "none": None, "n": 7}
    restored = restore_ints(value)
    assert restored == value
    assert type(restored["share"]) is float
    assert restored["flag"] is True and restored["off"] is False  # bools are not numbers here
    assert math.isnan(restore_ints(float("nan")))  # not whole: stays a float
    assert restore_ints(float("inf")) == float("inf")


# ---------------------------------------------------------------- atomic_path


def test_atomic_path_moves_the_file_into_place_readable_by_others(tmp_path):
    target = tmp_path / "new" / "dir" / "out.txt"  # parents are created
    with atomic_path(target, ".txt") as tmp:
        assert tmp.parent == target.parent and tmp != target and not target.exists()
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert _mode(target) == 0o644  # mkstemp's 0600 would lock out a reader in another container
    assert os.listdir(target.parent) == ["out.txt"]


def test_atomic_path_replaces_nothing_and_leaves_no_temporary_when_the_block_raises(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_path_keeps_the_old_content_when_a_rewrite_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise Boom
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


# ---------------------------------------------------------------- atomic_dir


def test_atomic_dir_replaces_the_whole_old_directory_on_success(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("from the last run")
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        (tmp / "fresh.bin").write_text("x")
    assert sorted(os.listdir(target)) == ["fresh.bin"]  # the old file does not linger
    assert _mode(target) == 0o755
    assert os.listdir(tmp_path) == ["model"]


def test_atomic_dir_keeps_the_old_directory_and_leaves_no_temporary_when_the_block_raises(
    tmp_path,
):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with pytest.raises(Boom), atomic_dir(target) as tmp:
        (tmp / "new.bin").write_text("new")
        raise Boom
    assert sorted(os.listdir(target)) == ["old.bin"] and (target / "old.bin").read_text() == "old"
    assert os.listdir(tmp_path) == ["model"]


def test_atomic_dir_creates_nothing_when_the_first_write_fails(tmp_path):
    target = tmp_path / "parent" / "model"
    with pytest.raises(Boom), atomic_dir(target):
        raise Boom
    assert not target.exists() and os.listdir(tmp_path / "parent") == []


# ---------------------------------------------------------------- sha256_dir


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


FILES = {"a.txt": "alpha", "sub/b.txt": "beta", "sub/deeper/c.bin": "gamma"}


def test_sha256_dir_does_not_depend_on_the_order_files_were_created(tmp_path):
    forward = _tree(tmp_path / "one", FILES)
    backward = _tree(tmp_path / "two", dict(reversed(FILES.items())))
    assert sha256_dir(forward) == sha256_dir(backward)


@pytest.mark.parametrize(
    "change",
    [
        {"a.txt": "alphA"},  # content
        {"sub/b.txt": None, "sub/B.txt": "beta"},  # name
        {"sub/b.txt": None, "b.txt": "beta"},  # same name, other folder
        {"extra.txt": ""},  # one more (empty) file
    ],
    ids=["content", "name", "folder", "extra-file"],
)
def test_sha256_dir_changes_with_a_file_name_or_content(tmp_path, change):
    before = sha256_dir(_tree(tmp_path / "d", FILES))
    for rel, text in change.items():
        if text is None:
            (tmp_path / "d" / rel).unlink()
        else:
            _tree(tmp_path / "d", {rel: text})
    assert sha256_dir(tmp_path / "d") != before


# ---------------------------------------------------------------- datasets


def test_write_dataset_returns_the_metadata_of_what_it_wrote(tmp_path):
    df = pd.DataFrame({"age": [30, 41, 52], "employed": [1, 0, 1], "state": ["MA", "MA", None]})
    meta = write_dataset(df, tmp_path / "out" / "data.parquet")
    assert meta == {
        "rows": 3,
        "columns": ["age", "employed", "state"],
        "sha256": sha256_file(tmp_path / "out" / "data.parquet"),
        "format": "parquet",
    }
    pd.testing.assert_frame_equal(read_dataset(tmp_path / "out" / "data.parquet"), df)
    only = read_dataset(tmp_path / "out" / "data.parquet", columns=["employed"])
    assert list(only.columns) == ["employed"]


def test_write_dataset_of_an_empty_frame_says_zero_rows(tmp_path):
    meta = write_dataset(pd.DataFrame({"x": pd.Series([], dtype="int64")}), tmp_path / "d.parquet")
    assert meta["rows"] == 0 and meta["columns"] == ["x"]
    assert len(read_dataset(tmp_path / "d.parquet")) == 0


def test_a_dataset_that_cannot_be_written_leaves_the_previous_one(tmp_path):
    path = tmp_path / "data.parquet"
    first = write_dataset(pd.DataFrame({"x": [1, 2]}), path)
    mixed = pd.DataFrame({"x": [1, "two"]}, dtype=object)  # Parquet has no int-or-text column
    with pytest.raises(ValueError, match="Could not convert 'two'"):  # pyarrow's ArrowInvalid
        write_dataset(mixed, path)
    assert sha256_file(path) == first["sha256"]
    assert os.listdir(tmp_path) == ["data.parquet"]


# ---------------------------------------------------------------- JSON


def test_write_json_serialises_numpy_values_and_paths(tmp_path):
    obj = {
        "rows": np.int64(5),
        "auc": np.float32(0.5),
        "scores": np.array([0.25, 0.75]),
        "grid": np.arange(4).reshape(2, 2),
        "model": tmp_path / "m",
    }
    write_json(obj, tmp_path / "out.json")
    assert read_json(tmp_path / "out.json") == {
        "rows": 5,
        "auc": 0.5,
        "scores": [0.25, 0.75],
        "grid": [[0, 1], [2, 3]],
        "model": str(tmp_path / "m"),
    }
    assert _mode(tmp_path / "out.json") == 0o644


def test_write_json_refuses_an_unserialisable_object_and_keeps_the_previous_file(tmp_path):
    path = tmp_path / "out.json"
    write_json({"ok": 1}, path)
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json({"ok": 2, "bad": object()}, path)
    assert read_json(path) == {"ok": 1}
    assert os.listdir(tmp_path) == ["out.json"]


# ---------------------------------------------------------------- model dirs


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    return LogisticRegression().fit(x, y), x


SPEC = {"features": [{"name": f"x{i}", "dtype": "float"} for i in range(3)], "label": "y"}


def test_save_and_load_model_round_trip(tmp_path, fitted):
    model, x = fitted
    meta = save_model(model, tmp_path / "model", SPEC)
    assert meta["format"] == "joblib" and len(meta["sha256"]) == 64
    assert sorted(os.listdir(tmp_path / "model")) == sorted(
        [FEATURE_SPEC_FILE, MANIFEST_FILE, MODEL_FILE]
    )
    loaded, spec = load_model(tmp_path / "model", meta["sha256"])
    assert spec == SPEC
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert json.loads((tmp_path / "model" / FEATURE_SPEC_FILE).read_text()) == SPEC


def test_load_model_refuses_a_tampered_model_file(tmp_path, fitted):
    meta = save_model(fitted[0], tmp_path / "model", SPEC)
    joblib_file = tmp_path / "model" / MODEL_FILE
    joblib_file.write_bytes(joblib_file.read_bytes() + b"\0")
    for expected in (None, meta["sha256"]):
        with pytest.raises(ModelIntegrityError, match=f"changed: {MODEL_FILE}"):
            load_model(tmp_path / "model", expected)


def test_load_model_refuses_a_wrong_expected_digest(tmp_path, fitted):
    save_model(fitted[0], tmp_path / "model", SPEC)
    with pytest.raises(ModelIntegrityError, match="not the recorded manifest"):
        load_model(tmp_path / "model", "0" * 64)


def test_a_swapped_model_is_refused_before_it_is_unpickled(tmp_path, fitted):
    """A replaced model.joblib with a manifest rewritten to match: the upstream digest stops it
    before joblib runs the pickle's code (here: creating a folder)."""
    meta = save_model(fitted[0], tmp_path / "model", SPEC)
    ran = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(ran),)

    joblib.dump(Payload(), tmp_path / "model" / MODEL_FILE)
    write_manifest(tmp_path / "model")
    with pytest.raises(ModelIntegrityError, match="not the recorded manifest"):
        load_model(tmp_path / "model", meta["sha256"])
    assert not ran.exists()
