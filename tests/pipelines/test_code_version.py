"""Code versions (pipelines/code_version.py): which edits change a stage's digest (and so
kfp.local's cache key) and which leave it alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import code_version


@pytest.fixture
def components(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A small components tree of real files in place of the repository's; the memoised
    digests are cleared before and after, so neither side sees the other's."""
    root = tmp_path / "components"
    files = {
        "common/recorder.py": "RECORDS = 1\n",
        "common/config_sections/training.py": "ALGORITHMS = ['lightgbm']\n",
        "ingest/ingest.py": "def run(): return 1\n",
        "ingest/sources/files.py": "def read(): return 'parquet'\n",
        "train/train.py": "def run(): return 2\n",
        "serve/request_log.py": "def files(): return []\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setattr(code_version, "COMPONENTS", root)
    code_version.stage_version.cache_clear()
    code_version.package_version.cache_clear()
    yield root
    code_version.stage_version.cache_clear()
    code_version.package_version.cache_clear()


def _fresh(stage: str | None = None) -> str:
    code_version.stage_version.cache_clear()
    code_version.package_version.cache_clear()
    return code_version.package_version() if stage is None else code_version.stage_version(stage)


def test_the_repositorys_stages_have_short_distinct_stable_versions():
    versions = {s: code_version.stage_version(s) for s in ("ingest", "train", "deploy")}
    assert all(re.fullmatch(r"[0-9a-f]{16}", v) for v in versions.values())
    assert len(set(versions.values())) == 3
    assert re.fullmatch(r"[0-9a-f]{16}", code_version.package_version())
    assert code_version.package_version() not in versions.values()
    assert code_version.ENV_NAME == "MLPIPE_CODE_VERSION"


def test_editing_a_stage_changes_its_version_only(components):
    ingest, train, package = _fresh("ingest"), _fresh("train"), _fresh()
    (components / "train" / "train.py").write_text("def run(): return 3\n")
    assert _fresh("train") != train
    assert _fresh("ingest") == ingest
    assert _fresh() != package  # the lineage tag follows every stage's code


def test_editing_the_shared_runtime_changes_every_stage(components):
    ingest, train = _fresh("ingest"), _fresh("train")
    (components / "common" / "recorder.py").write_text("RECORDS = 2\n")
    assert _fresh("ingest") != ingest and _fresh("train") != train


def test_a_module_in_a_stages_subpackage_is_part_of_its_version(components):
    """A source reader (components/ingest/sources/) runs in the ingest task: editing it must not
    serve ingest's old result from the cache."""
    ingest, train = _fresh("ingest"), _fresh("train")
    (components / "ingest" / "sources" / "files.py").write_text("def read(): return 'csv'\n")
    assert _fresh("ingest") != ingest
    assert _fresh("train") == train


def test_a_module_in_the_shared_runtimes_subpackage_changes_every_stage(components):
    train = _fresh("train")
    (components / "common" / "config_sections" / "training.py").write_text("ALGORITHMS = []\n")
    assert _fresh("train") != train


def test_renaming_a_file_changes_the_version_and_other_files_do_not(components):
    train = _fresh("train")
    (components / "train" / "README.md").write_text("# notes\n")
    (components / "train" / "metadata.yaml").write_text("image: x\n")
    assert _fresh("train") == train  # only Python code counts
    (components / "train" / "train.py").rename(components / "train" / "fit.py")
    assert _fresh("train") != train  # the same bytes under another name are other code


def test_the_version_is_memoised_until_cleared(components):
    train = code_version.stage_version("train")
    (components / "train" / "train.py").write_text("def run(): return 4\n")
    assert code_version.stage_version("train") == train  # one digest per process
    assert _fresh("train") != train


def test_a_stage_without_a_folder_has_only_the_shared_runtimes_version(components):
    assert _fresh("nonexistent") == _fresh("another")
    assert _fresh("nonexistent") != _fresh("train")


def test_editing_the_model_server_library_changes_every_stage(components):
    """components/serve is imported by the shared runtime and by stages (monitor's cached
    load_batch reads request logs through serve.request_log): it is part of every version."""
    ingest, train = _fresh("ingest"), _fresh("train")
    (components / "serve" / "request_log.py").write_text("def files(): return ['log']\n")
    assert _fresh("ingest") != ingest and _fresh("train") != train
