"""The KServe target in Knative mode: rendering checked against the real InferenceService CRD,
and the rollout's control flow driven against the API stand-in with a controller that writes
what KServe 0.20 and Knative 1.21 write (tests/support/kserve_knative.py): a canary step, promote,
rollback, a failed and a stuck revision, API errors — every object passes the CRD schema and every
wait ends.
The metrics sources are tested in test_metrics.py."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.k8s import KSERVE_INFERENCE_SERVICE as ISVC
from components.common.k8s import Forbidden, Invalid, KubernetesError, schema_errors
from components.deploy.analysis import Policy
from components.deploy.kserve_target import (
    DEPLOYMENT_MODE,
    STABLE_URI,
    KServeSettings,
    KServeTarget,
    Model,
    RenderError,
    render_inference_service,
    serves,
    traffic,
)
from components.deploy.rollout import Candidate, CandidateFailed, Rollout, WindowSpec
from components.deploy.windows import Window
from tests.support.clock import FakeClock
from tests.support.k8s_standin import InMemoryCluster
from tests.support.kserve_knative import KnativeKServe

NS = "mlpipe"
SETTINGS = KServeSettings(
    namespace=NS,
    resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}},
    ready_timeout_s=60,
    poll_s=1,
)
V1 = Model("1", "s3://mlflow/artifacts/1/models/m-1/artifacts", "1" * 64)
V2 = Model("2", "s3://mlflow/artifacts/1/models/m-2/artifacts", "2" * 64)
R1, R2, R3 = (f"acs-predictor-{n:05d}" for n in (1, 2, 3))


def scores(n: int, seed: int, invert: bool = False) -> list[float]:
    rng = np.random.default_rng(seed)
    s = np.where(rng.random(n) < 0.5, rng.beta(0.8, 6, n), 1 - rng.beta(4, 30, n))
    return list(1 - s if invert else s)


class FakeMetrics:
    """A metrics source fed with one window per Knative revision; nothing for any other."""

    def __init__(self, windows: dict[str, Window]) -> None:
        self.windows = windows
        self.asked: list[str] = []

    def window(self, predictor: str, start: float, end: float) -> Window:
        self.asked.append(predictor)
        return self.windows.get(predictor, Window())


def good(n: int, seed: int) -> Window:
    return Window(n, 0, [2.0] * n, scores(n, seed))


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("percent", [None, 0, 10, 50, 100])
def test_every_state_renders_a_valid_knative_mode_service(percent):
    obj = render_inference_service("acs", V2, SETTINGS, stable=V1, canary_percent=percent)
    assert schema_errors(obj) == []
    notes = obj["metadata"]["annotations"]
    assert notes[DEPLOYMENT_MODE] == "Knative" and notes[STABLE_URI] == V1.storage_uri
    predictor = obj["spec"]["predictor"]
    assert predictor.get("canaryTrafficPercent") == percent
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "mlpipe"} and model["runtime"] == "mlpipe"
    assert model["protocolVersion"] == "v2" and model["storageUri"] == V2.storage_uri
    # model pods: their own identity, no API token, limits
    assert predictor["serviceAccountName"] == "mlpipe-serving"
    assert predictor["automountServiceAccountToken"] is False
    assert model["resources"]["limits"] == {"cpu": "1"}
    assert "canary" not in obj["spec"]  # Standard mode's field: nothing splits by it


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda p: p.update(canaryTrafficPercent="10"), "canaryTrafficPercent"),
        (lambda p: p.update(modle={}), "unknown field(s) ['modle']"),
        (lambda p: p["model"].update(storageUri=5), "storageUri"),
        (lambda p: p.update(minReplicas="one"), "minReplicas"),
    ],
)
def test_a_broken_object_is_rejected_by_schema_and_stand_in(breakage, expected):
    obj = render_inference_service("acs", V2, SETTINGS, stable=V1, canary_percent=10)
    breakage(obj["spec"]["predictor"])
    errors = schema_errors(obj)
    assert errors and expected in "; ".join(errors)
    with pytest.raises(Invalid):
        InMemoryCluster().create(ISVC.group, ISVC.version, NS, ISVC.plural, obj)


def test_bad_settings_fail_at_render_time():
    bad = KServeSettings(resources={"requests": {"cpu": "lots"}})
    with pytest.raises(RenderError, match="resources.requests.cpu"):
        render_inference_service("acs", V1, bad)


# ---------------------------------------------------------------- control flow on the stand-in


def make(cluster, metrics=None, clock=None) -> KServeTarget:
    clock = clock or FakeClock()
    target = KServeTarget(cluster, "acs", SETTINGS, metrics, clock=clock, sleep=clock.sleep)
    target.digests["2"] = (V2.sha256, "")  # what the deploy stage sets from the registry tag
    return target


def rollout(target, strategy="canary") -> Rollout:
    window = WindowSpec(seconds=30, min_requests=200, max_seconds=120, check_interval_s=5)
    return Rollout(
        target,
        strategy=strategy,
        steps=[10, 50, 100],
        window=window,
        policy=Policy(min_canary_requests=200),
        clock=target.clock,
        sleep=target.sleep,
    )


def stored(cluster: InMemoryCluster) -> dict:
    return cluster.objects[(ISVC.group, ISVC.plural, NS, "acs")]


def cluster_with(controller: KnativeKServe | None = None) -> tuple[InMemoryCluster, KnativeKServe]:
    controller = controller or KnativeKServe(ready_ticks=2)
    cluster = InMemoryCluster()
    cluster.script(ISVC.plural, "acs", controller)
    cluster.endpoints = controller.endpoints
    return cluster, controller


def served_uri(cluster: InMemoryCluster, controller: KnativeKServe) -> dict[str, int]:
    """Traffic percent by storage URI, as the route splits it."""
    out: dict[str, int] = {}
    for revision, percent in traffic(stored(cluster)).items():
        uri = controller.revision_uri(NS, "acs", revision)
        out[uri] = out.get(uri, 0) + percent
    return {k: v for k, v in out.items() if v}


def test_first_deploy_creates_the_service_and_waits_for_its_route():
    cluster, controller = cluster_with()
    target = make(cluster)
    assert target.adopt() is None  # NotFound: none yet
    target.deploy(V1)
    assert target.stable == R1 and served_uri(cluster, controller) == {V1.storage_uri: 100}
    assert target.url == "http://acs.mlpipe.svc.cluster.local"


def test_steps_split_traffic_then_promote():
    cluster, controller = cluster_with()
    metrics = FakeMetrics({R1: good(3000, 1), R2: good(600, 2)})
    target = make(cluster, metrics)
    target.deploy(V1)
    seen: list[dict[str, int]] = []
    step = target.set_canary_traffic

    def recording(percent: int) -> None:
        step(percent)
        seen.append(served_uri(cluster, controller))

    target.set_canary_traffic = recording
    result = rollout(target).run(Candidate(V2.storage_uri, "2"))
    assert result.outcome == "promoted", result.reason
    assert result.steps == [10, 50, 100] and len(result.windows) == 3
    assert seen == [
        {V1.storage_uri: 90, V2.storage_uri: 10},
        {V1.storage_uri: 50, V2.storage_uri: 50},
        {V2.storage_uri: 100},
    ]
    percents = [o["spec"]["predictor"].get("canaryTrafficPercent") for o in target.rendered]
    assert percents == [None, 0, 10, 50, 100, None]
    final = stored(cluster)
    assert "canaryTrafficPercent" not in final["spec"]["predictor"]
    assert final["status"]["components"]["predictor"]["latestRolledoutRevision"] == R2
    assert final["metadata"]["annotations"][STABLE_URI] == V2.storage_uri
    assert set(metrics.asked) == {R1, R2}
    assert all(schema_errors(o) == [] for o in target.rendered)


def test_failing_analysis_rolls_back_and_the_stable_model_is_served_again():
    cluster, controller = cluster_with()
    inverted = Window(600, 0, [2.0] * 600, scores(600, 2, invert=True))
    target = make(cluster, FakeMetrics({R1: good(3000, 1), R2: inverted}))
    target.deploy(V1)
    result = rollout(target).run(Candidate(V2.storage_uri, "2"))
    assert result.outcome == "rolled_back" and result.steps == [10]
    assert "psi" in result.reason and result.canary_requests == 600
    final = stored(cluster)
    assert final["spec"]["predictor"]["model"]["storageUri"] == V1.storage_uri
    assert "canaryTrafficPercent" not in final["spec"]["predictor"]
    assert served_uri(cluster, controller) == {V1.storage_uri: 100}
    assert target.stable == R3 and serves(final, R3, 100, None)


def test_a_candidate_answering_4xx_is_rolled_back_on_kserve():
    """The model servers' metrics count 4xx apart from 5xx (components/deploy/metrics.py): a
    candidate refusing requests stable answers fails the client-error check, never 5xx."""
    cluster, controller = cluster_with()
    refusing = Window(600, 0, [2.0] * 600, scores(540, 2), client_errors=60)
    target = make(cluster, FakeMetrics({R1: good(3000, 1), R2: refusing}))
    target.deploy(V1)
    result = rollout(target).run(Candidate(V2.storage_uri, "2"))
    assert result.outcome == "rolled_back" and result.steps == [10]
    assert "client_error" in result.reason, result.reason
    assert served_uri(cluster, controller) == {V1.storage_uri: 100}


def test_a_rollback_after_the_100_percent_step_returns_to_the_previous_revision():
    """Upstream's subtle case: at 100 % the canary became latestRolledoutRevision; setting the
    percent back to 0 makes KServe return it to previousRolledoutRevision."""
    cluster, controller = cluster_with()
    target = make(cluster, FakeMetrics({}))
    target.deploy(V1)
    target.start_candidate(Candidate(V2.storage_uri, "2"))
    target.set_canary_traffic(100)
    assert stored(cluster)["status"]["components"]["predictor"]["latestRolledoutRevision"] == R2
    target.rollback()
    assert served_uri(cluster, controller) == {V1.storage_uri: 100}


@pytest.mark.parametrize("kind", ["failing", "stuck"])
def test_a_failed_or_stuck_revision_is_rolled_back_and_never_served(kind):
    controller = KnativeKServe(**{kind: [V2.storage_uri]})
    cluster, _ = cluster_with(controller)
    target = make(cluster, FakeMetrics({}))
    target.deploy(V1)
    result = rollout(target).run(Candidate(V2.storage_uri, "2"))
    assert result.outcome == "rolled_back" and result.steps == []
    expected = "ModelLoadFailed" if kind == "failing" else "not done after 60s"
    assert expected in result.reason
    assert served_uri(cluster, controller) == {V1.storage_uri: 100}
    assert stored(cluster)["spec"]["predictor"]["model"]["storageUri"] == V1.storage_uri


def test_blue_green_switches_at_once():
    cluster, controller = cluster_with()
    target = make(cluster, FakeMetrics({R1: good(3000, 1), R2: good(600, 2)}))
    target.deploy(V1)
    result = rollout(target, "blue_green").run(Candidate(V2.storage_uri, "2"))
    assert result.outcome == "promoted" and [w.phase for w in result.windows] == ["switched"]
    percents = [o["spec"]["predictor"].get("canaryTrafficPercent") for o in target.rendered]
    assert percents == [None, 0, 100, None]
    assert served_uri(cluster, controller) == {V2.storage_uri: 100}


def test_adopt_takes_over_what_is_served_and_restore_puts_a_model_back():
    cluster, controller = cluster_with()
    make(cluster).deploy(V1)
    fresh = make(cluster, FakeMetrics({}))
    assert fresh.adopt() == V1 and fresh.stable == R1
    fresh.deploy(V2)
    assert served_uri(cluster, controller) == {V2.storage_uri: 100}
    fresh.restore(V1)  # mlpipe rollback
    assert served_uri(cluster, controller) == {V1.storage_uri: 100}
    fresh.restore(V1)  # already served: no new revision to wait for, and no timeout
    assert served_uri(cluster, controller) == {V1.storage_uri: 100}


@pytest.mark.parametrize(
    "error", [Forbidden("get is forbidden (RBAC)", status=403), KubernetesError("timed out")]
)
def test_adopt_fails_on_anything_but_not_found(error):
    cluster, _ = cluster_with()
    make(cluster).deploy(V1)
    before = stored(cluster)["metadata"]["resourceVersion"]
    cluster.script(ISVC.plural, "acs", [error])
    with pytest.raises(type(error)):
        make(cluster).adopt()
    assert stored(cluster)["metadata"]["resourceVersion"] == before


def test_a_candidate_without_a_service_is_refused():
    cluster, _ = cluster_with()
    with pytest.raises(CandidateFailed, match="no InferenceService"):
        make(cluster).start_candidate(Candidate(V2.storage_uri, "2"))


def test_settings_and_rollout_from_the_default_config():
    clock = FakeClock()
    from components.common.config import load_pipeline_config

    rollout_cfg = load_pipeline_config(
        overrides={"deployment.environment": "kserve", "deployment.rollout.strategy": "blue_green"}
    ).deployment.rollout
    settings = KServeSettings.from_config(rollout_cfg.kserve)
    obj = render_inference_service("acs-employment", V2, settings, stable=V1, canary_percent=10)
    assert schema_errors(obj) == [] and obj["metadata"]["namespace"] == "mlpipe"
    assert obj["spec"]["predictor"]["model"]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    target = KServeTarget(InMemoryCluster(), "acs-employment", settings, FakeMetrics({}))
    rollout = Rollout.from_config(target, rollout_cfg, clock=clock, sleep=clock.sleep)
    assert (rollout.strategy, rollout.steps) == ("blue_green", [10, 50, 100])
    assert rollout.window.seconds == 10 and rollout.policy.min_canary_requests == 200
    with pytest.raises(ValueError, match="unknown strategy"):
        Rollout(target, strategy="linear")
