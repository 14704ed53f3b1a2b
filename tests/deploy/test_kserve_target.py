"""The KServe target: every rendered InferenceService passes the KServe CRD schema (a broken one
is rejected), and the rollout control flow against the in-memory stand-in (which enforces the CRD
and plays KServe's controller): ready -> steps -> promote; a revision that fails to load, analysis
failing and a revision never ready -> rollback. Analysis windows come from a fake metrics source
fed with windows (no Prometheus can run here); the metrics sources are tested in
test_metrics.py."""

from __future__ import annotations

import numpy as np
import pytest

from components.common.k8s import KSERVE_INFERENCE_SERVICE as ISVC
from components.common.k8s import Invalid, schema_errors
from components.deploy.analysis import Policy
from components.deploy.kserve_target import (
    DEPLOYMENT_MODE,
    KServeSettings,
    KServeTarget,
    RenderError,
    Revision,
    canary_status,
    is_ready,
    render_inference_service,
    revision_name,
    traffic,
)
from components.deploy.rollout import Candidate, Rollout, WindowSpec
from components.deploy.windows import Window
from tests.support.k8s_standin import InMemoryCluster, kserve_controller

NS = "mlpipe"
SETTINGS = KServeSettings(
    namespace=NS,
    resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}},
    ready_timeout_s=60,
    poll_s=1,
)
V1 = Revision("acs-v1", "s3://mlpipe-models/acs/1")
V2 = Revision("acs-v2", "s3://mlpipe-models/acs/2")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def scores(n: int, seed: int, invert: bool = False) -> list[float]:
    rng = np.random.default_rng(seed)
    s = np.where(rng.random(n) < 0.5, rng.beta(0.8, 6, n), 1 - rng.beta(4, 30, n))
    return list(1 - s if invert else s)


class FakeMetrics:
    """A metrics source fed with one window per predictor (a stand-in for Prometheus)."""

    def __init__(self, windows: dict[str, Window]) -> None:
        self.windows = windows
        self.asked: list[str] = []

    def window(self, predictor: str, start: float, end: float) -> Window:
        self.asked.append(predictor)
        return self.windows.get(predictor, Window())


def good(n: int, seed: int) -> Window:
    return Window(n, 0, [2.0] * n, scores(n, seed))


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("percent", [0, 10, 50, 100])
def test_every_step_renders_a_valid_raw_deployment_with_spec_canary(percent):
    obj = render_inference_service("acs", V1, SETTINGS, V2, percent)
    assert schema_errors(obj) == []
    assert obj["metadata"]["annotations"][DEPLOYMENT_MODE] == "RawDeployment"
    (entry,) = obj["spec"]["canary"]
    assert entry["trafficPercent"] == percent and entry["predictor"]["name"] == "acs-v2"
    model = entry["predictor"]["model"]
    assert model["modelFormat"] == {"name": "mlpipe"} and model["runtime"] == "mlpipe"
    assert model["protocolVersion"] == "v2" and model["storageUri"] == V2.storage_uri
    assert entry["predictor"]["serviceAccountName"] == "mlpipe-serving"
    assert obj["spec"]["predictor"]["model"]["storageUri"] == V1.storage_uri


def test_promoted_and_rolled_back_states_render_without_canary():
    obj = render_inference_service("acs", V2, SETTINGS)
    assert schema_errors(obj) == [] and "canary" not in obj["spec"]
    assert obj["spec"]["predictor"]["name"] == "acs-v2"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda o: o["spec"]["canary"][0].update(trafficPercent="10"), "trafficPercent"),
        (lambda o: o["spec"]["canary"][0].update(trafficPercent=150), "maximum"),
        (lambda o: o["spec"]["predictor"].update(modle={}), "unknown field(s) ['modle']"),
        (lambda o: o["spec"]["canary"][0]["predictor"]["model"].pop("modelFormat"), "modelFormat"),
        (lambda o: o["spec"]["canary"][0]["predictor"].update(name="Acs_V2"), "does not match"),
        (lambda o: o["spec"]["predictor"].update(minReplicas="one"), "minReplicas"),
    ],
)
def test_a_broken_object_is_rejected_by_schema_and_stand_in(breakage, expected):
    obj = render_inference_service("acs", V1, SETTINGS, V2, 10)
    breakage(obj)
    errors = schema_errors(obj)
    assert errors and expected in "; ".join(errors)
    with pytest.raises(Invalid):
        InMemoryCluster().create(ISVC.group, ISVC.version, NS, ISVC.plural, obj)


