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


def test_an_identical_rewrite_becomes_a_link_and_a_changed_one_stays(tmp_path):
    from pipelines.outputs import share_identical

    report = b"<html>" + b"p" * 50_000 + b"</html>"
    first = tmp_path / "reports" / "run1-evaluation.html"
    first.parent.mkdir()
    first.write_bytes(report)
    # a never-cached task (gate) wrote the same report again in its own folder
    again = tmp_path / "kfp" / "run2" / "report"
    again.parent.mkdir(parents=True)
    again.write_bytes(report)
    assert share_identical(again, [first]) == first
    assert again.stat().st_ino == first.stat().st_ino and again.read_bytes() == report
    # a changed report keeps its own bytes
    changed = tmp_path / "kfp" / "run3" / "report"
    changed.parent.mkdir(parents=True)
    changed.write_bytes(report.replace(b"p", b"q", 1))
    assert share_identical(changed, [first]) is None
    assert changed.stat().st_ino != first.stat().st_ino
    assert changed.read_bytes() != report
    # same size, other bytes: compared by content, not by size
    assert changed.stat().st_size == first.stat().st_size
    # nothing written (a failed gate): nothing to share
    assert share_identical(tmp_path / "kfp" / "absent", [first]) is None


def test_a_reruns_unchanged_small_outputs_link_to_the_previous_runs(tmp_path):
    from pipelines.outputs import share_with_previous_run

    kfp = tmp_path / "kfp"
    runs = [kfp / f"mlpipe-training-2026-12-03-14-5{i}-24-460659" for i in range(3)]
    for run in runs:
        (run / "gate").mkdir(parents=True)
        (run / "gate" / "blessing").write_text('{"blessed": true}')
        (run / "deploy").mkdir()
        (run / "deploy" / "executor_output.json").write_text(f'{{"uri": "{run}"}}')
    (kfp / ".kfp_cache").mkdir()  # not a run
    (kfp / "mlpipe-monitoring-2026-12-03-14-59-00-000000").mkdir()  # another pipeline's run
    assert share_with_previous_run(runs[0]) == 0  # the first run: nothing to share with
    assert share_with_previous_run(runs[1]) == 1
    assert share_with_previous_run(runs[2]) == 1
    inodes = {(r / "gate" / "blessing").stat().st_ino for r in runs}
    assert len(inodes) == 1  # one copy of the unchanged blessing for three runs
    # what differs (its own run's paths) keeps its own bytes
    assert len({(r / "deploy" / "executor_output.json").stat().st_ino for r in runs}) == 3
    assert (runs[2] / "deploy" / "executor_output.json").read_text() == f'{{"uri": "{runs[2]}"}}'
