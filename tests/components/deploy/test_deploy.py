"""The deploy stage's logic against a real MLflow registry (SQLite) and real model servers:
infra validation gates the rollout, only a successful rollout moves `champion`, a version that
fails infra validation is tagged rejected, and approval keeps what `mlpipe approve` needs."""

import mlflow
import pandas as pd
import pytest

from components.common import registry
from components.common.config import REPO_ROOT
from components.common.errors import StageError
from components.common.model_integrity import digest_of, manifest
from components.deploy import deploy
from tests.fixtures.models import FEATURES, LABEL, logistic, register, save

pytestmark = pytest.mark.integration  # starts model servers
# latency is not the point here, and this machine may be busy
DIRECT = {"rollout": {"strategy": "direct"}, "infra_validation": {"p99_budget_ms": 5000}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    df = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    root = tmp_path_factory.mktemp("deploy")
    test_path = root / "test.parquet"
    df[df.year == 2016].sample(1500, random_state=1)[[*FEATURES, LABEL]].to_parquet(test_path)
    models = []
    for seed in (0, 1):
        model, spec = logistic(df[df.year == 2015].sample(3000, random_state=seed))
        models.append((model, spec, save(model, spec, root / f"m{seed}")))
    return {"test": str(test_path), "models": models, "root": root}


@pytest.fixture()
def store(mlflow_store):
    return mlflow_store


def challenger(data, i: int) -> tuple[str, str]:
    model, spec, model_dir = data["models"][i]
    # the train stage's digest of the model dir (what deploy checks the dir against)
    version = register(model, spec, "m", digest_of(manifest(model_dir)), promote=False)
    registry.set_challenger(mlflow.MlflowClient(), "m", version)
    return version, str(model_dir)


def test_first_champion_then_a_rollout_replaces_it(store, data):
    v1, dir1 = challenger(data, 0)
    out = deploy.run("m", v1, dir1, data["test"], DIRECT, log=lambda _: None)
    assert out["outcome"] == "promoted" and out["champion"] == v1
    assert out["infra_validation"]["rows"] > 0

    v2, dir2 = challenger(data, 1)
    out = deploy.run("m", v2, dir2, data["test"], DIRECT, log=lambda _: None)
    assert out["outcome"] == "promoted" and out["previous_champion"] == v1
    assert registry.alias_version(store, "m", "champion").version == int(v2)
    assert registry.alias_version(store, "m", "previous").version == int(v1)
    assert registry.alias_version(store, "m", "challenger") is None

    again = deploy.run("m", v2, dir2, data["test"], DIRECT, log=lambda _: None)
    assert again["outcome"] == "unchanged"


def test_failed_infra_validation_rejects_and_fails(store, data):
    v1, dir1 = challenger(data, 0)
    deploy.run("m", v1, dir1, data["test"], DIRECT, log=lambda _: None)
    v2, dir2 = challenger(data, 1)
    with pytest.raises(StageError, match="infra validation failed"):
        deploy.run("m", v2, dir2, data["test"], DIRECT, log=lambda _: None, fault="invert")
    assert registry.alias_version(store, "m", "champion").version == int(v1)
    assert "infra validation" in store.get_model_version("m", v2).tags[registry.REJECTED_TAG]


def test_awaiting_approval_keeps_the_replay_rows(store, data, tmp_path):
    v1, dir1 = challenger(data, 0)
    deploy.run("m", v1, dir1, data["test"], DIRECT, log=lambda _: None)
    v2, dir2 = challenger(data, 1)
    out = deploy.run(
        "m", v2, dir2, data["test"], DIRECT, log=lambda _: None, awaiting_approval=True
    )
    assert out["outcome"] == "awaiting_approval"
    assert registry.alias_version(store, "m", "champion").version == int(v1)
    model_dir, rows = deploy.fetch_for_approval("m", v2, str(tmp_path))
    assert len(pd.read_parquet(rows)) == 1500
    # what approve does: the same stage on the downloaded version
    out = deploy.run("m", v2, model_dir, rows, DIRECT, log=lambda _: None)
    assert out["outcome"] == "promoted" and out["champion"] == v2


def test_replay_rows_are_json_ready_feature_dicts(data):
    _, spec, model_dir = data["models"][0]
    rows = deploy.replay_rows(data["test"], str(model_dir), 5)
    assert len(rows) == 5 and set(rows[0]) == {f["name"] for f in spec["features"]}
    assert all(type(v) in (int, float) for v in rows[0].values())
