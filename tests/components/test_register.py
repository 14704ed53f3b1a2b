"""register against a real MLflow store (SQLite in a temporary folder)."""

import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

from components.register.register import CHAMPION, PREVIOUS, run


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


def test_register_promote_and_idempotence(store):
    uri, run_id = _logged_model(2)
    first = run("m", uri, run_id, "digest-a", {"roc_auc": 0.9}, LINEAGE)
    assert first["created"] and first["version"] == "1" and first["previous_champion"] is None
    mv = store.get_model_version_by_alias("m", CHAMPION)
    assert str(mv.version) == "1"
    assert mv.tags["mlpipe.data_digest"] == "d1" and mv.tags["metric.roc_auc"] == "0.900000"
    assert mv.tags["mlpipe.config_hash"] == "c1" and mv.tags["mlpipe.code_version"] == "v1"

    # the same model again (same digest): no new version
    again = run("m", uri, run_id, "digest-a", {"roc_auc": 0.9}, LINEAGE)
    assert not again["created"] and again["version"] == "1"
    assert len(store.search_model_versions("name = 'm'")) == 1

    # a new model takes champion; the old one becomes previous
    uri2, run2 = _logged_model(3)
    second = run("m", uri2, run2, "digest-b", {"roc_auc": 0.91}, LINEAGE)
    assert second["version"] == "2" and second["previous_champion"] == "1"
    assert store.get_model_version_by_alias("m", CHAMPION).version == 2
    assert store.get_model_version_by_alias("m", PREVIOUS).version == 1
