"""The registry's state machine under crashes, rejections and concurrent moves, against a real
MLflow store (SQLite in a temporary folder; versions point at an empty folder: no model is
loaded here)."""

import json
import threading
import time

import mlflow
import pytest

from components.common import registry
from components.common.registry import CHALLENGER, CHAMPION, PREVIOUS, RegistryError
from components.deploy import deploy
from components.register import register
from pipelines.cli import main
from tests.support.crash import CrashingClient, Killed
from tests.support.registry import assert_invariants


@pytest.fixture()
def store(mlflow_store, tmp_path):
    (tmp_path / "model").mkdir()
    return mlflow_store


def add_versions(client, name: str, n: int, tmp_path) -> list[str]:
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    out = []
    for i in range(n):
        mv = client.create_model_version(
            name, (tmp_path / "model").as_uri(), tags={registry.DIGEST_TAG: f"{name}-{i}"}
        )
        out.append(str(mv.version))
    return out


def test_promote_moves_champion_before_previous(store, tmp_path):
    v1, v2 = add_versions(store, "m", 2, tmp_path)
    registry.promote(store, "m", v1)
    recorder = CrashingClient(crash_at=0)
    registry.promote(recorder, "m", v2)
    aliases = [args for call, args in recorder.writes if call == "set_registered_model_alias"]
    assert aliases == [("champion", v2), ("previous", v1)]
    statuses = [i for i, (call, _) in enumerate(recorder.writes) if call.endswith("version_tag")]
    alias_moves = [i for i, (call, _) in enumerate(recorder.writes) if "alias" in call]
    assert max(alias_moves) < min(statuses)  # status tags after every alias move


def _crash_then_rerun(name, operation, rerun) -> int:
    """`name(n)` sets up a registered model for the n-th try. Kill `operation` at its 1st,
    2nd, ... write until it runs through; after each kill `rerun` (a fresh client) finishes the
    job. Returns how many kill points there were."""
    n = 1
    while True:
        crashing, model = CrashingClient(n), name(n)
        try:
            operation(crashing, model)
        except Killed:
            rerun(mlflow.MlflowClient(), model)
            n += 1
            continue
        return n - 1


def test_crash_between_any_two_promote_writes(store, tmp_path):
    def setup(n: int) -> str:
        v1, v2, v3 = add_versions(store, f"p{n}", 3, tmp_path)
        registry.promote(store, f"p{n}", v1)
        registry.promote(store, f"p{n}", v2)
        registry.set_challenger(store, f"p{n}", v3)
        return f"p{n}"

    def rerun(client, name):
        assert registry.promote(client, name, "3") in ("2", None)
        held = assert_invariants(client, name)
        assert held == {CHAMPION: "3", PREVIOUS: "2"}

    points = _crash_then_rerun(setup, lambda c, name: registry.promote(c, name, "3"), rerun)
    assert points >= 4  # journal, champion, previous, challenger, statuses, journal
    assert assert_invariants(store, f"p{points + 1}") == {CHAMPION: "3", PREVIOUS: "2"}


def test_crash_between_any_two_rollback_writes(store, tmp_path):
    def setup(n: int) -> str:
        v1, v2 = add_versions(store, f"r{n}", 2, tmp_path)
        registry.promote(store, f"r{n}", v1)
        registry.promote(store, f"r{n}", v2)
        return f"r{n}"

    def rerun(client, name):
        try:
            assert registry.rollback(client, name, "p99") == ("2", "1")
        except RegistryError as exc:  # the interrupted rollback was finished by reconcile
            assert "no previous champion distinct" in str(exc)
        held = assert_invariants(client, name)
        assert held == {CHAMPION: "1"}
        assert client.get_model_version(name, "2").tags[registry.REJECTED_TAG] == "rolled back: p99"

    points = _crash_then_rerun(setup, lambda c, name: registry.rollback(c, name, "p99"), rerun)
    assert points >= 3


def test_crash_between_any_two_register_writes(store, tmp_path, monkeypatch):
    with mlflow.start_run() as active:
        run_id = active.info.run_id
    uri = (tmp_path / "model").as_uri()

    def setup(n: int) -> str:
        (v1,) = add_versions(store, f"g{n}", 1, tmp_path)
        registry.promote(store, f"g{n}", v1)
        return f"g{n}"

    def register_run(client, name):
        monkeypatch.setattr(registry, "client", lambda *_: client)
        return register.run(name, uri, run_id, "digest-new", {"roc_auc": 0.9}, {})

    def rerun(client, name):
        out = register_run(client, name)
        assert out["alias"] == CHALLENGER
        registry.promote(client, name, out["version"])
        held = assert_invariants(client, name)
        assert held == {CHAMPION: out["version"], PREVIOUS: "1"}
        assert len(client.search_model_versions(f"name = '{name}'")) == 2

    assert _crash_then_rerun(setup, register_run, rerun) >= 2


