"""register and the registry's alias state machine against a real MLflow store (SQLite in a
temporary folder)."""

import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

from components.common import registry
from components.common.registry import CHALLENGER, CHAMPION, PREVIOUS, RegistryError
from components.register.register import run


@pytest.fixture()
def store(mlflow_store):
    return mlflow_store


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


def test_register_sets_challenger_and_is_idempotent(store):
    first = register(2, "digest-a")
    assert first["created"] and first["version"] == "1"
    assert first["alias"] == CHALLENGER and not first["awaiting_approval"]
    mv = store.get_model_version_by_alias("m", CHALLENGER)
    assert str(mv.version) == "1"
    assert mv.tags["mlpipe.data_digest"] == "d1" and mv.tags["metric.roc_auc"] == "0.900000"
    assert mv.tags["mlpipe.config_hash"] == "c1" and mv.tags["mlpipe.code_version"] == "v1"
    assert mv.tags["mlpipe.pipeline_run"] == "r1"
    assert mv.tags[registry.GATE_TAG] == "passed" and mv.tags[registry.STATUS_TAG] == CHALLENGER
    # register never moves champion: that is the deploy stage's move
    assert aliases(store) == {CHALLENGER: "1"}

    # the same model again (same digest): no new version
    again = register(2, "digest-a")
    assert not again["created"] and again["version"] == "1"
    assert len(store.search_model_versions("name = 'm'")) == 1

    # once it is champion, registering it again moves nothing
    registry.promote(store, "m", "1")
    assert register(2, "digest-a")["alias"] == CHAMPION
    assert aliases(store) == {CHAMPION: "1"}


def test_promote_moves_champion_to_previous(store):
    register(2, "digest-a")
    assert registry.promote(store, "m", "1") is None
    register(3, "digest-b")
    assert aliases(store) == {CHAMPION: "1", CHALLENGER: "2"}
    assert registry.promote(store, "m", "2") == "1"
    assert aliases(store) == {CHAMPION: "2", PREVIOUS: "1"}
    assert store.get_model_version("m", "1").tags[registry.STATUS_TAG] == PREVIOUS


def test_approval_required_is_recorded(store):
    waiting = register(3, "digest-b", approval_required=True)
    assert waiting["alias"] == CHALLENGER and waiting["awaiting_approval"]
    assert registry.check_approvable(store, "m", "1").version == 1


def test_reject_keeps_the_champion(store):
    register(2, "digest-a")
    registry.promote(store, "m", "1")
    register(3, "digest-b", approval_required=True)
    registry.reject(store, "m", "2", "fails the fairness review")
    assert aliases(store) == {CHAMPION: "1"}
    tags = store.get_model_version("m", "2").tags
    assert tags[registry.REJECTED_TAG] == "fails the fairness review"
    assert tags[registry.STATUS_TAG] == "rejected"
    with pytest.raises(RegistryError, match="was rejected"):
        registry.check_approvable(store, "m", "2")
    with pytest.raises(RegistryError, match="was rejected"):
        registry.promote(store, "m", "2")


def test_rollback_puts_previous_back(store):
    register(2, "digest-a")
    registry.promote(store, "m", "1")
    register(3, "digest-b")
    registry.promote(store, "m", "2")
    assert registry.rollback(store, "m", "p99 too high") == ("2", "1")
    assert aliases(store) == {CHAMPION: "1"}
    assert (
        store.get_model_version("m", "2").tags[registry.REJECTED_TAG] == "rolled back: p99 too high"
    )
    with pytest.raises(RegistryError, match="no previous champion distinct"):
        registry.rollback(store, "m", "again")


def test_moves_that_are_not_allowed(store):
    register(2, "digest-a")
    registry.promote(store, "m", "1")
    with pytest.raises(RegistryError, match="is the champion"):
        registry.reject(store, "m", "1", "no")
    with pytest.raises(RegistryError, match="no version 7"):
        registry.check_approvable(store, "m", "7")
    # a version the gate never blessed (registered by hand) cannot be approved
    uri, run_id = _logged_model(5)
    mv = store.create_model_version("m", uri, run_id=run_id)
    with pytest.raises(RegistryError, match="has not passed the quality gate"):
        registry.check_approvable(store, "m", mv.version)
    assert aliases(store) == {CHAMPION: "1"}


def test_alias_lookup_on_an_empty_registry(store):
    assert registry.alias_version(store, "absent", CHAMPION) is None
    store.create_registered_model("m")
    assert registry.alias_version(store, "m", CHAMPION) is None


@pytest.mark.integration
def test_register_through_a_tracking_server(mlflow_server):
    """A server checks what a SQLite store does not: a `models:/<id>` source needs the logged
    model's id (the in-cluster MLflow refused it: INVALID_PARAMETER_VALUE)."""
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with mlflow.start_run() as active:
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    assert info.model_uri.startswith("models:/")
    out = run(
        "m", info.model_uri, active.info.run_id, "d-server", {"roc_auc": 0.9}, LINEAGE,
        model_id=info.model_id,
    )  # fmt: skip
    assert out["created"] and out["version"] == "1"
    mv = mlflow_server.get_model_version("m", "1")
    assert mv.source == info.model_uri and mv.tags["mlpipe.pipeline_run"] == "r1"
    # what the server says without the id (the check this test exists for)
    with pytest.raises(mlflow.exceptions.MlflowException, match="model_id"):
        run("m", info.model_uri, active.info.run_id, "d-other", {}, LINEAGE, model_id=None)


def test_a_registered_model_another_run_just_created_is_used_not_an_error(mlflow_store):
    """Two runs registering their first version at once: the one whose create comes second
    gets RESOURCE_ALREADY_EXISTS from the store, which means the model is there (the
    concurrent-runs test failed at register on it once)."""
    mlflow_store.create_registered_model("raced")  # the other run won
    registry.ensure_registered_model(mlflow_store, "raced")
    registry.ensure_registered_model(mlflow_store, "fresh")
    names = {m.name for m in mlflow_store.search_registered_models()}
    assert {"raced", "fresh"} <= names
    with pytest.raises(mlflow.exceptions.MlflowException):  # other errors still surface
        registry.ensure_registered_model(mlflow_store, "")


@pytest.mark.parametrize("required", [True, False])
def test_the_task_takes_approval_from_the_deployment_section(store, tmp_path, required):
    """`approval_required` travels once: in the `deployment` section the deploy task reads."""
    from kfp.dsl import Artifact, Dataset, Metrics, Model

    from components.register.component import register as task

    uri, run_id = _logged_model(4)
    registration = Artifact(uri=str(tmp_path / "registration.json"))
    task.python_func(
        registered_model="m",
        pipeline_run="r1",
        data_digest="d1",
        lineage={"config_hash": "c1"},
        deployment={"approval_required": required, "environment": "local"},
        tracking_uri=mlflow.get_tracking_uri(),
        data=Dataset(uri=str(tmp_path / "data"), metadata={}),
        logged_model=Artifact(
            uri=str(tmp_path / "lm"), metadata={"model_uri": uri, "run_id": run_id}
        ),
        model=Model(uri=str(tmp_path / "model"), metadata={"sha256": "digest-t"}),
        metrics=Metrics(uri=str(tmp_path / "metrics"), metadata={"roc_auc": 0.9}),
        registration=registration,
    )
    assert registration.metadata["alias"] == CHALLENGER
    assert registration.metadata["awaiting_approval"] is required
