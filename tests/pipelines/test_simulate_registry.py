"""`mlpipe simulate` moves the registry only through the deploy stage (components/deploy/deploy.py
`approve`): a challenger rolled out on simulate's own target is promoted or tagged rejected as the
deploy stage records it, under the registered model's lock (real MLflow store, real models)."""

import json

import mlflow
import pandas as pd
import pytest

from components.common import registry
from components.common.config import REPO_ROOT
from components.common.registry import CHAMPION, RegistryLocked
from components.deploy import deploy
from components.deploy.local_target import LocalTarget
from pipelines.simulate import LoggingBackend, approve
from tests.fixtures.models import FEATURES, LABEL, logistic, register
from tests.support.registry import assert_invariants


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    df = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    test_path = tmp_path_factory.mktemp("sim-registry") / "test.parquet"
    df[df.year == 2016].sample(500, random_state=1)[[*FEATURES, LABEL]].to_parquet(test_path)
    models = [logistic(df[df.year == 2015].sample(3000, random_state=s)) for s in (0, 1)]
    return {"test": str(test_path), "models": models}


@pytest.fixture()
def versions(mlflow_store, data):
    """v1 champion; v2 blessed and left awaiting approval by the deploy stage (its replay rows
    kept on its run), as the pipeline leaves a retrained model under simulate's config."""
    (m1, spec1), (m2, spec2) = data["models"]
    v1 = register(m1, spec1, "m", "d1")
    v2 = register(m2, spec2, "m", "d2", promote=False)
    registry.set_challenger(mlflow_store, "m", v2)
    deploy.keep_replay_rows(mlflow_store, "m", v2, data["test"])
    return v1, v2


def deployment(**policy) -> dict:
    """A small canary (one 100 % step, a short window: enough one-row requests for the rank
    correlation's 50 pairs); latency is not the point here."""
    window = {"seconds": 1.0, "min_requests": 100, "max_seconds": 60.0, "check_interval_s": 0.5}
    return {
        "rollout": {
            "steps": [100],
            "window": window,
            "policy": {"min_canary_requests": 100, "max_p99_ms": 1000.0, **policy},
        },
        "infra_validation": {"p99_budget_ms": 5000},
    }


@pytest.mark.integration  # model servers: infra validation, stable and canary
def test_a_rolled_back_canary_is_rejected_as_the_deploy_stage_records_it(
    mlflow_store, versions, tmp_path
):
    v1, v2 = versions
    # two models trained on other rows never rank every row alike: the canary must roll back
    strict = deployment(min_rank_correlation=1.0)
    backend = LoggingBackend(tmp_path)
    with LocalTarget.serve(backend, f"models:/m/{v1}", "m", version=v1) as target:
        out = approve("m", v2, strict, target)
        # the rollout ran on simulate's target and left it serving v1 alone
        assert list(backend.running) == [target.router.routes.stable.url.rstrip("/")]
    assert out["outcome"] == "rolled_back" and "rank_correlation" in out["reason"], out["windows"]
    # the deploy stage's record: infra validation ran, the champion afterwards, who rejected it
    assert out["infra_validation"]["rows"] > 0 and out["champion"] == v1
    tags = mlflow.MlflowClient().get_model_version("m", v2).tags
    assert registry.rejected_by(tags) == ("the rollout", out["reason"])
    assert assert_invariants(mlflow_store, "m")[CHAMPION] == v1
    # its backend started the candidate (stable, then it), which logged the replayed traffic it
    # was judged on
    assert len(backend.logs) == 2
    answered = [json.loads(line) for line in backend.logs[1].read_text().splitlines()]
    assert len(answered) >= 100 and all(a["status"] == 200 for a in answered)


def test_a_held_lock_stops_the_approval_before_any_move(mlflow_store, versions):
    v1, v2 = versions
    with (
        registry.lock(mlflow_store, "m", "a deploy", mode="file"),
        pytest.raises(RegistryLocked, match="a deploy"),
    ):
        approve("m", v2, deployment())  # the lock comes before any validation or serving
    held = assert_invariants(mlflow_store, "m")
    assert held[CHAMPION] == v1
    assert not registry.is_rejected(mlflow_store.get_model_version("m", v2))
