"""`mlpipe simulate` moves the registry as the deploy stage does: under the registered model's
lock, held from the canary's start to the alias move (real MLflow store, file lock)."""

import pytest

from components.common import registry
from components.common.registry import CHAMPION, RegistryLocked
from components.deploy.rollout import RolloutResult
from pipelines.simulate import canary
from tests.support.registry import assert_invariants


@pytest.fixture()
def versions(mlflow_store, tmp_path):
    (tmp_path / "model").mkdir()
    mlflow_store.create_registered_model("m")
    made = [
        str(mlflow_store.create_model_version("m", (tmp_path / "model").as_uri()).version)
        for _ in range(2)
    ]
    registry.promote(mlflow_store, "m", made[0])
    return made


def _result(outcome: str) -> RolloutResult:
    return RolloutResult(strategy="canary", outcome=outcome, reason=f"{outcome} by the test")


@pytest.mark.parametrize("outcome", ["promoted", "rolled_back"])
def test_the_lock_is_held_through_the_rollout_and_the_move(mlflow_store, versions, outcome):
    seen = []

    def rollout():
        # a deploy started now must not get the lock
        with pytest.raises(RegistryLocked), registry.lock(mlflow_store, "m", "a deploy", "file"):
            pass
        seen.append("ran")
        return _result(outcome)

    assert canary(mlflow_store, "m", versions[1], rollout).outcome == outcome
    assert seen == ["ran"]
    held = assert_invariants(mlflow_store, "m")
    if outcome == "promoted":
        assert held[CHAMPION] == versions[1]
    else:
        assert held[CHAMPION] == versions[0]
        assert registry.is_rejected(mlflow_store.get_model_version("m", versions[1]))


def test_a_held_lock_stops_the_canary_before_any_traffic_or_move(mlflow_store, versions):
    def rollout():
        raise AssertionError("the canary started while another process held the lock")

    with (
        registry.lock(mlflow_store, "m", "a deploy", mode="file"),
        pytest.raises(RegistryLocked, match="a deploy"),
    ):
        canary(mlflow_store, "m", versions[1], rollout)
    held = assert_invariants(mlflow_store, "m")
    assert held[CHAMPION] == versions[0]
    assert not registry.is_rejected(mlflow_store.get_model_version("m", versions[1]))
