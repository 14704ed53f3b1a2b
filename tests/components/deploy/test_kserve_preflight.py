"""KServe's preflight: before the InferenceService changes, the candidate's request validation
(the model server's own) must accept rows shaped as the champion's clients send them. Against a
real MLflow server (proxied artifacts) and the Kubernetes stand-in with KServe's Knative-mode
controller, with real models on the bundled data."""

from __future__ import annotations

import mlflow

from components.common import model_integrity, registry
from components.common.config import load_pipeline_config
from components.common.k8s import KSERVE_INFERENCE_SERVICE as ISVC
from components.deploy import deploy
from tests.components.deploy.test_kserve_deploy import FAST, NAME, NS, served
from tests.fixtures.models import FEATURES, LABEL, logistic, register

DROPPED = ["AGEP", "SCHL", "MAR"]  # a candidate trained without them: another feature set


def test_a_candidate_with_another_feature_set_never_reaches_the_inference_service(
    server, cluster, acs_rows, tmp_path, monkeypatch
):
    train, test = acs_rows
    v1 = register(*logistic(train), NAME, "d0")  # champion, served below
    model1 = deploy.kserve_model(server, NAME, v1)
    deploy.kserve_rollout(
        NAME, v1, model1.storage_uri, _cfg(), print, adapter=cluster, model=model1
    )
    before = cluster.objects[(ISVC.group, ISVC.plural, NS, NAME)]
    writes = len(cluster.verbs("patch")) + len(cluster.verbs("create"))

    features = [f for f in FEATURES if f not in DROPPED]
    v2 = register(*logistic(train, features), NAME, "d1", promote=False)
    registry.set_challenger(server, NAME, v2)
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{NAME}/{v2}", dst_path=str(tmp_path / "model")
    )
    # as the deploy task gets it: checked against the registry, then its manifest written
    registry.verify_download(model_dir, server.get_model_version(NAME, v2), NAME)
    model_integrity.write_manifest(model_dir)
    test_path = tmp_path / "test.parquet"
    test[[*FEATURES, LABEL]].to_parquet(test_path)
    monkeypatch.setattr("components.common.k8s.CustomObjectsAdapter", lambda: cluster)

    out = deploy.run(NAME, v2, model_dir, str(test_path), _cfg().model_dump())

    assert out["outcome"] == "rolled_back", out
    assert "before any traffic" in out["reason"] and "unknown field 'AGEP'" in out["reason"]
    assert cluster.objects[(ISVC.group, ISVC.plural, NS, NAME)] == before
    assert len(cluster.verbs("patch")) + len(cluster.verbs("create")) == writes
    assert served(cluster) == {model1.storage_uri: 100}
    assert registry.is_rejected(server.get_model_version(NAME, v2))
    assert str(registry.alias_version(server, NAME, registry.CHAMPION).version) == v1


def _cfg():
    # infra validation's latency budget is not under test here (a busy machine misses 50 ms)
    overrides = {**FAST, "deployment.infra_validation.p99_budget_ms": 5000}
    return load_pipeline_config(overrides=overrides).deployment
