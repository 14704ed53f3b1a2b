"""Crash injection into the deploy stage on KServe: the process dies at every write it makes —
every MLflow write (the lock, the registry move) and every Kubernetes write (the
InferenceService's rollout) — and a restart re-runs the deploy of the same version with fresh
clients. After it the registry's invariants hold (champion never rejected, never equal to
previous) and the InferenceService serves exactly the champion (its storageUri, no canary left).

A real MLflow server (proxied artifacts, a lease lock), the Kubernetes stand-in with KServe's
Knative-mode controller. Infra validation (a real model server; tested in
test_deploy.py) is stubbed: it writes nothing. The analysis windows read a metrics source
that answers per revision by the revision's storage URI (a bad candidate: inverted scores)."""

from __future__ import annotations

import mlflow
import pytest

from components.common import registry
from components.common.config import load_pipeline_config
from components.common.k8s import KSERVE_INFERENCE_SERVICE as ISVC
from components.deploy import deploy
from components.deploy.windows import Window
from tests.fixtures.models import FEATURES, LABEL, register
from tests.support.crash import Crash, CrashingAdapter, CrashingClient, Killed
from tests.support.kserve_knative import knative_cluster, served_uris
from tests.support.registry import assert_invariants

NS = "mlpipe"
CFG = load_pipeline_config(
    overrides={
        "deployment.environment": "kserve",
        "deployment.rollout.kserve.poll_s": 0.01,
        "deployment.rollout.kserve.ready_timeout_s": 10,  # a wait that never ends fails fast
        "deployment.rollout.window.seconds": 0.01,
        "deployment.rollout.window.check_interval_s": 0.01,
    }
).deployment
DEPLOYMENT = CFG.model_dump()


def scores(n: int, seed: int, invert: bool = False) -> list[float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    s = np.where(rng.random(n) < 0.5, rng.beta(0.8, 6, n), 1 - rng.beta(4, 30, n))
    return list(1 - s if invert else s)


class ByStorageUri:
    """Analysis windows per Knative revision, by the model it runs: `bad` storage URIs answer
    inverted scores (the analysis rolls them back), every other one good scores."""

    def __init__(self, cluster, bad: set[str]) -> None:
        self.cluster, self.bad = cluster, bad

    def window(self, revision: str, start: float, end: float) -> Window:
        for svc in self.cluster.controller.services.values():
            for i, rev in enumerate(svc.revisions):
                if rev.name == revision:
                    n = 600
                    return Window(n, 0, [2.0] * n, scores(n, i, rev.storage_uri in self.bad))
        return Window()


@pytest.fixture()
def world(server, models, tmp_path, monkeypatch):
    """Both models logged once (a champion-to-be and a candidate), their downloaded files (what
    the deploy checks against the registry), test rows; no model server is started."""
    import pandas as pd

    from components.common.config import REPO_ROOT

    seeds = [register(*models[i], "seed", f"d{i}", promote=False) for i in (0, 1)]
    versions = [server.get_model_version("seed", v) for v in seeds]
    candidate_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/seed/{seeds[1]}", dst_path=str(tmp_path / "candidate")
    )
    df = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    test_path = tmp_path / "test.parquet"
    df[df.year == 2016].head(300)[[*FEATURES, LABEL]].to_parquet(test_path)
    monkeypatch.setattr(
        "components.serve.infra_validation.validate_infra", lambda *a, **k: {"passed": True}
    )
    return {"versions": versions, "candidate_dir": candidate_dir, "test": str(test_path)}