def test_bad_settings_fail_at_render_time():
    bad = KServeSettings(resources={"requests": {"cpu": "lots"}})
    with pytest.raises(RenderError, match="resources.requests.cpu"):
        render_inference_service("acs", V1, bad)


def test_revision_names_are_valid_predictor_names():
    assert revision_name("acs-employment", "7") == "acs-employment-7"
    assert revision_name("ACS", "v1.2_rc") == "acs-v1-2-rc"
    assert revision_name("9x", "1") == "m-9x-1"
    assert len(revision_name("a" * 80, "12")) <= 63
    for name in ("acs-employment-7", "acs-v1-2-rc", "m-9x-1"):
        assert (
            schema_errors(render_inference_service("x", Revision(name, "s3://m"), SETTINGS)) == []
        )


# ---------------------------------------------------------------- control flow on the stand-in


def make(cluster: InMemoryCluster, metrics: FakeMetrics, clock: FakeClock) -> KServeTarget:
    return KServeTarget(cluster, "acs", SETTINGS, metrics, clock=clock, sleep=clock.sleep)


def rollout(target, clock, strategy="canary") -> Rollout:
    window = WindowSpec(seconds=30, min_requests=200, max_seconds=120, check_interval_s=5)
    return Rollout(
        target,
        strategy=strategy,
        steps=[10, 50, 100],
        window=window,
        policy=Policy(min_canary_requests=200),
        clock=clock,
        sleep=clock.sleep,
    )


def stored(cluster: InMemoryCluster) -> dict:
    return cluster.objects[(ISVC.group, ISVC.plural, NS, "acs")]


@pytest.fixture
def clock():
    return FakeClock()


def test_ready_then_steps_then_promote(clock):
    cluster = InMemoryCluster()
    cluster.script(ISVC.plural, "acs", kserve_controller(delay_ticks=2))
    metrics = FakeMetrics({"acs-v1": good(3000, 1), "acs-v2": good(600, 2)})
    target = make(cluster, metrics, clock)
    assert is_ready(target.deploy(V1))
    result = rollout(target, clock).run(Candidate(V2.storage_uri, "v2"))
    assert result.outcome == "promoted", result.reason
    assert result.steps == [10, 50, 100] and len(result.windows) == 3
    percents = [o["spec"].get("canary", [{}])[0].get("trafficPercent") for o in target.rendered]
    assert percents == [None, 0, 10, 50, 100, None]
    final = stored(cluster)
    assert final["spec"]["predictor"]["name"] == "acs-v2" and "canary" not in final["spec"]
    assert final["spec"]["predictor"]["model"]["storageUri"] == V2.storage_uri
    assert is_ready(final) and "canaryStatuses" not in final["status"]
    assert "acs-v2" in metrics.asked and all(schema_errors(o) == [] for o in target.rendered)


def test_a_revision_that_fails_to_load_is_rolled_back(clock):
    cluster = InMemoryCluster()
    cluster.script(ISVC.plural, "acs", kserve_controller(failed=["acs-v2"]))
    target = make(cluster, FakeMetrics({}), clock)
    target.deploy(V1)
    result = rollout(target, clock).run(Candidate(V2.storage_uri, "v2"))
    assert result.outcome == "rolled_back" and result.steps == []
    assert "ModelLoadFailed" in result.reason and "acs-v2" in result.reason
    final = stored(cluster)
    assert "canary" not in final["spec"] and final["spec"]["predictor"]["name"] == "acs-v1"


