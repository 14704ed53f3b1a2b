"""The registry lock on an MLflow tracking server (`registry.lock`, mode "lease"): a real
`mlflow server`, real threads racing for it. Exactly one taker holds it, whatever the
interleaving of their calls; an expired lock is taken over by exactly one; a holder whose lock
was taken over does not delete the new holder's lock when it leaves."""

from __future__ import annotations

import json
import threading
import time

import mlflow
import pytest

from components.common import registry

WRITES = (
    "set_registered_model_tag",
    "create_registered_model",
    "rename_registered_model",
    "delete_registered_model",
)


class Gated:
    """A real MlflowClient whose first call sets `called`, and whose writes wait for `go`: forces
    an interleaving of two takers' calls."""

    def __init__(self, called, go, gated=WRITES, signal=None) -> None:
        self.inner, self.called, self.go = mlflow.MlflowClient(), called, go
        self.gated, self.signal = gated, signal  # signal: the calls that set `called` (all)

    def __getattr__(self, attr):
        method = getattr(self.inner, attr)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            if self.signal is None or attr in self.signal:
                self.called.set()
            if attr in self.gated:
                assert self.go.wait(30), f"{attr} never released"
            return method(*args, **kwargs)

        return call


@pytest.fixture()
def server(mlflow_server):
    mlflow_server.create_registered_model("m")
    return mlflow_server


def race(takers: dict[str, object], on_hold=None, hold: float = 0.0) -> dict[str, str]:
    """Each taker (what -> client) tries `lock` once in its own thread; returns what -> "held" |
    "locked". Holders keep the lock until every taker has tried."""
    results: dict[str, str] = {}
    tried = threading.Barrier(len(takers) + 1)

    def take(what: str, client) -> None:
        try:
            with registry.lock(client, "m", what, mode="lease"):
                results[what] = "held"
                if on_hold:
                    on_hold(what)
                time.sleep(hold)
                tried.wait(60)
        except registry.RegistryLocked:
            results[what] = "locked"
            tried.wait(60)

    threads = [threading.Thread(target=take, args=item) for item in takers.items()]
    for t in threads:
        t.start()
    tried.wait(60)
    for t in threads:
        t.join(60)
    return results


def test_racing_takers_exactly_one_holds(server):
    for _ in range(3):
        takers = {f"deploy {i}": mlflow.MlflowClient() for i in range(5)}
        results = race(takers)
        assert sorted(results.values()) == ["held"] + ["locked"] * 4, results


def test_both_read_free_then_write_one_after_the_other(server):
    """The interleaving a tag lease lost: A reads the lock free, B reads it free, A writes and
    confirms, then B writes. Both believed they held it."""
    a_called, b_called, a_holds = threading.Event(), threading.Event(), threading.Event()
    takers = {"deploy a": Gated(a_called, b_called), "deploy b": Gated(b_called, a_holds)}
    results = race(takers, on_hold=lambda what: what == "deploy a" and a_holds.set())
    assert results == {"deploy a": "held", "deploy b": "locked"}


def plant_expired(client, lock_id: str) -> None:
    """The lock of a holder that crashed: present, expired."""
    held = {"owner": "gone:1:x", "what": "deploy of version 9", "id": lock_id}
    client.create_registered_model(
        registry.lock_model_name("m"),
        tags={registry.LOCK_TAG: json.dumps(held), registry.LOCK_EXPIRES_TAG: str(time.time() - 1)},
    )


def holder(client) -> str | None:
    found = registry._lease_held(client, registry.lock_model_name("m"))
    return found[0]["what"] if found else None


def test_an_expired_lock_is_taken_over_by_exactly_one(server):
    plant_expired(server, "dead1")
    results = race({f"deploy {i}": mlflow.MlflowClient() for i in range(4)}, hold=0.5)
    assert sorted(results.values()) == ["held"] + ["locked"] * 3, results
    # both read the expired lock; B buries only after A took it over: B must not bury A's
    plant_expired(server, "dead2")
    a_read, b_read, a_holds = threading.Event(), threading.Event(), threading.Event()
    reads, renames = ("get_registered_model",), ("rename_registered_model",)
    takers = {
        "deploy a": Gated(a_read, b_read, gated=renames, signal=reads),
        "deploy b": Gated(b_read, a_holds, gated=renames, signal=reads),
    }
    seen = {}

    def on_hold(what):
        if what == "deploy a":
            a_holds.set()
            time.sleep(1.0)  # B's bury runs now
            seen["holder"] = holder(server)

    results = race(takers, on_hold=on_hold)
    assert results == {"deploy a": "held", "deploy b": "locked"}
    assert seen["holder"] == "deploy a"  # A's lock was never touched by B


class NoRenew:
    """A real client whose renewals fail: its holder's lease expires while it still runs."""

    def __init__(self) -> None:
        self.inner = mlflow.MlflowClient()

    def __getattr__(self, attr):
        if attr == "set_registered_model_tag":
            raise AttributeError(attr)
        return getattr(self.inner, attr)


def test_a_holder_taken_over_does_not_release_the_new_holders_lock(server, monkeypatch):
    monkeypatch.setenv(registry.LOCK_TTL_ENV, "4")
    a = registry.lock(NoRenew(), "m", "deploy a", mode="lease")
    a.__enter__()
    time.sleep(4.5)  # A's lease expired: A is stuck, not dead
    with registry.lock(mlflow.MlflowClient(), "m", "deploy b", mode="lease"):
        a.__exit__(None, None, None)  # A finishes and releases what it believes it holds
        assert holder(server) == "deploy b"
        with pytest.raises(registry.RegistryLocked, match="deploy b"):
            registry.lock(mlflow.MlflowClient(), "m", "deploy c", mode="lease").__enter__()
    assert holder(server) is None  # B released its own


def test_lock_models_are_reserved_and_never_a_users_model(server):
    with pytest.raises(registry.RegistryError, match="reserved"):
        registry.lock(server, f"m{registry.LOCK_SUFFIX}", mode="lease").__enter__()
    server.create_registered_model(registry.lock_model_name("n"))  # someone else's model
    with pytest.raises(registry.RegistryError, match="no mlpipe lock"):
        registry.lock(server, "n", mode="lease").__enter__()
    with registry.lock(server, "m", mode="lease"):
        names = [rm.name for rm in server.search_registered_models()]
        assert registry.lock_model_name("m") in names
        assert [n for n in names if not registry.is_lock_model(n)] == ["m"]
