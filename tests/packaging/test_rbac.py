"""RBAC grants exactly what the pipeline needs: Katib Experiments (+ reading Trials) and KServe
InferenceServices in `mlpipe`, nothing cluster-wide, no Secrets; the model server and the
storage services get no rights at all."""

import copy

import pytest

from components.common.k8s import KATIB_EXPERIMENT, KATIB_TRIAL, KSERVE_INFERENCE_SERVICE
from tests.packaging.checks import rbac_grants
from tests.packaging.render import MANIFESTS, OVERLAYS, render

ROLE = "Role mlpipe/mlpipe-pipeline"
OWN = {"create", "get", "list", "watch", "patch", "delete"}
EXPECTED = (
    {(ROLE, "kubeflow.org", "experiments", verb) for verb in OWN}
    | {(ROLE, "kubeflow.org", "trials", verb) for verb in ("get", "list", "watch")}
    | {(ROLE, "serving.kserve.io", "inferenceservices", verb) for verb in OWN}
    # deploy: the model servers' addresses (ScrapeMetrics), not pods
    | {(ROLE, "discovery.k8s.io", "endpointslices", "list")}
)


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request):
    return render(MANIFESTS / "overlays" / request.param)


def test_the_only_role_grants_exactly_the_expected_verbs(objects):
    assert rbac_grants(objects) == EXPECTED


def test_listed_grants_by_resource(objects):
    by_resource: dict[tuple[str, str], set[str]] = {}
    for _role, group, resource, verb in rbac_grants(objects):
        by_resource.setdefault((group, resource), set()).add(verb)
    assert by_resource == {
        ("kubeflow.org", "experiments"): {"create", "get", "list", "watch", "patch", "delete"},
        ("kubeflow.org", "trials"): {"get", "list", "watch"},
        ("serving.kserve.io", "inferenceservices"): {
            "create",
            "get",
            "list",
            "watch",
            "patch",
            "delete",
        },
        ("discovery.k8s.io", "endpointslices"): {"list"},
    }


def test_grants_name_the_resources_the_kubernetes_adapter_uses(objects):
    granted = {(group, resource) for _r, group, resource, _v in rbac_grants(objects)}
    for res in (KATIB_EXPERIMENT, KATIB_TRIAL, KSERVE_INFERENCE_SERVICE):
        assert (res.group, res.plural) in granted, res


def test_no_cluster_wide_rights_no_secrets_no_wildcards(objects):
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    for _role, group, resource, verb in rbac_grants(objects):
        assert "*" not in (group, resource, verb)
        assert resource not in ("secrets", "pods", "pods/exec", "configmaps")


def test_bindings_give_the_role_to_the_pipeline_account_only(objects):
    bindings = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in objects
        if o["kind"] == "RoleBinding"
    }
    assert set(bindings) == {
        ("mlpipe", "mlpipe-pipeline"),
        ("kubeflow", "mlpipe-pipeline-kfp-runner"),
    }
    ours = bindings[("mlpipe", "mlpipe-pipeline")]
    assert ours["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "mlpipe-pipeline",
    }
    pipeline_account = [
        {"kind": "ServiceAccount", "name": "mlpipe-pipeline", "namespace": "kubeflow"}
    ]
    assert ours["subjects"] == pipeline_account
    # KFP's own runner Role, in KFP's namespace: what KFP's launcher needs inside every run pod
    kfp = bindings[("kubeflow", "mlpipe-pipeline-kfp-runner")]
    assert kfp["roleRef"]["kind"] == "Role" and kfp["roleRef"]["name"] == "pipeline-runner"
    assert kfp["subjects"] == pipeline_account
    accounts = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in objects
        if o["kind"] == "ServiceAccount"
    }
    assert ("kubeflow", "mlpipe-pipeline") in accounts


def test_serving_and_storage_accounts_have_no_rights_and_no_token(objects):
    for obj in objects:
        if obj["kind"] == "ServiceAccount" and obj["metadata"]["name"] != "mlpipe-pipeline":
            assert obj.get("automountServiceAccountToken") is False, obj["metadata"]["name"]
    for obj in objects:
        if obj["kind"] == "RoleBinding":
            names = {s["name"] for s in obj["subjects"]}
            assert names == {"mlpipe-pipeline"}


def test_an_extra_grant_is_noticed(objects):
    widened = copy.deepcopy(objects)
    role = next(o for o in widened if o["kind"] == "Role")
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    assert rbac_grants(widened) - EXPECTED == {(ROLE, "", "secrets", "get")}
