"""The deploy stage's KServe path and `mlpipe rollback` against a real MLflow server (proxied
artifacts, as the cluster runs it) and the Kubernetes stand-in with KServe's Knative-mode
controller: the registered version's S3 location becomes storageUri, the first champion creates
the InferenceService, an API error other than NotFound changes nothing, and a rollback puts the
previous model back where it is served before the registry moves."""

from __future__ import annotations

import pytest

from components.common import registry
from components.common.config import load_pipeline_config
from components.common.errors import StageError
from components.common.k8s import KSERVE_INFERENCE_SERVICE as ISVC
from components.common.k8s import KubernetesError
from components.deploy import deploy
from tests.components.deploy.conftest import KSERVE_DESTINATION as DESTINATION
from tests.fixtures.models import register
from tests.support.kserve_knative import served_uris

NAME = "m"
NS = "mlpipe"
FAST = {"deployment.environment": "kserve", "deployment.rollout.kserve.poll_s": 0.01}


def m(version: str):
    """A stand-in version: its storage URI and a manifest digest (the stand-in fetches nothing)."""
    from components.deploy.kserve_target import Model

    return Model(version, f"s3://b/m{version}", version * 64)


def cfg():
    return load_pipeline_config(overrides=FAST).deployment


def served(cluster) -> dict[str, int]:
    return served_uris(cluster, NS, NAME)


def test_a_local_store_cannot_feed_kserve(mlflow_store, models):
    version = register(*models[0], NAME, "d0")
    with pytest.raises(StageError, match="KServe cannot fetch"):
        deploy.model_storage_uri(mlflow_store, NAME, version)


def test_the_first_champion_creates_the_inference_service(cluster):
    out = deploy.kserve_rollout(NAME, "1", "s3://b/m1", cfg(), print, adapter=cluster, model=m("1"))
    assert out["outcome"] == "promoted" and "first InferenceService" in out["reason"]
    assert served(cluster) == {"s3://b/m1": 100}


def test_a_first_deploy_killed_before_the_registry_move_is_not_rolled_out_again(cluster):
    """No champion yet, the InferenceService already serves the version (created, then the
    process died before `registry.promote`): the re-run promotes it without a rollout of the
    version against itself (a revision that never comes)."""
    deploy.kserve_rollout(NAME, "1", "s3://b/m1", cfg(), print, adapter=cluster, model=m("1"))
    out = deploy.kserve_rollout(NAME, "1", "s3://b/m1", cfg(), print, adapter=cluster, model=m("1"))
    assert out["outcome"] == "promoted" and "already serves" in out["reason"]
    assert served(cluster) == {"s3://b/m1": 100} and not cluster.verbs("patch")


@pytest.mark.parametrize(
    "deny", [lambda c: c.deny("get", ISVC.plural), lambda c: c.script(ISVC.plural, NAME, [
        KubernetesError("cannot reach the API server: read timed out")])],
    ids=["403", "timeout"],
)  # fmt: skip
def test_an_api_error_reading_the_service_aborts_with_the_live_predictor_unchanged(cluster, deny):
    deploy.kserve_rollout(NAME, "1", "s3://b/m1", cfg(), print, adapter=cluster, model=m("1"))
    before = cluster.objects[(ISVC.group, ISVC.plural, NS, NAME)]
    deny(cluster)
    with pytest.raises(StageError, match="nothing was changed"):
        deploy.kserve_rollout(NAME, "2", "s3://b/m2", cfg(), print, adapter=cluster, model=m("2"))
    assert cluster.objects[(ISVC.group, ISVC.plural, NS, NAME)] == before
    assert not cluster.verbs("patch") and len(cluster.verbs("create")) == 1


def test_mlpipe_rollback_serves_the_previous_model_again(server, models, cluster, monkeypatch):
    from pipelines.cli import main

    v1 = register(*models[0], NAME, "d0")
    v2 = register(*models[1], NAME, "d1")  # champion v2, previous v1
    uri1, uri2 = (deploy.model_storage_uri(server, NAME, v) for v in (v1, v2))
    download = server.get_model_version_download_uri(NAME, v1)  # proxied: mlflow-artifacts:/
    assert uri1 == f"{DESTINATION}/{download.split(':', 1)[1].lstrip('/')}"
    model2 = deploy.kserve_model(server, NAME, v2)
    deploy.kserve_rollout(NAME, v2, uri2, cfg(), print, adapter=cluster, model=model2)
    assert served(cluster) == {uri2: 100}
    monkeypatch.setattr("components.common.k8s.CustomObjectsAdapter", lambda: cluster)
    sets = [x for k, v in FAST.items() for x in ("--set", f"{k}={v}")]
    assert main(["rollback", "--model", NAME, *sets]) == 0
    assert served(cluster) == {uri1: 100}
    assert str(registry.alias_version(server, NAME, registry.CHAMPION).version) == v1
    monkeypatch.delenv("MLFLOW_ARTIFACTS_DESTINATION")
    with pytest.raises(StageError, match="MLFLOW_ARTIFACTS_DESTINATION"):
        deploy.model_storage_uri(server, NAME, v1)


def test_a_rollback_that_cannot_serve_leaves_the_registry_alone(
    server, models, cluster, monkeypatch
):
    from pipelines.cli import main

    v1 = register(*models[0], NAME, "d0")
    v2 = register(*models[1], NAME, "d1")
    model2 = deploy.kserve_model(server, NAME, v2)
    deploy.kserve_rollout(NAME, v2, model2.storage_uri, cfg(), print, adapter=cluster, model=model2)
    cluster.deny("patch", ISVC.plural)
    monkeypatch.setattr("components.common.k8s.CustomObjectsAdapter", lambda: cluster)
    sets = [x for k, v in FAST.items() for x in ("--set", f"{k}={v}")]
    assert main(["rollback", "--model", NAME, *sets]) == 1
    assert str(registry.alias_version(server, NAME, registry.CHAMPION).version) == v2
    assert str(registry.alias_version(server, NAME, registry.PREVIOUS).version) == v1
