"""The keyed store behind the alert log and the retraining triggers, on a local folder and on a
real S3 API (moto in server mode): a key is created once — the second create, even a concurrent
one, loses — updates merge, entries come back oldest first."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from components.common.keyed_store import KeyedStore


@pytest.fixture(scope="module")
def s3_url():
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    import s3fs

    # fsspec caches filesystems by their arguments, not the endpoint in the environment: an
    # instance of an earlier module's (stopped) server would be reused
    s3fs.S3FileSystem.clear_instance_cache()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for key, value in (("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")):
            env.setenv(key, value)
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="state")
        try:
            yield "s3://state/triggers"
        finally:
            server.stop()
            s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, s3_url):
    """s3_url (once for the module) even for the local store: requested lazily, its
    credentials would appear during a test and outlive it (the leak guard in conftest)."""
    if request.param == "local":
        return KeyedStore(tmp_path / "triggers")
    return KeyedStore(f"{s3_url}/{tmp_path.name}")


def test_a_key_is_created_once(store):
    assert store.create("batch:ab", {"ts": 1, "status": "claimed"})
    assert not store.create("batch:ab", {"ts": 2, "status": "claimed"})
    assert store.get("batch:ab")["ts"] == 1  # the first writer's document stands


def test_only_one_of_many_concurrent_creates_wins(store):
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda i: store.create("incident", {"writer": i}), range(8)))
    assert won.count(True) == 1


def test_update_merges_and_entries_are_oldest_first(store):
    store.create("b", {"ts": 2})
    store.create("a/with:odd chars", {"ts": 1})
    store.update("b", status="started", run_id="r1")
    assert store.update("missing", status="x") is None
    assert [e["key"] for e in store.entries()] == ["a/with:odd chars", "b"]
    assert store.get("b") == {"key": "b", "ts": 2, "status": "started", "run_id": "r1"}