def test_reconcile_repairs_champion_equal_to_previous_and_stale_statuses(store, tmp_path):
    v1, v2 = add_versions(store, "m", 2, tmp_path)
    registry.promote(store, "m", v1)
    # what the old order (previous before champion) left after a crash
    store.set_registered_model_alias("m", PREVIOUS, v1)
    store.set_model_version_tag("m", v2, registry.STATUS_TAG, CHAMPION)
    registry.reconcile(store, "m")
    assert assert_invariants(store, "m") == {CHAMPION: v1}


def test_rollback_refuses_without_a_distinct_previous(store, tmp_path):
    v1, v2 = add_versions(store, "m", 2, tmp_path)
    registry.promote(store, "m", v1)
    with pytest.raises(RegistryError, match="no previous champion distinct"):
        registry.rollback(store, "m", "no previous")
    store.set_registered_model_alias("m", PREVIOUS, v1)  # previous == champion
    with pytest.raises(RegistryError, match="no previous champion distinct"):
        registry.rollback(store, "m", "same")
    assert not registry.is_rejected(store.get_model_version("m", v1))
    assert registry.held_aliases(store, "m") == {CHAMPION: v1}
    # a previous that was rejected meanwhile is not rolled back to either
    registry.promote(store, "m", v2)
    registry.reject(store, "m", v1, "bias")
    with pytest.raises(RegistryError, match="no previous champion distinct"):
        registry.rollback(store, "m", "again")
    assert_invariants(store, "m")


