"""The Kubernetes adapter and its in-memory stand-in: schema enforcement (KServe
InferenceService, Katib Experiment), resourceVersion, errors, scripted status, and the real
adapter's error mapping."""

from __future__ import annotations

import copy
import json

import pytest

from components.common import k8s
from components.common.k8s import (
    KATIB_EXPERIMENT,
    KSERVE_INFERENCE_SERVICE,
    AlreadyExists,
    Conflict,
    CustomObjectsAdapter,
    Forbidden,
    Invalid,
    KubernetesError,
    NotFound,
    WaitTimeout,
    schema_errors,
    wait_for,
)
from tests.support.k8s_standin import (
    InMemoryCluster,
    katib_experiment_status,
    katib_trial,
    merge_patch,
)
from tests.support.servers import send_json

NS = "models"
ISVC = (KSERVE_INFERENCE_SERVICE.group, KSERVE_INFERENCE_SERVICE.version, NS, "inferenceservices")
EXP = (KATIB_EXPERIMENT.group, KATIB_EXPERIMENT.version, NS, "experiments")


def isvc(name="employment", **predictor) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": {"app": "mlpipe"}},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "s3://models/employment/3",
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                },
                **predictor,
            }
        },
    }


def experiment(name="tune-lgbm") -> dict:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "cv_roc_auc"},
            "algorithm": {"algorithmName": "tpe"},
            "maxTrialCount": 4,
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.01", "max": "0.2"},
                }
            ],
        },
    }


@pytest.fixture
def cluster() -> InMemoryCluster:
    # the API server's contract; Katib's webhook is test_katib_render's (this minimal Experiment
    # has no trial template, which the webhook refuses)
    return InMemoryCluster(admission={})


# ---------------------------------------------------------------- schema enforcement


def test_a_valid_inference_service_is_stored_with_server_fields(cluster):
    body = isvc(canaryTrafficPercent=10)
    body["status"] = {"url": "http://ignored"}  # status subresource: create drops it
    out = cluster.create(*ISVC, body)
    meta = out["metadata"]
    assert meta["namespace"] == NS and meta["generation"] == 1 and meta["uid"]
    assert int(meta["resourceVersion"]) > 0 and meta["creationTimestamp"].endswith("Z")
    assert "status" not in out
    assert cluster.get(*ISVC, "employment")["spec"] == body["spec"]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o["spec"]["predictor"].update(minReplicas="two"), "minReplicas: 'two' is not"),
        (lambda o: o["spec"]["predictor"].update(replicas=2), "unknown field(s) ['replicas']"),
        (
            lambda o: o["spec"]["predictor"].update(containers=[{"image": "x"}]),
            "containers[0]: 'name' is a required property",
        ),
        (lambda o: o["spec"].update(predictor=[]), "spec.predictor: [] is not of type 'object'"),
        (lambda o: o["metadata"].update(name="Employment_Model"), "RFC 1123"),
        (lambda o: o["metadata"]["labels"].update(app="a b"), "invalid label value"),
        (lambda o: o.update(spec={}), "'predictor' is a required property"),
    ],
)
def test_an_invalid_inference_service_is_refused_with_the_reason(cluster, mutate, reason):
    body = isvc()
    mutate(body)
    with pytest.raises(Invalid) as info:
        cluster.create(*ISVC, body)
    assert any(reason in e for e in info.value.errors), info.value.errors
    assert "inferenceservices.serving.kserve.io models/" in str(info.value)
    assert cluster.objects == {}


def test_katib_experiments_are_checked_against_the_swagger(cluster):
    cluster.create(*EXP, experiment())
    bad = experiment("tune-bad")
    bad["spec"]["objective"]["type"] = 1
    bad["spec"]["maxTrialCounts"] = 4  # a typo: Katib's webhook would drop it silently
    bad["spec"]["parameters"].append(copy.deepcopy(bad["spec"]["parameters"][0]))
    with pytest.raises(Invalid) as info:
        cluster.create(*EXP, bad)
    errors = info.value.errors
    assert "spec.objective.type: 1 is not of type 'string'" in errors
    assert "spec: unknown field(s) ['maxTrialCounts']" in errors
    assert "spec.parameters: duplicate entry (name='lr')" in errors


