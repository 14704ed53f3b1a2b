"""`mlpipe simulate`'s traffic against a real model server (127.0.0.1, its real request log):
a year's rows in large requests score as in small ones, and every request is collected from the
log as soon as it is flushed — no fixed wait, none missed."""

from __future__ import annotations

import json
import time

import pytest

import pipelines.simulate as sim
from components.common.artifacts import read_dataset
from pipelines.simulate import LoggingBackend, send_traffic
from tests.components.serve.conftest import train_model

pytestmark = pytest.mark.integration
NAME = "acs"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, sample_data, schema):
    return train_model(tmp_path_factory.mktemp("sim-model"), sample_data, schema)


@pytest.fixture(scope="module")
def served(model_dir, tmp_path_factory):
    backend = LoggingBackend(tmp_path_factory.mktemp("sim-logs"))
    url = backend.start(str(model_dir), NAME)
    yield backend, url
    backend.stop(url)


@pytest.fixture(scope="module")
def rows(model_dir, schema) -> list[dict]:
    test = read_dataset(model_dir.parent / "test.parquet")  # the sample's 2,000 rows of 2016
    return test[schema.feature_names].to_dict("records")


def test_a_years_requests_are_all_collected_once_flushed(served, rows, tmp_path, monkeypatch):
    backend, url = served
    monkeypatch.setattr(sim, "ROWS_PER_REQUEST", 700)  # 700 + 700 + 600 rows
    since = backend.offsets()
    send_traffic(url, NAME, rows, "y1-")
    t0 = time.monotonic()
    target = tmp_path / "requests.jsonl"
    assert backend.collect_all(since, target, "y1-", 3) == 3
    assert time.monotonic() - t0 < 10  # the log flushes about every second
    entries = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["request_id"] for e in entries] == ["y1-0", "y1-1", "y1-2"]
    assert [len(e["inputs"]) for e in entries] == [700, 700, 600]


def test_missing_requests_fail_after_the_timeout(served, rows, tmp_path):
    backend, url = served
    since = backend.offsets()
    send_traffic(url, NAME, rows[:10], "y2-")  # one request
    with pytest.raises(RuntimeError, match="hold 1 of the 2 requests y2-"):
        backend.collect_all(since, tmp_path / "requests.jsonl", "y2-", 2, timeout_s=2.0)


def test_large_requests_score_every_row_as_small_ones(served, rows, monkeypatch):
    url = served[1]
    large = send_traffic(url, NAME, rows, "y3-")  # the simulation's size: two requests
    monkeypatch.setattr(sim, "ROWS_PER_REQUEST", 50)  # the former size: 40 requests
    small = send_traffic(url, NAME, rows, "y4-")
    assert len(large) == len(rows) and large == small