def setup(server, world, name: str):
    """Registered model `name`: version 1 the champion, served by a fresh InferenceService;
    version 2 the challenger. Returns the stand-in cluster."""
    server.create_registered_model(name)
    for mv in world["versions"]:
        tags = {k: v for k, v in mv.tags.items() if k.startswith("mlpipe.")}
        tags.pop(registry.STATUS_TAG, None)
        model_id = mv.source.removeprefix("models:/")  # the logged model's id
        server.create_model_version(name, mv.source, run_id=mv.run_id, tags=tags, model_id=model_id)
    registry.promote(server, name, "1")
    registry.set_challenger(server, name, "2")
    cluster = knative_cluster()
    model = deploy.kserve_model(server, name, "1")
    deploy.kserve_rollout(name, "1", model.storage_uri, CFG, print, adapter=cluster, model=model)
    return cluster


def assert_served_is_champion(cluster, name: str) -> str:
    client = mlflow.MlflowClient()
    held = assert_invariants(client, name)
    champion = deploy.kserve_model(client, name, held[registry.CHAMPION])
    obj = cluster.objects[(ISVC.group, ISVC.plural, NS, name)]
    predictor = obj["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == champion.storage_uri
    assert "canaryTrafficPercent" not in predictor
    assert served_uris(cluster, NS, name) == {champion.storage_uri: 100}
    return held[registry.CHAMPION]


def crash_every_write(server, world, monkeypatch, bad: bool) -> tuple[int, list[list[str]]]:
    """Deploy version 2 (`bad`: its canary fails the analysis), killed at its 1st, 2nd, ...
    write (MLflow or Kubernetes) until it runs through; after each kill a restart deploys
    version 2 again with fresh clients. Returns the number of kill points and the writes."""
    state: dict = {}
    monkeypatch.setattr("components.common.k8s.CustomObjectsAdapter", lambda: state["adapter"])
    monkeypatch.setattr(registry, "client", lambda *_: state["client"])
    monkeypatch.setattr(
        deploy, "cluster_metrics", lambda k, adapter: ByStorageUri(state["cluster"], state["bad"])
    )
    n, writes = 1, []
    while True:
        name = f"m{n}"
        cluster = setup(server, world, name)
        uri2 = deploy.model_storage_uri(server, name, "2")
        crash = Crash(n)
        state.update(
            cluster=cluster,
            bad={uri2} if bad else set(),
            adapter=CrashingAdapter(cluster, crash),
            client=CrashingClient(crash, mlflow.MlflowClient()),
        )

        def run(name=name):
            return deploy.run(
                name, "2", world["candidate_dir"], world["test"], DEPLOYMENT, log=lambda _: None
            )

        try:
            out = run()
        except Killed:
            state.update(adapter=cluster, client=mlflow.MlflowClient())  # the restart
            out = run()
            killed = True
        else:
            killed = False
        champion = assert_served_is_champion(cluster, name)
        if bad:
            assert champion == "1" and out["outcome"] in ("rolled_back", "rejected"), out
            tags = mlflow.MlflowClient().get_model_version(name, "2").tags
            assert tags[registry.REJECTED_TAG].startswith("rolled back: ")
        else:
            assert champion == "2" and out["outcome"] in ("promoted", "unchanged"), out
            assert registry.held_aliases(mlflow.MlflowClient(), name)[registry.PREVIOUS] == "1"
        writes.append([what for what, _ in crash.writes])
        if not killed:
            return n - 1, writes
        n += 1


def test_a_deploy_that_promotes_killed_at_every_write(server, world, monkeypatch):
    points, writes = crash_every_write(server, world, monkeypatch, bad=False)
    k8s = [w for w in writes[-1] if w.startswith("k8s ")]
    assert len(k8s) == 5  # canary at 0, 10, 50, 100, promoted
    assert points == len(writes[-1]) and points >= 10


def test_a_deploy_that_rolls_back_killed_at_every_write(server, world, monkeypatch):
    points, writes = crash_every_write(server, world, monkeypatch, bad=True)
    k8s = [w for w in writes[-1] if w.startswith("k8s ")]
    assert len(k8s) == 5  # canary at 0, 10; rollback: back to 0, stable model at 0, at 100
    assert points == len(writes[-1]) and points >= 8