def test_unknown_kinds_are_refused(cluster):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    with pytest.raises(NotFound, match="unknown kind"):
        cluster.create("apps", "v1", NS, "deployments", deployment)
    assert "unknown kind 'Deployment'" in schema_errors(deployment)[0]
    wrong_kind = isvc()
    wrong_kind["kind"] = "Experiment"
    with pytest.raises(Invalid, match="does not match the endpoint"):
        cluster.create(*ISVC, wrong_kind)
    other_ns = isvc()
    other_ns["metadata"]["namespace"] = "elsewhere"
    with pytest.raises(Invalid, match="does not match the request's namespace"):
        cluster.create(*ISVC, other_ns)


def test_non_strict_mode_accepts_unknown_fields():
    body = isvc(replicas=2)
    assert schema_errors(body, strict=False) == []
    InMemoryCluster(strict=False).create(*ISVC, body)


# ---------------------------------------------------------------- identity and versions


def test_duplicates_and_missing_objects(cluster):
    cluster.create(*ISVC, isvc())
    with pytest.raises(AlreadyExists, match="already exists"):
        cluster.create(*ISVC, isvc())
    with pytest.raises(NotFound, match="inferenceservices.serving.kserve.io models/nope"):
        cluster.get(*ISVC, "nope")
    with pytest.raises(NotFound):
        cluster.delete(*ISVC, "nope")
    cluster.delete(*ISVC, "employment")
    with pytest.raises(NotFound):
        cluster.get(*ISVC, "employment")
    cluster.create(*ISVC, isvc())  # the name is free again


def test_generate_name(cluster):
    body = isvc()
    body["metadata"] = {"generateName": "canary-"}
    out = cluster.create(*ISVC, body)
    assert out["metadata"]["name"].startswith("canary-") and len(out["metadata"]["name"]) == 12


