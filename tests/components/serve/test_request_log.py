"""The request log is bounded: rotated by size, at most `backups` old files kept; every reader
(the serve helper, the monitor stage) reads the rotated files too, oldest first; both CLIs
take the bounds."""

from __future__ import annotations

import numpy as np

from components.monitor.batch import read_request_log as monitor_read
from components.serve.__main__ import build_parser
from components.serve.request_log import RequestLog, read_request_log, request_log_files
from pipelines.cli import build_parser as mlpipe_parser

FEATURES = [("AGEP", True), ("WKHP", False)]


def write(log: RequestLog, n: int) -> None:
    for i in range(n):
        raw, scores = np.array([[30.0 + i, 1.5]]), np.array([0.5])
        log.write(model="m", model_version="1", request_id=str(i), protocol="v1", status=200,
                  latency_ms=0.1, raw=raw, scores=scores)  # fmt: skip
        log.flush()


def test_the_log_rotates_by_size_and_keeps_at_most_backups_files(tmp_path):
    path = tmp_path / "requests.jsonl"
    log = RequestLog(path, FEATURES, flush_interval_s=60, max_bytes=1000, backups=2)
    write(log, 200)
    log.close()
    files = request_log_files(path)
    assert [f.name for f in files] == ["requests.jsonl.2", "requests.jsonl.1", "requests.jsonl"]
    assert all(f.stat().st_size <= 1000 for f in files)
    assert not (tmp_path / "requests.jsonl.3").exists()
    entries = read_request_log(path)  # the newest requests, in order, none lost within them
    ids = [int(e["request_id"]) for e in entries]
    assert ids == list(range(200 - len(ids), 200)) and 6 < len(ids) < 200
    rows, counts = monitor_read(path)
    assert counts["requests"] == len(ids) and list(rows["request_id"]) == [str(i) for i in ids]


def test_no_rotation_with_max_bytes_0(tmp_path):
    path = tmp_path / "requests.jsonl"
    log = RequestLog(path, FEATURES, flush_interval_s=60, max_bytes=0)
    write(log, 50)
    log.close()
    assert request_log_files(path) == [path] and len(read_request_log(path)) == 50


def test_both_clis_take_the_bounds():
    args = ["--model-dir", "d", "--model-name", "n"]
    defaults = build_parser().parse_args(args)
    assert (defaults.request_log_max_mb, defaults.request_log_backups) == (100, 5)
    assert defaults.max_body_bytes == 32 * 1024 * 1024
    parsed = build_parser().parse_args(
        [*args, "--request-log-max-mb", "5", "--request-log-backups", "2"]
    )
    assert (parsed.request_log_max_mb, parsed.request_log_backups) == (5, 2)
    parsed = mlpipe_parser().parse_args(
        ["serve", "--request-log-max-mb", "1", "--max-body-bytes", "9"]
    )
    assert (parsed.request_log_max_mb, parsed.request_log_backups, parsed.max_body_bytes) == (
        1,
        5,
        9,
    )
