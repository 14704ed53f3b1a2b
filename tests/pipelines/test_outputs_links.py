"""pipelines/outputs.py: a run's artifacts are placed in outputs/ as hard links, not copies."""

from __future__ import annotations

import errno
import os

from pipelines import outputs as out_mod
from pipelines.outputs import link_or_copy


def _tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "model.pkl").write_bytes(b"m" * 4096)
    (root / "sub" / "MLmodel").write_text("flavor")
    return root


def test_a_folder_and_a_file_are_linked_not_copied(tmp_path):
    src = _tree(tmp_path / "kfp" / "model")
    (tmp_path / "kfp" / "data.parquet").write_bytes(b"d" * 8192)
    assert link_or_copy(src, tmp_path / "models" / "run1") == "linked"
    assert link_or_copy(tmp_path / "kfp" / "data.parquet", tmp_path / "d" / "run1.parquet") == (
        "linked"
    )
    for rel in ("model.pkl", "sub/MLmodel"):
        a, b = (src / rel).stat(), (tmp_path / "models" / "run1" / rel).stat()
        assert a.st_ino == b.st_ino and a.st_nlink == 2  # the same bytes, two names
    assert (tmp_path / "d" / "run1.parquet").stat().st_ino == (
        tmp_path / "kfp" / "data.parquet"
    ).stat().st_ino
    # a second run of a cached task: one more name for the same inode, no new bytes
    link_or_copy(src, tmp_path / "models" / "run2")
    assert (src / "model.pkl").stat().st_nlink == 3
    # deleting one run's path (mlpipe clean) leaves the others readable
    (tmp_path / "models" / "run1" / "model.pkl").unlink()
    assert (tmp_path / "models" / "run2" / "model.pkl").read_bytes() == b"m" * 4096
    # placing it again on itself is a no-op, not an error
    assert link_or_copy(src / "model.pkl", tmp_path / "models" / "run2" / "model.pkl") == "linked"


def test_falls_back_to_a_copy_where_links_fail(tmp_path, monkeypatch):
    src = _tree(tmp_path / "kfp" / "model")

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(out_mod.os, "link", cross_device)
    assert link_or_copy(src, tmp_path / "models" / "r") == "copied"
    copied = tmp_path / "models" / "r" / "model.pkl"
    assert (
        copied.read_bytes() == b"m" * 4096
        and copied.stat().st_ino != (src / "model.pkl").stat().st_ino
    )
    assert not [p for p in (tmp_path / "models" / "r").rglob(".*tmp*")]  # no temp files left


def test_a_missing_source_writes_nothing(tmp_path):
    assert link_or_copy(tmp_path / "absent.html", tmp_path / "reports" / "r.html") == "missing"
    assert not (tmp_path / "reports").exists()
    assert os.listdir(tmp_path) == []