def test_merge_patch_versions_and_conflicts(cluster):
    created = cluster.create(*ISVC, isvc())
    rv0 = int(created["metadata"]["resourceVersion"])
    out = cluster.patch(
        *ISVC,
        "employment",
        {
            "metadata": {"labels": {"app": None, "stage": "canary"}},
            "spec": {"predictor": {"canaryTrafficPercent": 20}},
            "status": {"url": "http://ignored"},
        },
    )
    assert out["metadata"]["labels"] == {"stage": "canary"}
    assert out["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert out["spec"]["predictor"]["model"]["storageUri"] == "s3://models/employment/3"
    assert "status" not in out  # only patch_status writes the status
    assert int(out["metadata"]["resourceVersion"]) > rv0 and out["metadata"]["generation"] == 2
    # a metadata-only change bumps resourceVersion, not generation
    out2 = cluster.patch(*ISVC, "employment", {"metadata": {"annotations": {"a": "b"}}})
    assert out2["metadata"]["generation"] == 2
    assert int(out2["metadata"]["resourceVersion"]) > int(out["metadata"]["resourceVersion"])
    # optimistic concurrency
    stale = {"metadata": {"resourceVersion": str(rv0)}, "spec": {"predictor": {"minReplicas": 3}}}
    with pytest.raises(Conflict, match="stale"):
        cluster.patch(*ISVC, "employment", stale)
    fresh = {**stale, "metadata": {"resourceVersion": out2["metadata"]["resourceVersion"]}}
    assert cluster.patch(*ISVC, "employment", fresh)["spec"]["predictor"]["minReplicas"] == 3
    # patches are schema-checked too, and a refused patch changes nothing
    with pytest.raises(Invalid, match="minReplicas"):
        cluster.patch(*ISVC, "employment", {"spec": {"predictor": {"minReplicas": "x"}}})
    assert cluster.get(*ISVC, "employment")["spec"]["predictor"]["minReplicas"] == 3
    with pytest.raises(Invalid, match="immutable"):
        cluster.patch(*ISVC, "employment", {"metadata": {"name": "other"}})


def test_patch_status_is_validated(cluster):
    cluster.create(*EXP, experiment())
    out = cluster.patch_status(*EXP, "tune-lgbm", {"status": katib_experiment_status("Running")})
    assert out["status"]["conditions"][-1]["type"] == "Running"
    with pytest.raises(Invalid, match="trialsSucceeded"):
        cluster.patch_status(*EXP, "tune-lgbm", {"status": {"trialsSucceeded": "three"}})
    with pytest.raises(Invalid, match="'status' is a required property"):
        cluster.patch_status(*EXP, "tune-lgbm", {"status": {"conditions": [{"type": "Running"}]}})


def test_list_with_label_selectors(cluster):
    cluster.add(katib_trial("t1", "exp-a", NS, {"lr": "0.1"}))
    cluster.add(katib_trial("t2", "exp-a", NS, {"lr": "0.2"}, state="Failed"))
    cluster.add(katib_trial("t3", "exp-b", NS, {"lr": "0.3"}))
    trials = ("kubeflow.org", "v1beta1", NS, "trials")
    names = lambda sel: [t["metadata"]["name"] for t in cluster.list(*trials, sel)]  # noqa: E731
    assert names("katib.kubeflow.org/experiment=exp-a") == ["t1", "t2"]
    assert names("katib.kubeflow.org/experiment!=exp-a") == ["t3"]
    assert names(None) == ["t1", "t2", "t3"]
    assert names("missing") == [] and names("!missing") == ["t1", "t2", "t3"]
    assert cluster.list(*trials[:2], "other-ns", "trials") == []
    # `add` keeps the status a controller wrote
    assert cluster.get(*trials, "t2")["status"]["conditions"][-1]["type"] == "Failed"


def test_forbidden(cluster):
    cluster.deny("create", "experiments")
    with pytest.raises(Forbidden, match="RBAC"):
        cluster.create(*EXP, experiment())


# ---------------------------------------------------------------- scripted status


def test_a_script_advances_one_step_per_get(cluster):
    cluster.script(
        "experiments",
        "tune-lgbm",
        [
            katib_experiment_status("Created"),
            None,  # no change on this tick
            katib_experiment_status("Running", running=2),
            k8s.KubernetesError("transient 500"),
            katib_experiment_status("Succeeded", succeeded=2, best={"assignments": {"lr": 0.1}}),
        ],
    )
    cluster.create(*EXP, experiment())
    seen = [cluster.get(*EXP, "tune-lgbm")["status"]["conditions"][-1]["type"] for _ in range(3)]
    assert seen == ["Created", "Created", "Running"]
    with pytest.raises(KubernetesError, match="transient"):
        cluster.get(*EXP, "tune-lgbm")
    for _ in range(3):  # the last step repeats
        assert cluster.get(*EXP, "tune-lgbm")["status"]["trialsSucceeded"] == 2


def test_a_callable_script_and_watch(cluster):
    def controller(obj, tick):
        return katib_experiment_status("Running" if tick < 2 else "Succeeded", succeeded=tick)

    cluster.script("experiments", "tune-lgbm", controller, namespace=NS)
    cluster.create(*EXP, experiment())
    events = list(cluster.watch(*EXP, "tune-lgbm", timeout_s=10))
    # a watch reports changes only: ticks 0, 1, 2 change the status, later ticks repeat tick 2's
    # status but with a new resourceVersion each time the script writes
    assert [e["status"]["trialsSucceeded"] for e in events[:3]] == [0, 1, 2]
    cluster.delete(*EXP, "tune-lgbm")
    with pytest.raises(NotFound):
        next(iter(cluster.watch(*EXP, "tune-lgbm", timeout_s=5)))


def test_wait_for_returns_timeouts_and_rides_out_hiccups(cluster):
    cluster.script(
        "experiments",
        "tune-lgbm",
        [
            katib_experiment_status("Running"),
            KubernetesError("connection reset"),
            katib_experiment_status("Succeeded"),
        ],
    )
    cluster.create(*EXP, experiment())
    now = [0.0]
    sleep, clock = (lambda s: now.__setitem__(0, now[0] + s)), (lambda: now[0])

    def done(obj):
        return any(c["type"] == "Succeeded" for c in obj["status"].get("conditions", []))

    polled = []
    out = wait_for(
        cluster, *EXP, "tune-lgbm", done, 60, 5, sleep=sleep, clock=clock, on_poll=polled.append
    )
    assert done(out) and len(polled) == 2 and now[0] == 10

    cluster.script("experiments", "tune-lgbm", [katib_experiment_status("Running")])
    now[0] = 0.0
    with pytest.raises(WaitTimeout, match="not done after 30s") as info:
        wait_for(cluster, *EXP, "tune-lgbm", done, 30, 7, sleep=sleep, clock=clock)
    assert info.value.last["status"]["conditions"][-1]["type"] == "Running"
    assert now[0] == 30

    cluster.script("experiments", "tune-lgbm", [KubernetesError("down")])
    with pytest.raises(KubernetesError, match="down"):
        wait_for(cluster, *EXP, "tune-lgbm", done, 600, 1, sleep=sleep, clock=clock, retries=2)


def test_merge_patch_follows_rfc_7386():
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {}}
    assert target["c"] == {"d": "e", "f": "g"}  # not modified in place


