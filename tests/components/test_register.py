"""register and the registry's alias state machine against a real MLflow store (SQLite in a
temporary folder)."""

import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

from components.common import registry
from components.common.registry import CHALLENGER, CHAMPION, PREVIOUS, RegistryError
from components.register.register import run


@pytest.fixture()
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("t")
    return mlflow.MlflowClient()


def _logged_model(seed: int) -> tuple[str, str]:
    model = LogisticRegression(random_state=seed).fit([[0.0], [1.0], [float(seed)]], [0, 1, 1])
    with mlflow.start_run() as active:
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    return info.model_uri, active.info.run_id


LINEAGE = {"pipeline_run": "r1", "data_digest": "d1", "config_hash": "c1", "code_version": "v1"}


def register(seed: int, digest: str, approval_required: bool = False) -> dict:
    uri, run_id = _logged_model(seed)
    return run("m", uri, run_id, digest, {"roc_auc": 0.9}, LINEAGE, approval_required)


def aliases(store) -> dict[str, str]:
    out = {}
    for alias in (CHAMPION, CHALLENGER, PREVIOUS):
        mv = registry.alias_version(store, "m", alias)
        if mv is not None:
            out[alias] = str(mv.version)
    return out


def test_register_promote_and_idempotence(store):
    first = register(2, "digest-a")
    assert first["created"] and first["version"] == "1" and first["previous_champion"] is None
    assert first["alias"] == CHAMPION and not first["awaiting_approval"]
    mv = store.get_model_version_by_alias("m", CHAMPION)
    assert str(mv.version) == "1"
    assert mv.tags["mlpipe.data_digest"] == "d1" and mv.tags["metric.roc_auc"] == "0.900000"
    assert mv.tags["mlpipe.config_hash"] == "c1" and mv.tags["mlpipe.code_version"] == "v1"
    assert mv.tags["mlpipe.pipeline_run"] == "r1"
    assert mv.tags[registry.GATE_TAG] == "passed" and mv.tags[registry.STATUS_TAG] == CHAMPION

    # the same model again (same digest): no new version, nothing moves
    again = register(2, "digest-a")
    assert not again["created"] and again["version"] == "1" and again["alias"] == CHAMPION
    assert len(store.search_model_versions("name = 'm'")) == 1

    # a new model takes champion; the old one becomes previous; challenger is cleared
    second = register(3, "digest-b")
    assert second["version"] == "2" and second["previous_champion"] == "1"
    assert aliases(store) == {CHAMPION: "2", PREVIOUS: "1"}
    assert store.get_model_version("m", "1").tags[registry.STATUS_TAG] == PREVIOUS


def test_approval_required_leaves_a_challenger(store):
    register(2, "digest-a")
    waiting = register(3, "digest-b", approval_required=True)
    assert waiting["alias"] == CHALLENGER and waiting["awaiting_approval"]
    assert waiting["previous_champion"] is None
    assert aliases(store) == {CHAMPION: "1", CHALLENGER: "2"}

    assert registry.approve(store, "m", "2") == "1"
    assert aliases(store) == {CHAMPION: "2", PREVIOUS: "1"}


def test_reject_keeps_the_champion(store):
    register(2, "digest-a")
    register(3, "digest-b", approval_required=True)
    registry.reject(store, "m", "2", "fails the fairness review")
    assert aliases(store) == {CHAMPION: "1"}
    tags = store.get_model_version("m", "2").tags
    assert tags[registry.REJECTED_TAG] == "fails the fairness review"
    assert tags[registry.STATUS_TAG] == "rejected"
    with pytest.raises(RegistryError, match="was rejected"):
        registry.approve(store, "m", "2")


def test_moves_that_are_not_allowed(store):
    register(2, "digest-a")
    with pytest.raises(RegistryError, match="is the champion"):
        registry.reject(store, "m", "1", "no")
    with pytest.raises(RegistryError, match="no version 7"):
        registry.approve(store, "m", "7")
    # a version the gate never blessed (registered by hand) cannot be approved
    uri, run_id = _logged_model(5)
    mv = store.create_model_version("m", uri, run_id=run_id)
    with pytest.raises(RegistryError, match="has not passed the quality gate"):
        registry.approve(store, "m", mv.version)
    assert aliases(store) == {CHAMPION: "1"}


def test_alias_lookup_on_an_empty_registry(store):
    assert registry.alias_version(store, "absent", CHAMPION) is None
    store.create_registered_model("m")
    assert registry.alias_version(store, "m", CHAMPION) is None
