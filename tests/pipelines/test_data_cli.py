"""pipelines/data_cli.py: `mlpipe data list | show | watermarks | reset-watermark | upload`
through the real CLI (`pipelines.cli.main`), on a real state store in a temporary folder and real
files (upload to local fsspec URLs). Which store: --state-dir, else MLPIPE_STATE_DIR, else
<output-dir>/state."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from components.common.runtime_env import STATE_ENV
from components.ingest.state import StateStore
from pipelines.cli import main
from pipelines.data_cli import upload

A, B = "a" * 64, "ab" + "c" * 62  # two content digests; "a" is a prefix of both


@pytest.fixture(autouse=True)
def no_state_env(monkeypatch):
    monkeypatch.delenv(STATE_ENV, raising=False)


def _mlpipe(*argv: str) -> int:
    return main(["data", *argv])


def _add(store: StateStore, tmp_path: Path, sha: str, **entry) -> dict:
    """A catalogue entry for a small dataset file, as ingest records it."""
    data = tmp_path / f"{sha[:6]}.parquet"
    data.write_bytes(sha.encode())
    return store.add_version(
        str(data), {"content_sha256": sha, "version": f"sha256:{sha[:6]}", **entry}
    )


def _record(value: int, sha: str) -> dict:
    return {"value": value, "content_sha256": sha, "version": sha[:6], "column": "year"}


# ---------------------------------------------------------------- which store


def test_an_empty_store_lists_nothing_and_says_where_it_looked(tmp_path, capsys):
    assert _mlpipe("list", "--output-dir", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert f"no dataset versions in {tmp_path / 'state'}" in out
    assert _mlpipe("watermarks", "--state-dir", str(tmp_path / "s")) == 0
    assert f"no watermarks in {tmp_path / 's'}" in capsys.readouterr().out


def test_state_dir_beats_the_environment_which_beats_the_output_dir(tmp_path, monkeypatch, capsys):
    flag, env, out = (StateStore(tmp_path / name) for name in ("flag", "env", "out/state"))
    for store, sha in ((flag, "f" * 64), (env, "e" * 64), (out, "d" * 64)):
        _add(store, tmp_path, sha)
    monkeypatch.setenv(STATE_ENV, env.root)
    assert _mlpipe("list", "--state-dir", flag.root, "--output-dir", str(tmp_path / "out")) == 0
    listed = capsys.readouterr().out
    assert "sha256:ffffff" in listed and "eeeeee" not in listed and "dddddd" not in listed
    assert _mlpipe("list", "--output-dir", str(tmp_path / "out")) == 0
    listed = capsys.readouterr().out
    assert "sha256:eeeeee" in listed and "dddddd" not in listed
    monkeypatch.delenv(STATE_ENV)
    assert _mlpipe("list", "--output-dir", str(tmp_path / "out")) == 0
    assert "sha256:dddddd" in capsys.readouterr().out


# ---------------------------------------------------------------- list and show


def test_list_prints_one_row_per_version(tmp_path, capsys):
    store = StateStore(tmp_path / "state")
    _add(
        store,
        tmp_path,
        A,
        rows=12345,
        source_type="file",
        source="data/first.parquet",
        window={"start": 2015, "end": 2016},
        watermark={"column": "year", "from": 2014, "to": {"value": 2016}},
    )
    _add(store, tmp_path, A, source="s3://b/landed.csv")  # the same content from a second source
    store.mark_committed(A)
    _add(
        store,
        tmp_path,
        B,
        rows=7,
        source_type="url",
        source="s3://b/x.parquet",
        watermark={"column": "year", "from": None, "to": {"value": 2018}},
    )
    assert _mlpipe("list", "--state-dir", store.root) == 0
    lines = capsys.readouterr().out.splitlines()
    first = next(line for line in lines if line.startswith("sha256:aaaaaa"))
    assert "12,345" in first and " committed " in first and " 2015-2016 " in first
    assert "year >2014 .. 2016" in first
    assert first.endswith("data/first.parquet, s3://b/landed.csv")  # every source, first first
    second = next(line for line in lines if line.startswith("sha256:abcccc"))
    assert " ingested " in second and " all " in second and "year all .. 2018" in second
    assert lines[-1].startswith(f"2 version(s) in {store.root}")
    assert "dataset_version=<version>" in lines[-1]


def test_list_json_prints_the_catalogue_entries(tmp_path, capsys):
    store = StateStore(tmp_path / "state")
    _add(store, tmp_path, A, rows=3)
    assert _mlpipe("list", "--json", "--state-dir", store.root) == 0
    assert json.loads(capsys.readouterr().out) == store.entries()
    empty = str(tmp_path / "empty")
    assert _mlpipe("list", "--json", "--state-dir", empty) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_an_entry_from_before_sources_lists_its_one_source(tmp_path, capsys):
    store = StateStore(tmp_path / "state")
    old = {"content_sha256": A, "version": "sha256:aaaaaa", "source": "old.csv", "rows": 1}
    (tmp_path / "state" / "versions").mkdir(parents=True)
    (tmp_path / "state" / "versions" / f"{A}.json").write_text(json.dumps(old))
    assert _mlpipe("list", "--state-dir", store.root) == 0
    row = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sha256:aaaaaa"))
    assert row.endswith(" old.csv")


def test_show_finds_a_version_by_a_unique_prefix(tmp_path, capsys):
    store = StateStore(tmp_path / "state")
    _add(store, tmp_path, A, rows=3)
    _add(store, tmp_path, B, rows=4)
    assert _mlpipe("show", "--state-dir", store.root, "sha256:ab") == 0
    assert json.loads(capsys.readouterr().out) == store.entry(B)


@pytest.mark.parametrize(
    ("prefix", "says"), [("zzzz", "is not in the catalogue"), ("a", "is ambiguous")]
)
def test_show_of_an_unknown_or_ambiguous_version_fails(tmp_path, capsys, prefix, says):
    store = StateStore(tmp_path / "state")
    _add(store, tmp_path, A)
    _add(store, tmp_path, B)
    assert _mlpipe("show", "--state-dir", store.root, prefix) == 1
    out = capsys.readouterr().out
    assert out.startswith("mlpipe data: ") and says in out


# ---------------------------------------------------------------- watermarks


def test_watermarks_prints_each_source_s_committed_mark(tmp_path, capsys):
    store = StateStore(tmp_path / "state")
    store.advance_watermark("src", None, {**_record(2016, A), "source": "s3://b/in.csv"})
    store.advance_watermark("other", None, _record(2018, B))
    assert _mlpipe("watermarks", "--state-dir", store.root) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    src = next(line for line in lines if line.startswith("src "))
    assert "year=2016" in src and "version aaaaaa" in src and src.endswith("s3://b/in.csv")


def test_the_cli_resets_through_the_store(tmp_path, monkeypatch, capsys):
    store = StateStore(tmp_path / "state")
    store.advance_watermark("src", None, _record(2016, A))
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "state"))
    assert main(["data", "reset-watermark", "src"]) == 0
    assert "removed watermark src" in capsys.readouterr().out
    assert main(["data", "reset-watermark", "src"]) == 1
    assert "no watermark 'src'" in capsys.readouterr().out
    # no claim left behind: the next first batch commits
    store.advance_watermark("src", None, _record(2017, B))
    assert store.watermark("src")["value"] == 2017


def test_reset_leaves_the_other_sources_alone(tmp_path, capsys):
    store = StateStore(tmp_path / "state")
    store.advance_watermark("src", None, _record(2016, A))
    store.advance_watermark("src2", None, _record(2016, B))
    assert _mlpipe("reset-watermark", "--state-dir", store.root, "src") == 0
    assert set(store.watermarks()) == {"src2"}
    assert _mlpipe("reset-watermark", "--state-dir", store.root, "sr") == 1  # not a prefix match
    assert set(store.watermarks()) == {"src2"}


# ---------------------------------------------------------------- upload


def test_upload_copies_the_file_and_reports_size_and_digest(tmp_path):
    local = tmp_path / "data.bin"
    local.write_bytes(b"rows\n" * 1000)
    target = tmp_path / "bucket" / "datasets" / "data.bin"
    target.parent.mkdir(parents=True)
    got = upload(local, f"file://{target}")
    assert got == {
        "url": f"file://{target}",
        "bytes": 5000,
        "sha256": hashlib.sha256(b"rows\n" * 1000).hexdigest(),
    }
    assert target.read_bytes() == local.read_bytes()
    local.write_bytes(b"new")  # again: the object is replaced
    assert upload(str(local), str(target))["bytes"] == 3 and target.read_bytes() == b"new"


def test_upload_of_a_missing_or_non_file_path_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        upload(tmp_path / "nope.parquet", str(tmp_path / "out.parquet"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        upload(tmp_path, str(tmp_path / "out.parquet"))  # a folder is not a file
    assert not (tmp_path / "out.parquet").exists()


def test_the_upload_command_reports_success_and_failure(tmp_path, capsys):
    local = tmp_path / "d.csv"
    local.write_text("a,b\n1,2\n")
    target = tmp_path / "uploaded.csv"
    assert _mlpipe("upload", str(local), str(target)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"uploaded {local} to {target} (8 bytes, sha256 ")
    assert target.read_text() == "a,b\n1,2\n"
    assert _mlpipe("upload", str(tmp_path / "missing.csv"), str(target)) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlpipe data upload: ") and "missing.csv: no such file" in err


# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    "argv", [[], ["show"], ["upload", "only-a-file"], ["reset-watermark"], ["nope"]]
)
def test_a_missing_subcommand_or_argument_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _mlpipe(*argv)
    assert exc.value.code == 2
    assert "usage: mlpipe data" in capsys.readouterr().err