# ---------------------------------------------------------------- the real adapter, faked API


class FakeApi:
    """CustomObjectsApi's surface: records calls, raises what it is told to."""

    def __init__(self, error=None):
        self.error = error
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, method):
        def call(*args, **kwargs):
            self.calls.append((method, args, kwargs))
            if self.error is not None:
                raise self.error
            if method == "list_namespaced_custom_object":
                return {"items": [{"metadata": {"name": "a"}}]}
            return {"called": method}

        return call


def api_error(status, reason="", message="boom"):
    from kubernetes.client.exceptions import ApiException

    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "reason": reason, "message": message})
    return exc


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (api_error(404, "NotFound", 'experiments "x" not found'), NotFound),
        (api_error(409, "AlreadyExists", 'experiments "x" already exists'), AlreadyExists),
        (api_error(409, "Conflict", "the object has been modified"), Conflict),
        (api_error(403, "Forbidden", "cannot create resource"), Forbidden),
        (api_error(422, "Invalid", "spec.x: Invalid value"), Invalid),
        (api_error(500, "InternalError", "etcd timeout"), KubernetesError),
    ],
)
def test_api_errors_map_to_project_exceptions(error, expected):
    adapter = CustomObjectsAdapter(FakeApi(error))
    with pytest.raises(expected) as info:
        adapter.get(*EXP, "x")
    assert "experiments.kubeflow.org models/x" in str(info.value)
    assert type(info.value) is expected or expected is KubernetesError


def test_the_real_adapter_validates_and_passes_strict_field_validation():
    api = FakeApi()
    adapter = CustomObjectsAdapter(api)
    bad = isvc(replicas=2)
    with pytest.raises(Invalid, match="replicas"):
        adapter.create(*ISVC, bad)
    assert api.calls == []  # refused before any request
    adapter.create(*ISVC, isvc())
    adapter.patch(*ISVC, "employment", {"spec": {"predictor": {"minReplicas": 2}}})
    adapter.patch_status(*ISVC, "employment", {"status": {}})
    adapter.delete(*ISVC, "employment")
    assert adapter.list(*ISVC, "app=mlpipe") == [{"metadata": {"name": "a"}}]
    methods = [c[0] for c in api.calls]
    assert methods == [
        "create_namespaced_custom_object",
        "patch_namespaced_custom_object",
        "patch_namespaced_custom_object_status",
        "delete_namespaced_custom_object",
        "list_namespaced_custom_object",
    ]
    assert api.calls[0][2]["field_validation"] == "Strict"
    assert api.calls[0][1][:4] == ("serving.kserve.io", "v1beta1", NS, "inferenceservices")
    assert api.calls[4][2]["label_selector"] == "app=mlpipe"


