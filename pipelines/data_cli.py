"""`mlpipe data`: the dataset versions and watermarks that ingest recorded in the state store.

mlpipe data list [--state-dir D | --output-dir D] [--json]
mlpipe data show VERSION
mlpipe data watermarks
mlpipe data reset-watermark STATE_KEY      (the next incremental run loads from the start again)
mlpipe data upload FILE URL                (e.g. the bundled dataset to a cluster's object store)

The state store is `MLPIPE_STATE_DIR`, else `<output-dir>/state` (`mlpipe run` sets the variable
for its tasks to that folder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.cli_args import add_output_dir_arg


def _store(args: argparse.Namespace):
    from components.common.runtime_env import STATE_ENV
    from components.ingest.state import StateStore

    root = args.state_dir or os.environ.get(STATE_ENV) or str(Path(args.output_dir) / "state")
    return StateStore(root)


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else ""


def _window(entry: dict[str, Any]) -> str:
    window = entry.get("window")
    return f"{window['start']}-{window['end']}" if window else "all"


def _watermark(entry: dict[str, Any]) -> str:
    wm = entry.get("watermark")
    if not wm:
        return ""
    low = wm.get("from")
    return f"{wm['column']} {'>' + str(low) if low is not None else 'all'} .. {wm['to']['value']}"


def _sources(entry: dict[str, Any]) -> list[str]:
    """Every source the version was read from (entries written before `sources` have one)."""
    return list(entry.get("sources") or [entry.get("source") or ""])


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    entries = store.entries()
    if args.json:
        print(json.dumps(entries, indent=2, default=str))
        return 0
    if not entries:
        print(f"no dataset versions in {store.root} (run the pipeline first)")
        return 0
    print(
        f"{'version':<13} {'created':<19} {'rows':>10} {'type':<5} {'status':<9} "
        f"{'window':<9} {'watermark':<22} source"
    )
    for e in entries:
        print(
            f"{e['version']:<13} {_when(e.get('created_at')):<19} {e.get('rows', 0):>10,} "
            f"{e.get('source_type', ''):<5} {e.get('status', ''):<9} {_window(e):<9} "
            f"{_watermark(e):<22} {', '.join(_sources(e))}"
        )
    print(
        f"\n{len(entries)} version(s) in {store.root}; pin one with "
        "--set data_ingestion.dataset_version=<version>"
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from components.common.errors import StageError

    try:
        entry = _store(args).resolve_version(args.version)
    except StageError as exc:
        print(f"mlpipe data: {exc}")
        return 1
    print(json.dumps(entry, indent=2, default=str))
    return 0


def cmd_watermarks(args: argparse.Namespace) -> int:
    store = _store(args)
    marks = store.watermarks()
    if not marks:
        print(f"no watermarks in {store.root}")
    for key, mark in marks.items():
        print(
            f"{key:<24} {mark.get('column', '')}={mark.get('value')!r:<12} "
            f"version {mark.get('version', '')}  committed {_when(mark.get('committed_at'))}  "
            f"{mark.get('source', '')}"
        )
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    store = _store(args)
    if not store.reset_watermark(args.state_key):
        print(f"no watermark {args.state_key!r} in {store.root}")
        return 1
    print(f"removed watermark {args.state_key}: the next incremental run loads from the start")
    return 0


def upload(local: str | Path, url: str) -> dict[str, Any]:
    """Copy a local file to `url` (any fsspec URL; S3 endpoint and credentials from the
    environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) and check what arrived: size and
    sha256 equal the local file's, else the object is removed and an error raised."""
    import fsspec

    from components.common.artifacts import sha256_file

    local = Path(local)
    if not local.is_file():
        raise FileNotFoundError(f"{local}: no such file")
    fs, path = fsspec.core.url_to_fs(url)
    fs.put_file(str(local), path)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    want = sha256_file(local)
    if digest.hexdigest() != want:
        fs.rm(path)
        raise OSError(f"{url}: the uploaded object differs from {local}; removed it")
    return {"url": url, "bytes": local.stat().st_size, "sha256": want}


def cmd_upload(args: argparse.Namespace) -> int:
    try:
        out = upload(args.file, args.url)
    except (OSError, ValueError) as exc:
        print(f"mlpipe data upload: {exc}", file=sys.stderr)
        return 1
    print(f"uploaded {args.file} to {out['url']} ({out['bytes']:,} bytes, sha256 {out['sha256']})")
    return 0


def add_data_parser(sub: Any) -> None:
    """Register `mlpipe data ...` on the CLI's subparsers."""
    data = sub.add_parser("data", help="dataset versions and watermarks recorded by ingest")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", default=None, help="state store (default: MLPIPE_STATE_DIR)")
        add_output_dir_arg(p)

    p = data_sub.add_parser("list", help="the dataset versions in the catalogue")
    common(p)
    p.add_argument("--json", action="store_true", help="print the catalogue entries as JSON")
    p.set_defaults(func=cmd_list)
    p = data_sub.add_parser("show", help="one version's catalogue entry")
    common(p)
    p.add_argument("version", help="a version id or a unique prefix")
    p.set_defaults(func=cmd_show)
    p = data_sub.add_parser("watermarks", help="the committed watermark of each source")
    common(p)
    p.set_defaults(func=cmd_watermarks)
    p = data_sub.add_parser("reset-watermark", help="forget a source's watermark")
    common(p)
    p.add_argument("state_key")
    p.set_defaults(func=cmd_reset)
    p = data_sub.add_parser("upload", help="copy a file to an object store (checked by sha256)")
    p.add_argument("file", help="a local file, e.g. data/acs_employment_ma_2015_2018.parquet")
    p.add_argument("url", help="where to, e.g. s3://mlpipe-data/datasets/<name>.parquet")
    p.set_defaults(func=cmd_upload)
