"""Unit tests of components/serve/follow.py: `AliasFollower` on a real MLflow registry (SQLite):
only an alias URI can be followed; a check swaps in the version the alias names when it changed
(and only then); a failing load or lookup leaves the served model alone and the background loop
retries it at the next check; stop ends the loop. No server is started: the follower gets plain
callables for what the server's app does (what it serves now, load a version, swap it in)."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest

from components.serve.follow import AliasFollower
from components.serve.model_source import ModelSourceError
from tests.support.mlflow_env import use_local_store

_names = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One real MLflow store (SQLite) for the module: creating one takes seconds."""
    import mlflow

    with pytest.MonkeyPatch.context() as mp:
        use_local_store(mp, tmp_path_factory.mktemp("follow"), "t")
        yield mlflow.MlflowClient()


@pytest.fixture()
def registry(store, tmp_path):
    """(client, name): a model of this test's own with versions 1..3 (no artifacts: nothing is
    downloaded)."""
    name = f"m{next(_names)}"
    store.create_registered_model(name)
    for _ in range(3):
        store.create_model_version(name, source=(tmp_path / "model").as_uri())
    return store, name


def alias(registry, version: str) -> str:
    """Point the test model's `champion` at `version`; returns the URI that follows it."""
    client, name = registry
    client.set_registered_model_alias(name, "champion", version)
    return f"models:/{name}@champion"


class Server:
    """What the server's app gives the follower: the served version and a swap; `load` records
    every version asked for and can be made to fail."""

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.loaded: list[str] = []
        self.swapped: list[dict] = []
        self.fail: Exception | None = None
        self.swap_seen = threading.Event()

    def load(self, version: str) -> dict:
        self.loaded.append(version)
        if self.fail is not None:
            raise self.fail
        return {"version": version}

    def swap(self, model: dict) -> None:
        self.swapped.append(model)
        self.version = model["version"]
        self.swap_seen.set()

    def follower(self, uri: str, interval_s: float = 10.0) -> AliasFollower:
        return AliasFollower(uri, lambda: self.version, self.load, self.swap, interval_s)


@pytest.mark.parametrize(
    "uri", ["models:/m/3", "models:/m", "models:/m@", "/models/m", "runs:/abc/model", ""]
)
def test_only_an_alias_uri_can_be_followed(uri):
    with pytest.raises(ValueError, match="only a models:/<name>@<alias> URI can be followed"):
        Server().follower(uri)


def test_a_check_with_the_alias_unchanged_does_nothing(registry):
    uri = alias(registry, "1")
    server = Server("1")
    assert server.follower(uri).check() is None
    assert server.loaded == [] and server.swapped == []


def test_a_check_swaps_in_the_version_the_alias_names_now(registry, caplog):
    uri = alias(registry, "2")
    server = Server("1")
    follower = server.follower(uri)
    with caplog.at_level(logging.WARNING, logger="mlpipe.serve"):
        assert follower.check() == "2"
    assert server.loaded == ["2"] and server.swapped == [{"version": "2"}]
    assert f"{uri} now names version 2: serving it" in caplog.text
    assert follower.check() is None  # now served: nothing more to do
    uri = alias(registry, "1")  # a rollback
    assert follower.check() == "1" and server.loaded == ["2", "1"]


def test_the_served_version_is_compared_as_text(registry):
    uri = alias(registry, "3")
    server = Server()
    follower = AliasFollower(uri, lambda: 3, server.load, server.swap)
    assert follower.check() is None and server.loaded == []


def test_a_failing_load_swaps_nothing_and_raises(registry):
    uri = alias(registry, "2")
    server = Server("1")
    server.fail = OSError("download failed")
    with pytest.raises(OSError, match="download failed"):
        server.follower(uri).check()
    assert server.swapped == [] and server.version == "1"


def test_an_alias_or_model_that_does_not_exist_is_a_model_source_error(registry):
    _, name = registry
    server = Server("1")
    with pytest.raises(ModelSourceError, match=f"models:/{name}@champion"):
        server.follower(f"models:/{name}@champion").check()  # no alias set yet
    with pytest.raises(ModelSourceError, match="models:/no-such-model@champion"):
        server.follower("models:/no-such-model@champion").check()
    assert server.loaded == []


def test_the_loop_keeps_serving_through_failures_and_retries(registry, caplog):
    uri = alias(registry, "2")
    server = Server("1")
    server.fail = OSError("registry unreachable")
    follower = server.follower(uri, interval_s=0.05)
    with caplog.at_level(logging.WARNING, logger="mlpipe.serve"):
        follower.start()
        try:
            deadline = time.monotonic() + 20
            while len(server.loaded) < 2:  # it failed and tried again
                assert time.monotonic() < deadline, "the follower never retried"
                time.sleep(0.02)
            assert server.version == "1" and server.swapped == []
            server.fail = None
            assert server.swap_seen.wait(20), "the follower never swapped after the failure"
        finally:
            follower.stop()
            follower._thread.join(10)
    assert not follower._thread.is_alive()
    assert server.version == "2"
    assert "registry unreachable (still serving version 1)" in caplog.text


def test_stop_ends_the_loop_before_its_next_check(registry):
    uri = alias(registry, "2")
    server = Server("1")
    follower = server.follower(uri, interval_s=30).start()
    assert follower._thread.daemon and follower._thread.name == "alias-follower"
    follower.stop()
    follower._thread.join(5)
    assert not follower._thread.is_alive() and server.loaded == []  # never checked