def test_the_real_watch_reports_deletion(monkeypatch):
    import kubernetes.watch

    class FakeWatch:
        def stream(self, fn, *args, **kwargs):
            assert kwargs["field_selector"] == "metadata.name=x"
            yield {"type": "ADDED", "object": {"metadata": {"name": "x"}}}
            yield {"type": "DELETED", "object": {"metadata": {"name": "x"}}}

    monkeypatch.setattr(kubernetes.watch, "Watch", FakeWatch)
    stream = CustomObjectsAdapter(FakeApi()).watch(*EXP, "x", timeout_s=5)
    assert next(stream) == {"metadata": {"name": "x"}}
    with pytest.raises(NotFound, match="deleted"):
        next(stream)


def test_no_kubeconfig_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubernetesError, match="no Kubernetes configuration"):
        CustomObjectsAdapter().get(*EXP, "x")


def test_an_inference_service_rollout_can_be_scripted(cluster):
    """What the serving stage will need: Ready=False, then Ready=True with a URL and traffic."""
    ready = {
        "url": "http://employment.models.example.com",
        "conditions": [{"type": "Ready", "status": "True"}],
        "components": {
            "predictor": {
                "latestReadyRevision": "employment-predictor-00001",
                "traffic": [{"revisionName": "employment-predictor-00001", "percent": 100}],
            }
        },
    }
    cluster.script(
        "inferenceservices",
        "employment",
        [
            {"conditions": [{"type": "Ready", "status": "False", "reason": "RevisionMissing"}]},
            ready,
        ],
    )
    cluster.create(*ISVC, isvc())
    assert cluster.get(*ISVC, "employment")["status"]["conditions"][0]["status"] == "False"
    assert cluster.get(*ISVC, "employment")["status"]["url"].startswith("http://employment")
    # a status the CRD refuses is refused from a script too
    cluster.script("inferenceservices", "employment", [{"conditions": [{"type": "Ready"}]}])
    with pytest.raises(Invalid, match="'status' is a required property"):
        cluster.get(*ISVC, "employment")


def test_ready_addresses_come_from_the_services_endpoint_slices():
    """The real adapter against an HTTP server answering the discovery API as kube-apiserver
    does: the slices of one Service (by its kubernetes.io/service-name label), ready endpoints
    only."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    from kubernetes import client

    asked: list[tuple[str, dict]] = []
    endpoints = [
        {"addresses": ["10.244.0.7"], "conditions": {"ready": True}},
        {"addresses": ["10.244.0.8"], "conditions": {"ready": False}},  # terminating
        {"addresses": ["10.244.0.9"]},  # no conditions: ready (the API's default)
    ]
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSliceList",
        "metadata": {},
        "items": [
            {
                "metadata": {"name": "acs-predictor-00001-private-x7k2p"},
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": "http", "port": 8012, "protocol": "TCP"}],
            }
        ],
    }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlparse(self.path)
            asked.append((url.path, parse_qs(url.query)))
            send_json(self, 200, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
        adapter = CustomObjectsAdapter(client.CustomObjectsApi(client.ApiClient(config)))
        assert adapter.ready_addresses("mlpipe", "acs-predictor-00001-private") == [
            "10.244.0.7",
            "10.244.0.9",
        ]
    finally:
        server.shutdown()
    path, query = asked[0]
    assert path == "/apis/discovery.k8s.io/v1/namespaces/mlpipe/endpointslices"
    assert query["labelSelector"] == ["kubernetes.io/service-name=acs-predictor-00001-private"]
