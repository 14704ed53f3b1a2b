"""A real server under load: health probes stay fast while 10k-row batches are scored (they run
in worker threads), and a 400 MB body — declared or streamed, on a hot route or one of KServe's
— is refused without the server's memory growing by it. Both print what they measured."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import orjson
import psutil
import pytest

from benchmarks.health_under_load import CLIENTS, NAME, ROWS, connect, one_round
from components.serve.launch import start_server
from tests.components.serve.conftest import valid_rows

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(lgbm_model_dir):
    with start_server(lgbm_model_dir, NAME) as running:
        yield running


@pytest.fixture(scope="module")
def big_body(lgbm_model_dir, test_rows):
    from components.common.artifacts import load_model

    _, spec = load_model(lgbm_model_dir)
    rows = valid_rows(test_rows, [f["name"] for f in spec["features"]], 500)
    return orjson.dumps({"instances": (rows * (ROWS // len(rows) + 1))[:ROWS]})


@pytest.mark.integration  # starts its own server
def test_health_probes_stay_fast_while_big_batches_are_scored(server, big_body):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()  # the worker is up
        result = one_round(server.url, big_body, 5.0, pool)
    print(
        f"\nhealth probe while {CLIENTS} clients post {ROWS}-row batches "
        f"({result['batches_answered']} answered): n={result['probes']} p50={result['p50_ms']} ms "
        f"p99={result['p99_ms']} ms max={result['max_ms']} ms"
    )
    assert result["probe_statuses"] == [200]
    assert result["batches_answered"] and result["batch_statuses"] == [200]
    # the acceptance is p99 <= 50 ms on a quiet machine; bounds with room for a shared CI box
    # (without the worker thread: p99 ~300 ms, max ~540 ms)
    assert result["p99_ms"] < 150 and result["max_ms"] < 400


def peak_rss_while(pid: int, action) -> tuple[float, float]:
    """(RSS before, peak RSS while `action()` runs) of process `pid`, in MB."""
    process, peak, stop = psutil.Process(pid), [0], threading.Event()
    before = process.memory_info().rss

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        action()
    finally:
        stop.set()
        sampler.join()
    return before / MB, max(peak[0], before) / MB


def send_streamed(url: str, path: str, total: int) -> int:
    """POST `total` bytes chunked until the server answers or stops reading; its status."""
    conn = connect(url)
    conn.putrequest("POST", path)
    conn.putheader("content-type", "application/json")
    conn.putheader("transfer-encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * MB
    try:
        for _ in range(total // MB):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except OSError:  # the server answered 413 and closed the connection
        pass
    return conn.getresponse().status


def send_declared(url: str, path: str, total: int) -> int:
    conn = connect(url)
    conn.putrequest("POST", path)
    conn.putheader("content-type", "application/json")
    conn.putheader("content-length", str(total))
    conn.endheaders()
    return conn.getresponse().status  # answered before any body byte is sent


@pytest.mark.integration  # starts its own server
@pytest.mark.parametrize("send", [send_declared, send_streamed])
@pytest.mark.parametrize("route", ["hot", "kserve"])
def test_a_400_mb_body_is_refused_without_growing_the_server(server, send, route):
    path = f"/v1/models/{NAME}:predict" if route == "hot" else f"/v2/models/{NAME}/versions/x/infer"
    status: list[int] = []
    before, peak = peak_rss_while(
        server.pid, lambda: status.append(send(server.url, path, 400 * MB))
    )
    print(f"\n{send.__name__} 400 MB to the {route} route: {status[0]}, "
          f"RSS {before:.0f} MB -> peak {peak:.0f} MB (+{peak - before:.0f} MB)")  # fmt: skip
    assert status == [413]
    assert peak - before < 64  # the limit is 32 MB
    conn = connect(server.url)
    conn.request("GET", "/v2/health/ready")
    assert conn.getresponse().status == 200
