"""The rehearsal's `kserve_rollout` check: the deploy stage's KServe path, rendered for the model
the training pipeline registered, driven against the Kubernetes stand-in whose controller writes
what KServe 0.20 (Knative mode) and Knative 1.21 write (tests/support/kserve_knative.py).

No API server can run here, so this is the part of a KServe rollout that can be checked: every
object written passes the InferenceService CRD (the stand-in refuses any that does not), every
wait ends, and after each move the route splits traffic as intended — the first champion creates
the service; a canary step (10 %, 50 %), promote; a second candidate rolled back from 50 %; a
candidate whose revision fails to load, rolled back before it took any traffic."""

from __future__ import annotations

import os
import time
from typing import Any

from components.common.k8s import KSERVE_INFERENCE_SERVICE as ISVC
from components.common.k8s import schema_errors
from tests.support.k8s_standin import InMemoryCluster
from tests.support.kserve_knative import KnativeKServe


def check_kserve_rollout(reh: Any, model_name: str, version: str, detail: dict[str, Any]) -> None:
    import mlflow

    from components.common.config import load_settings
    from components.deploy import deploy
    from components.deploy.kserve_target import KServeSettings, KServeTarget, Model
    from components.deploy.rollout import Candidate, CandidateFailed
    from tests.rehearsal.services import MLFLOW_URL

    env = reh.services.manifests.config_map("mlpipe-pipeline-env", "kubeflow") or {}
    destination = env.get("MLFLOW_ARTIFACTS_DESTINATION")
    if not destination:
        raise RuntimeError("ConfigMap mlpipe-pipeline-env has no MLFLOW_ARTIFACTS_DESTINATION")
    saved = os.environ.get("MLFLOW_ARTIFACTS_DESTINATION")
    os.environ["MLFLOW_ARTIFACTS_DESTINATION"] = destination
    try:
        client = mlflow.MlflowClient(tracking_uri=MLFLOW_URL)
        uri = deploy.model_storage_uri(client, model_name, version)
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_ARTIFACTS_DESTINATION", None)
        else:
            os.environ["MLFLOW_ARTIFACTS_DESTINATION"] = saved
    if not any(k.endswith("MLmodel") for k in reh.s3_keys(uri)):
        raise RuntimeError(f"storageUri {uri} holds no MLmodel: KServe would fetch nothing")

    settings = load_settings(
        profile="cluster", overrides={"deployment.rollout.kserve.poll_s": 0.001}
    )
    cfg = settings.pipeline.deployment
    failing = f"{uri}-broken"  # a revision whose model never loads
    controller = KnativeKServe(failing=[failing], ready_ticks=2)
    cluster = InMemoryCluster()  # strict: every write is checked against the CRD
    cluster.script(ISVC.plural, model_name, controller)
    namespace = cfg.rollout.kserve.namespace
    steps: list[dict[str, Any]] = []

    def served() -> dict[str, int]:
        obj = cluster.objects[(ISVC.group, ISVC.plural, namespace, model_name)]
        out: dict[str, int] = {}
        for target in obj["status"]["components"]["predictor"]["traffic"]:
            key = controller.revision_uri(namespace, model_name, target["revisionName"])
            out[key] = out.get(key, 0) + target["percent"]
        return {k: v for k, v in out.items() if v}

    def move(what: str, action, expected: dict[str, int]) -> None:
        started = time.monotonic()
        action()
        now = served()
        steps.append(
            {"step": what, "traffic": now, "seconds": round(time.monotonic() - started, 3)}
        )
        if now != expected:
            raise RuntimeError(f"{what}: traffic {now}, expected {expected}")

    digest = "0" * 64  # the stand-in fetches nothing: any manifest digest renders
    first = deploy.kserve_rollout(
        model_name, version, uri, cfg, lambda _: None, adapter=cluster,
        model=Model(version, uri, digest),
    )  # fmt: skip
    if first["outcome"] != "promoted":
        raise RuntimeError(f"first champion: {first}")
    steps.append({"step": "first champion creates the service", "traffic": served()})
    second, third = f"{uri}-v2", f"{uri}-v3"  # later versions (the stand-in fetches nothing)
    target = KServeTarget(cluster, model_name, KServeSettings.from_config(cfg.rollout.kserve))
    target.digests.update({v: (digest, "") for v in ("v2", "v3", "v4")})
    move("adopt", target.adopt, {uri: 100})
    move("canary start", lambda: target.start_candidate(Candidate(second, "v2")), {uri: 100})
    move("canary 10%", lambda: target.set_canary_traffic(10), {uri: 90, second: 10})
    move("canary 50%", lambda: target.set_canary_traffic(50), {uri: 50, second: 50})
    move("promote", target.promote, {second: 100})
    target.start_candidate(Candidate(third, "v3"))
    move("canary 50% (v3)", lambda: target.set_canary_traffic(50), {second: 50, third: 50})
    move("rollback", target.rollback, {second: 100})
    try:
        target.start_candidate(Candidate(failing, "v4"))
    except CandidateFailed as exc:
        steps.append({"step": "failed revision", "reason": str(exc)})
    else:
        raise RuntimeError("a revision that fails to load was not reported as failed")
    move("rollback of the failed revision", target.rollback, {second: 100})
    move(
        "restore (mlpipe rollback)", lambda: target.restore(Model(version, uri, digest)), {uri: 100}
    )

    invalid = [e for o in target.rendered for e in schema_errors(o)]
    if invalid:
        raise RuntimeError(f"objects the CRD refuses: {invalid[:3]}")
    detail.update(
        storage_uri=uri,
        steps=steps,
        objects_written=len(cluster.verbs("create")) + len(cluster.verbs("patch")),
        api_reads=len(cluster.verbs("get")),
    )
    detail["summary"] = (
        f"{len(steps)} moves on {model_name} (storageUri {uri}); "
        f"{detail['objects_written']} writes, all valid against the CRD"
    )