def test_failing_analysis_rolls_back_in_the_first_window(clock):
    cluster = InMemoryCluster()
    cluster.script(ISVC.plural, "acs", kserve_controller())
    inverted = Window(600, 0, [2.0] * 600, scores(600, 2, invert=True))
    target = make(cluster, FakeMetrics({"acs-v1": good(3000, 1), "acs-v2": inverted}), clock)
    target.deploy(V1)
    result = rollout(target, clock).run(Candidate(V2.storage_uri, "v2"))
    assert result.outcome == "rolled_back" and result.steps == [10]
    assert "psi" in result.reason and "ks" in result.reason
    assert result.canary_requests == 600
    assert result.windows[0].seconds <= 5  # decided at the first check, not the window's end
    final = stored(cluster)
    assert "canary" not in final["spec"] and traffic(final) == {"acs-v1": 100}


def test_a_revision_never_ready_times_out_and_rolls_back(clock):
    cluster = InMemoryCluster()
    controller = kserve_controller()
    never = {"n": 0}

    def script(obj, tick):
        if obj["spec"].get("canary"):
            never["n"] += 1
            return None  # the canary never reports
        return controller(obj, tick)

    cluster.script(ISVC.plural, "acs", script)
    target = make(cluster, FakeMetrics({}), clock)
    target.deploy(V1)
    result = rollout(target, clock).run(Candidate(V2.storage_uri, "v2"))
    assert result.outcome == "rolled_back" and "not done after 60s" in result.reason
    assert never["n"] > 10 and "canary" not in stored(cluster)["spec"]


def test_blue_green_on_kserve_switches_with_a_full_canary_entry(clock):
    cluster = InMemoryCluster()
    cluster.script(ISVC.plural, "acs", kserve_controller())
    metrics = FakeMetrics({"acs-v1": good(3000, 1), "acs-v2": good(600, 2)})
    target = make(cluster, metrics, clock)
    target.deploy(V1)
    result = rollout(target, clock, "blue_green").run(Candidate(V2.storage_uri, "v2"))
    assert result.outcome == "promoted" and [w.phase for w in result.windows] == ["switched"]
    switched = [o for o in target.rendered if o["spec"].get("canary")]
    assert [o["spec"]["canary"][0]["trafficPercent"] for o in switched] == [0, 100]


def test_status_readers():
    obj = render_inference_service("acs", V1, SETTINGS, V2, 30)
    obj["metadata"]["generation"] = 2
    from tests.support.k8s_standin import kserve_status

    obj["status"] = kserve_status(obj)
    assert is_ready(obj) and canary_status(obj, "acs-v2")["trafficPercent"] == 30
    assert traffic(obj) == {"acs-v2": 30, "acs-v1": 70}
    obj["metadata"]["generation"] = 3  # the controller has not seen the newest spec yet
    assert not is_ready(obj)


def test_settings_and_rollout_from_the_default_config(clock):
    from components.common.config import load_pipeline_config

    rollout_cfg = load_pipeline_config(
        overrides={"deployment.environment": "kserve", "deployment.rollout.strategy": "blue_green"}
    ).deployment.rollout
    settings = KServeSettings.from_config(rollout_cfg.kserve)
    obj = render_inference_service("acs-employment", V1, settings, V2, 10)
    assert schema_errors(obj) == [] and obj["metadata"]["namespace"] == "mlpipe"
    assert obj["spec"]["predictor"]["model"]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    target = KServeTarget(InMemoryCluster(), "acs-employment", settings, FakeMetrics({}))
    rollout = Rollout.from_config(target, rollout_cfg, clock=clock, sleep=clock.sleep)
    assert (rollout.strategy, rollout.steps) == ("blue_green", [10, 50, 100])
    assert rollout.window.seconds == 10 and rollout.policy.min_canary_requests == 200
    with pytest.raises(ValueError, match="unknown strategy"):
        Rollout(target, strategy="linear")