def test_a_rejected_version_stays_rejected(store, tmp_path, capsys):
    with mlflow.start_run() as active:
        run_id = active.info.run_id
    uri = (tmp_path / "model").as_uri()

    def reg(digest, approval=False):
        return register.run("m", uri, run_id, digest, {"roc_auc": 0.9}, {}, approval)

    registry.promote(store, "m", reg("a")["version"])
    v2 = reg("b")["version"]
    registry.reject(store, "m", v2, "rolled back: canary error rate")  # the deploy stage's move
    # a cached train registers the same model again, with approval required
    again = reg("b", approval=True)
    assert again["version"] == v2 and again["alias"] == "rejected"
    assert not again["awaiting_approval"]
    assert registry.held_aliases(store, "m") == {CHAMPION: "1"}
    assert store.get_model_version("m", v2).tags[registry.STATUS_TAG] == "rejected"
    with pytest.raises(RegistryError, match="was rejected"):
        registry.set_challenger(store, "m", v2)
    # the deploy stage does not announce it as awaiting approval (nor validate it)
    out = deploy.run("m", v2, str(tmp_path), str(tmp_path / "none"), {}, awaiting_approval=True)
    assert out["outcome"] == "rejected" and out["champion"] == "1"
    # `mlpipe models` shows it rejected, even with an alias a crash left on it
    store.set_registered_model_alias("m", CHALLENGER, v2)
    assert main(["models", "--model", "m"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].split()[:3] == [v2, "challenger", "rejected"]
    registry.reconcile(store, "m")
    assert registry.held_aliases(store, "m") == {CHAMPION: "1"}


def test_one_deploy_at_a_time_file_lock(store, tmp_path, capsys):
    v1, v2 = add_versions(store, "m", 2, tmp_path)
    registry.promote(store, "m", v1)
    registry.promote(store, "m", v2)
    with registry.lock(store, "m", "deploy of version 3", mode="file"):
        with pytest.raises(registry.RegistryLocked, match="locked by deploy of version 3"):
            deploy.run("m", v2, str(tmp_path), str(tmp_path / "none"), {})
        assert main(["rollback", "--model", "m"]) == 1
        assert "locked by deploy of version 3" in capsys.readouterr().err
    assert registry.held_aliases(store, "m") == {CHAMPION: v2, PREVIOUS: v1}
    with registry.lock(store, "m", mode="file"):  # released
        pass


def test_one_deploy_at_a_time_tag_lease(store, tmp_path, monkeypatch):
    add_versions(store, "m", 1, tmp_path)
    lock_name = registry.lock_model_name("m")
    with registry.lock(store, "m", "deploy of version 1", mode="lease"):
        tags = store.get_registered_model(lock_name).tags
        assert json.loads(tags[registry.LOCK_TAG])["what"] == "deploy of version 1"
        assert float(tags[registry.LOCK_EXPIRES_TAG]) > time.time()
        second = registry.lock(store, "m", mode="lease")
        with pytest.raises(registry.RegistryLocked, match="locked by .*deploy of version 1"):
            second.__enter__()
    assert not store.search_registered_models(f"name = '{lock_name}'")  # released
    # a crashed holder's lease expires
    dead = {"owner": "gone:1:x", "what": "deploy", "id": "dead"}
    store.create_registered_model(
        lock_name,
        tags={registry.LOCK_TAG: json.dumps(dead), registry.LOCK_EXPIRES_TAG: str(time.time() - 1)},
    )
    with registry.lock(store, "m", mode="lease"):
        pass
    # a short lease is renewed while held (every third of it: a 0.3 s lease, renewed by SQLite
    # writes every 0.1 s, expired now and then on a busy machine; 1 s leaves room)
    monkeypatch.setenv(registry.LOCK_TTL_ENV, "1.0")
    with registry.lock(store, "m", mode="lease"):
        time.sleep(1.6)
        with pytest.raises(registry.RegistryLocked):
            registry.lock(store, "m", mode="lease").__enter__()


def test_register_waits_for_a_deploy_and_never_makes_the_champion_challenger(
    store, tmp_path, monkeypatch
):
    """Two runs of the same model: run A's deploy promotes version 2 while run B's register of
    the same model (same digest: version 2 again) reads the champion. Without the lock around
    register's move, B read champion 1, A promoted 2, then B made 2 challenger: champion and
    challenger on one version. The interleaving is forced: B's champion read waits for A's
    promote when it can happen first."""
    with mlflow.start_run() as active:
        run_id = active.info.run_id
    uri = (tmp_path / "model").as_uri()
    register.run("m", uri, run_id, "a", {"roc_auc": 0.9}, {})
    registry.promote(store, "m", "1")
    assert register.run("m", uri, run_id, "b", {"roc_auc": 0.9}, {})["alias"] == CHALLENGER
    champion_read, promoted = threading.Event(), threading.Event()

    class RunB:
        inner = mlflow.MlflowClient()

        def __getattr__(self, attr):
            return getattr(self.inner, attr)

        def get_model_version_by_alias(self, name, alias):
            found = self.inner.get_model_version_by_alias(name, alias)
            if alias == CHAMPION and not champion_read.is_set():
                champion_read.set()
                promoted.wait(10)  # A's promote lands between B's read and B's move
            return found

    def deploy_a():
        with registry.lock(store, "m", "deploy of version 2", mode="file"):
            champion_read.wait(2)  # B reads first if nothing stops it
            registry.promote(mlflow.MlflowClient(), "m", "2")
        promoted.set()

    a = threading.Thread(target=deploy_a)
    a.start()
    time.sleep(0.2)  # A holds the lock
    monkeypatch.setattr(registry, "client", lambda *_: RunB())
    out = register.run("m", uri, run_id, "b", {"roc_auc": 0.9}, {})
    a.join()
    assert out["version"] == "2" and out["alias"] == CHAMPION
    assert assert_invariants(store, "m") == {CHAMPION: "2", PREVIOUS: "1"}


def test_reconcile_drops_challenger_equal_to_champion(store, tmp_path):
    v1, v2 = add_versions(store, "m", 2, tmp_path)
    registry.promote(store, "m", v1)
    registry.promote(store, "m", v2)
    store.set_registered_model_alias("m", CHALLENGER, v2)  # what the race above left
    with pytest.raises(RegistryError, match="is the champion"):
        registry.set_challenger(store, "m", v2)
    registry.reconcile(store, "m")
    assert assert_invariants(store, "m") == {CHAMPION: v2, PREVIOUS: v1}


def test_a_deploy_waits_for_a_register_but_not_for_another_deploy(store, tmp_path):
    """Register's challenger move holds the lock for seconds: a deploy of another run waits for
    it instead of failing (two real runs at once hit exactly that). Another deploy's lock still
    fails fast."""
    add_versions(store, "m", 1, tmp_path)
    for holder, waits in (("register of version 2", True), ("deploy of version 2", False)):
        held, release = threading.Event(), threading.Event()

        def hold(what=holder, held=held, release=release):
            with registry.lock(store, "m", what, mode="file"):
                held.set()
                release.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        held.wait(10)
        threading.Timer(1.5, release.set).start()
        started = time.monotonic()
        try:
            if waits:
                with registry.lock(store, "m", "deploy of version 1", mode="file"):
                    assert time.monotonic() - started >= 1.0  # it waited for the register
            else:
                with pytest.raises(registry.RegistryLocked, match="deploy of version 2"):
                    registry.lock(store, "m", "deploy of version 1", mode="file").__enter__()
                assert time.monotonic() - started < 1.0  # failed fast
        finally:
            release.set()
            t.join()
