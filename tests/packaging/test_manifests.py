"""Both overlays render, and everything they render would be accepted by the cluster it is meant
for: built-in kinds against Kubernetes' strict schemas for the kind node's version, KServe kinds
against KServe's CRDs. Plus the project's own rules: resources and a locked-down securityContext
on every container, pinned images, no literal credentials, and the network rules that matter."""

import tomllib

import pytest

from tests.packaging.checks import Pod, container_errors, image_errors, ingress_allowed
from tests.packaging.render import (
    MANIFESTS,
    OVERLAYS,
    REPO_ROOT,
    kind_kubernetes_version,
    name_of,
    render,
    validation_errors,
)
from tests.support.manifests import Rendered, quantity_bytes

PROJECT_VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request):
    return request.param, render(MANIFESTS / "overlays" / request.param)


@pytest.fixture(scope="module")
def kind_objects():
    return render(MANIFESTS / "overlays" / "kind")


@pytest.fixture(scope="module")
def cloud_objects():
    return render(MANIFESTS / "overlays" / "cloud")


def _by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _one(objects, kind, name, namespace="mlpipe"):
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and o["metadata"]["name"] == name
        and o["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"{kind} {namespace}/{name}: {len(found)} rendered"
    return found[0]


def test_overlay_renders_the_expected_objects(overlay):
    name, objects = overlay
    kinds = {o["kind"] for o in objects}
    assert {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "StatefulSet",
        "Service",
        "NetworkPolicy",
        "ServingRuntime",
    } <= kinds, name
    assert _one(objects, "Deployment", "mlflow")
    assert _one(objects, "StatefulSet", "mlflow-postgres")
    assert _one(objects, "ServingRuntime", "mlpipe")
    names = [name_of(o) for o in objects]
    assert len(names) == len(set(names)), f"{name}: duplicate objects"


def test_every_rendered_object_passes_its_schema(overlay):
    name, objects = overlay
    version = kind_kubernetes_version()
    problems = {name_of(o): validation_errors(o, version) for o in objects}
    assert {k: v for k, v in problems.items() if v} == {}, name


def test_the_kind_node_is_a_version_the_validator_knows():
    from kubernetes_validate.utils import all_versions

    major_minor = ".".join(kind_kubernetes_version().split(".")[:2])
    assert any(v.startswith(major_minor + ".") for v in all_versions())


def test_every_container_has_resources_and_a_locked_down_security_context(overlay):
    name, objects = overlay
    problems = [e for o in objects for e in container_errors(o)]
    assert problems == [], name


def test_every_image_is_pinned_and_ours_carry_the_project_version(overlay):
    name, objects = overlay
    problems = [e for o in objects for e in image_errors(o, PROJECT_VERSION)]
    assert problems == [], name
    images = {c["image"] for o in objects for c in _containers(o)}
    assert f"ghcr.io/mlpipe/pipeline:{PROJECT_VERSION}" in images
    assert f"ghcr.io/mlpipe/serving:{PROJECT_VERSION}" in images


def _containers(obj):
    from tests.packaging.render import containers

    return [c for _pod, c in containers(obj)]


def test_base_has_no_secrets_and_credentials_come_from_secret_refs():
    objects = render(MANIFESTS / "base")
    assert not [o for o in objects if o["kind"] == "Secret"], "base must not carry Secrets"
    for obj in objects:
        for container in _containers(obj):
            for env in container.get("env", []):
                looks_secret = any(
                    w in env["name"].upper() for w in ("PASSWORD", "SECRET", "TOKEN", "KEY_ID")
                )
                if looks_secret:
                    assert "secretKeyRef" in env.get("valueFrom", {}), (name_of(obj), env)


def test_every_secret_reference_resolves_on_kind(kind_objects):
    secrets = {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in kind_objects
        if o["kind"] == "Secret"
    }
    refs = _secret_refs(kind_objects)
    assert refs, "nothing references a Secret?"
    assert refs - secrets == set()


def _secret_refs(objects):
    refs = set()
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        for container in _containers(obj):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ns, ref["name"]))
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    refs.add((ns, source["secretRef"]["name"]))
        for _pod, volume in _secret_volumes(obj):
            refs.add((ns, volume["secret"]["secretName"]))
        if obj["kind"] == "ServiceAccount":
            refs |= {(ns, s["name"]) for s in obj.get("secrets", [])}
    return refs


def _secret_volumes(obj):
    """(pod spec, volume) for every Secret volume of a workload's pod template."""
    pod = (obj.get("spec") or {}).get("template", {}).get("spec") or {}
    return [(pod, v) for v in pod.get("volumes", []) if "secret" in v]


def test_kind_secrets_are_generated_and_marked_dev_only(kind_objects):
    secrets = [o for o in kind_objects if o["kind"] == "Secret"]
    assert {s["metadata"]["name"] for s in secrets} == {
        "mlpipe-postgres",
        "mlpipe-minio",
        "mlpipe-s3",
        "mlpipe-s3-readonly",
        "mlpipe-mlflow-server",
        "mlpipe-mlflow-auth",
    }
    for secret in secrets:
        assert secret["metadata"]["labels"]["mlpipe.dev/dev-only-credentials"] == "true"
    # KServe takes the endpoint from the read-only key's annotations; no read-write key has them
    s3 = _one(kind_objects, "Secret", READ_ONLY_SECRET)
    annotations = s3["metadata"]["annotations"]
    assert annotations["serving.kserve.io/s3-endpoint"] == "minio.mlpipe.svc.cluster.local:9000"
    assert annotations["serving.kserve.io/s3-usehttps"] == "0"
    assert annotations["serving.kserve.io/s3-region"] == "us-east-1"
    for secret in secrets:
        if secret["metadata"]["name"] != READ_ONLY_SECRET:
            notes = secret["metadata"].get("annotations", {})
            assert not [k for k in notes if k.startswith("serving.kserve.io/")], name_of(secret)


READ_ONLY_SECRET = "mlpipe-s3-readonly"


def _serving_settings():
    from components.common.config import load_pipeline_config
    from components.deploy.kserve_target import KServeSettings

    cfg = load_pipeline_config(profile=REPO_ROOT / "config" / "profiles" / "cluster.yaml")
    return KServeSettings.from_config(cfg.deployment.rollout.kserve)


def test_model_servers_get_only_the_read_only_key(overlay):
    """The InferenceService the deploy task renders runs as the serving ServiceAccount, and that
    account lists the read-only key alone (KServe's storage initializer uses every S3 Secret it
    lists); the ServingRuntime names no Secret of its own."""
    from components.deploy.kserve_target import Model, render_inference_service

    name, objects = overlay
    settings = _serving_settings()
    model = Model("3", "s3://mlflow/artifacts/1/models/m-3/artifacts", sha256="ab" * 32)
    isvc = render_inference_service("acs", model, settings)
    predictor = isvc["spec"]["predictor"]
    assert isvc["metadata"]["namespace"] == settings.namespace
    assert predictor["serviceAccountName"] == settings.service_account == "mlpipe-serving"
    account = _one(objects, "ServiceAccount", predictor["serviceAccountName"], settings.namespace)
    assert [s["name"] for s in account["secrets"]] == [READ_ONLY_SECRET], name
    assert account["automountServiceAccountToken"] is False
    assert "secret" not in str(_one(objects, "ServingRuntime", "mlpipe")["spec"]).lower()


def test_kind_read_only_key_is_not_a_read_write_one(kind_objects):
    rendered = Rendered(kind_objects)
    read_only = rendered.secret(READ_ONLY_SECRET, "mlpipe")
    assert set(read_only) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    root = rendered.secret("mlpipe-minio", "mlpipe")
    writers = [root["MINIO_ROOT_USER"]] + [
        rendered.secret("mlpipe-s3", ns)["AWS_ACCESS_KEY_ID"] for ns in ("mlpipe", "kubeflow")
    ]
    assert read_only["AWS_ACCESS_KEY_ID"] not in writers
    assert read_only["AWS_SECRET_ACCESS_KEY"] != root["MINIO_ROOT_PASSWORD"]


def test_kind_job_gives_the_read_only_key_a_read_only_minio_user(kind_objects):
    """The Job runs MinIO's own client from the MinIO image, non-root and locked down, logs in
    with the root credentials of MinIO's Secret, and makes the read-only key's user with a policy
    that can only read and list the buckets the models and the trials' inputs live in."""
    import json
    import re

    job = _one(kind_objects, "Job", "minio-readonly-user")
    assert validation_errors(job, kind_kubernetes_version()) == []
    assert container_errors(job) == []
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    assert job["spec"]["backoffLimit"] >= 1  # MinIO may still be starting
    (container,) = pod["containers"]
    minio = _one(kind_objects, "Deployment", "minio")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == minio["image"]
    # root credentials from MinIO's own Secret, the new user's from the read-only Secret
    refs = {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {
        "MINIO_ROOT_USER": ("mlpipe-minio", "MINIO_ROOT_USER"),
        "MINIO_ROOT_PASSWORD": ("mlpipe-minio", "MINIO_ROOT_PASSWORD"),
        "READONLY_ACCESS_KEY": (READ_ONLY_SECRET, "AWS_ACCESS_KEY_ID"),
        "READONLY_SECRET_KEY": (READ_ONLY_SECRET, "AWS_SECRET_ACCESS_KEY"),
    }
    rendered = Rendered(kind_objects)
    env = rendered.container_env(container, "mlpipe")
    assert env["MINIO_ROOT_USER"] == rendered.secret("mlpipe-minio", "mlpipe")["MINIO_ROOT_USER"]
    ro = rendered.secret(READ_ONLY_SECRET, "mlpipe")
    assert env["READONLY_ACCESS_KEY"] == ro["AWS_ACCESS_KEY_ID"]
    script = container["command"][-1]
    assert container["command"][0] == "/bin/sh"
    for value in (*ro.values(), env["MINIO_ROOT_PASSWORD"]):
        assert value not in script  # keys reach mc on stdin, from the environment
    env_url = {e["name"]: e.get("value") for e in container["env"]}["MINIO_URL"]
    assert env_url == "http://minio.mlpipe.svc.cluster.local:9000"
    assert re.search(r"mc alias set .*\bstore \"\$MINIO_URL\"", script)
    assert "mc ready store" in script  # waits for MinIO
    assert re.search(r"\| mc admin user add store$", script, re.M)
    created = re.search(r"mc admin policy create store (\S+) (\S+)", script)
    attached = re.search(
        r"mc admin policy attach store (\S+) --user \"\$READONLY_ACCESS_KEY\"", script
    )
    assert created and attached and created.group(1) == attached.group(1)
    # the policy file is the ConfigMap's, mounted read-only
    path = created.group(2)
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    policy_map = _one(kind_objects, "ConfigMap", volume["configMap"]["name"])
    policy = json.loads(policy_map["data"][path[len(mount["mountPath"]) + 1 :]])
    actions: set[str] = set()
    resources: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions |= set(statement["Action"])
        resources |= set(statement["Resource"])
    assert actions == {"s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject"}
    # what the model servers (MLflow's artifacts) and trials (the state store) read
    buckets = {r.removeprefix("arn:aws:s3:::").removesuffix("/*") for r in resources}
    storage = _one(kind_objects, "ConfigMap", "mlpipe-pipeline-env", "kubeflow")["data"]
    needed = {
        storage[k].removeprefix("s3://").split("/")[0]
        for k in ("MLFLOW_ARTIFACTS_DESTINATION", "MLPIPE_STATE_DIR")
    }
    assert needed <= buckets == {"mlflow", "mlpipe-data"}


def test_cloud_overlay_expects_its_secrets_and_documents_them(cloud_objects):
    assert not [o for o in cloud_objects if o["kind"] == "Secret"]
    readme = (MANIFESTS / "README.md").read_text()
    for namespace, name in sorted(_secret_refs(cloud_objects)):
        assert f"-n {namespace} create secret generic {name}" in readme, (namespace, name)


def test_mlflow_runs_basic_auth_configured_from_a_secret(overlay):
    """`--app-name=basic-auth`; MLFLOW_AUTH_CONFIG_PATH names a file of a read-only Secret volume;
    Flask's CSRF key from a Secret; the probes use /health, which basic auth leaves open."""
    name, objects = overlay
    deployment = _one(objects, "Deployment", "mlflow")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--app-name=basic-auth" in container["args"], name
    env = {e["name"]: e for e in container["env"]}
    path = env["MLFLOW_AUTH_CONFIG_PATH"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    assert secret["secretName"] == "mlpipe-mlflow-server"
    (item,) = [i for i in secret["items"] if i["path"] == path[len(mount["mountPath"]) + 1 :]]
    assert item["key"] == "basic_auth.ini"
    key = env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"]
    assert key == {"name": "mlpipe-mlflow-server", "key": "flask_secret_key"}
    from mlflow.server.auth import is_unprotected_route

    for probe in ("readinessProbe", "livenessProbe"):
        assert is_unprotected_route(container[probe]["httpGet"]["path"]), probe
    assert not is_unprotected_route("/api/2.0/mlflow/registered-models/search")


def test_kind_mlflow_auth_secrets_agree_and_keep_the_auth_store_in_postgres(kind_objects):
    """The dev auth config: NO_PERMISSIONS by default, the auth tables in the backend store's
    PostgreSQL database (no credentials in the URI: libpq reads PGUSER/PGPASSWORD, no SQLite file
    lost with the pod), and the pipeline's login is the admin user the server creates."""
    import configparser

    rendered = Rendered(kind_objects)
    server = rendered.secret("mlpipe-mlflow-server", "mlpipe")
    assert server["flask_secret_key"]
    ini = configparser.ConfigParser()
    ini.read_string(server["basic_auth.ini"])
    auth = ini["mlflow"]
    assert auth["default_permission"] == "NO_PERMISSIONS"
    assert 0 < int(auth["auth_cache_ttl_seconds"]) <= 300  # not a PBKDF2 hash per request
    args = rendered.container("Deployment", "mlflow", "mlpipe")["args"]
    backend = next(a for a in args if a.startswith("--backend-store-uri="))
    assert auth["database_uri"] == backend.partition("=")[2]
    assert "@" not in auth["database_uri"]
    client = rendered.secret("mlpipe-mlflow-auth", "kubeflow")
    assert client == {
        "MLFLOW_TRACKING_USERNAME": auth["admin_username"],
        "MLFLOW_TRACKING_PASSWORD": auth["admin_password"],
    }


def test_only_pipeline_pods_get_mlflow_credentials(overlay):
    """MLflow's login lives in KFP's namespace only: no workload or ServingRuntime in `mlpipe`
    (model servers, Katib's namespace) references it, and only MLflow reads the server's Secret."""
    name, objects = overlay
    for obj in objects:
        text = str(obj)
        if obj["kind"] != "Secret":
            assert "mlpipe-mlflow-auth" not in text, (name, name_of(obj))
        if "mlpipe-mlflow-server" in text and obj["kind"] != "Secret":
            assert (obj["kind"], obj["metadata"]["name"]) == ("Deployment", "mlflow"), name_of(obj)
    for obj in objects:
        if obj["kind"] == "Secret" and obj["metadata"]["name"] == "mlpipe-mlflow-auth":
            assert obj["metadata"]["namespace"] == "kubeflow"


def test_kind_overlay_runs_minio_and_never_pulls(kind_objects):
    _one(kind_objects, "Deployment", "minio")
    _one(kind_objects, "Job", "minio-buckets")
    _one(kind_objects, "Job", "minio-readonly-user")
    for obj in kind_objects:
        for container in _containers(obj):
            assert container.get("imagePullPolicy") == "IfNotPresent", name_of(obj)
    storage = _one(kind_objects, "ConfigMap", "mlpipe-storage")["data"]
    assert storage["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.mlpipe.svc.cluster.local:9000"


def test_cloud_overlay_has_no_minio_larger_mlflow_and_a_pdb(cloud_objects, kind_objects):
    assert not [o for o in cloud_objects if "minio" in o["metadata"]["name"]]
    storage = _one(cloud_objects, "ConfigMap", "mlpipe-storage")["data"]
    assert storage["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert "MLFLOW_S3_ENDPOINT_URL" not in storage  # AWS S3 itself
    mlflow = _one(cloud_objects, "Deployment", "mlflow")
    assert mlflow["spec"]["replicas"] >= 2
    pdb = _one(cloud_objects, "PodDisruptionBudget", "mlflow")
    labels = mlflow["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    def memory(objects):
        limit = _one(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
        return quantity_bytes(limit["resources"]["limits"]["memory"])

    assert memory(cloud_objects) > memory(kind_objects)


def test_namespace_lets_katib_collect_trial_metrics(overlay):
    _name, objects = overlay
    namespace = _one(objects, "Namespace", "mlpipe", namespace=None)
    labels = namespace["metadata"]["labels"]
    assert labels["katib.kubeflow.org/metrics-collector-injection"] == "enabled"


def test_serving_runtime_runs_the_serving_image_for_the_mlpipe_format(overlay):
    _name, objects = overlay
    runtime = _one(objects, "ServingRuntime", "mlpipe")["spec"]
    assert {f["name"] for f in runtime["supportedModelFormats"]} == {"mlpipe"}
    assert set(runtime["protocolVersions"]) == {"v1", "v2"}
    (container,) = runtime["containers"]
    assert container["image"] == f"ghcr.io/mlpipe/serving:{PROJECT_VERSION}"
    assert container["command"] == ["python", "-m", "components.serve"]
    assert container["args"] == [
        "--model-dir=/mnt/models",
        "--model-name={{.Name}}",
        "--host=0.0.0.0",
        "--port=8080",
    ]
    # the args parse as the server's CLI; it listens on the pod's address, not its 127.0.0.1
    from components.serve.__main__ import build_parser

    args = build_parser().parse_args(container["args"])
    assert (args.host, args.port, args.model_dir) == ("0.0.0.0", 8080, "/mnt/models")
    # fault injection stays off in production: no switch and no fault in args or env
    assert not args.allow_faults and args.fault is None
    env = {e["name"] for e in container.get("env", [])}
    assert not env & {"MLPIPE_ALLOW_FAULTS", "MLPIPE_SERVE_FAULT"}
    text = (REPO_ROOT / "manifests" / "base" / "serving-runtime.yaml").read_text()
    assert "MLPIPE_ALLOW_FAULTS" not in text and "allow-faults" not in text
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp"}  # HOME, MPLCONFIGDIR
    for section in ("requests", "limits"):
        assert set(container["resources"][section]) >= {"cpu", "memory"}
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/v2/health/ready", 8080)
    assert (
        validation_errors(_one(objects, "ServingRuntime", "mlpipe"), kind_kubernetes_version())
        == []
    )


# pods as the NetworkPolicies see them
PIPELINE = Pod("kubeflow", {"pipelines.kubeflow.org/v2_component": "true"})
KFP_OTHER = Pod("kubeflow", {"app": "ml-pipeline-ui"})
STRANGER = Pod("default", {"app": "anything"})
TRIAL = Pod("mlpipe", {"katib.kubeflow.org/trial": "t-1", "katib.kubeflow.org/experiment": "e"})
MODEL = Pod("mlpipe", {"serving.kserve.io/inferenceservice": "acs", "component": "predictor"})
MLFLOW = Pod("mlpipe", {"app.kubernetes.io/name": "mlflow"})
POSTGRES = Pod("mlpipe", {"app.kubernetes.io/name": "mlflow-postgres"})
MINIO = Pod("mlpipe", {"app.kubernetes.io/name": "minio"})
READONLY_USER_JOB = Pod("mlpipe", {"app.kubernetes.io/name": "minio-readonly-user"})
SUGGESTION = Pod(
    "mlpipe", {"katib.kubeflow.org/suggestion": "e", "katib.kubeflow.org/experiment": "e"}
)
KATIB_CONTROLLER = Pod("kubeflow", {"katib.kubeflow.org/component": "controller"})

ALLOWED = [
    (PIPELINE, MLFLOW, 5000),
    (MODEL, MLFLOW, 5000),
    (MLFLOW, POSTGRES, 5432),
    (MLFLOW, MINIO, 9000),
    (PIPELINE, MINIO, 9000),
    (MODEL, MINIO, 9000),  # KServe's storage initializer runs in the model's pod
    (TRIAL, MINIO, 9000),
    (READONLY_USER_JOB, MINIO, 9000),  # the kind Job making the read-only key's MinIO user
    (KATIB_CONTROLLER, SUGGESTION, 6789),
    (TRIAL, SUGGESTION, 6788),
    (PIPELINE, MODEL, 8080),
]
DENIED = [
    (STRANGER, MLFLOW, 5000),
    (TRIAL, MLFLOW, 5000),  # trials run training code: the track task logs them
    (KFP_OTHER, MLFLOW, 5000),
    (PIPELINE, POSTGRES, 5432),
    (MODEL, POSTGRES, 5432),
    (TRIAL, POSTGRES, 5432),
    (STRANGER, MINIO, 9000),
    (STRANGER, POSTGRES, 5432),
    (MLFLOW, POSTGRES, 5433),
    (STRANGER, MODEL, 8080),
    (STRANGER, SUGGESTION, 6789),
    (READONLY_USER_JOB, MLFLOW, 5000),
    (READONLY_USER_JOB, POSTGRES, 5432),
]


def test_network_policies_allow_exactly_the_intended_paths(kind_objects):
    policies = [o for o in kind_objects if o["kind"] == "NetworkPolicy"]
    deny = _one(kind_objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"]["podSelector"] == {} and "ingress" not in deny["spec"]
    for source, target, port in ALLOWED:
        assert ingress_allowed(policies, source, target, port), (source.labels, target.labels)
    for source, target, port in DENIED:
        assert not ingress_allowed(policies, source, target, port), (source.labels, target.labels)


def test_the_example_inference_service_fits_the_runtime_and_the_crd(kind_objects):
    import yaml

    from components.deploy.kserve_target import DEPLOYMENT_MODE

    example = yaml.safe_load((MANIFESTS / "examples" / "inferenceservice.yaml").read_text())
    assert validation_errors(example, kind_kubernetes_version()) == []
    runtime = _one(kind_objects, "ServingRuntime", "mlpipe")
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    accounts = {o["metadata"]["name"] for o in kind_objects if o["kind"] == "ServiceAccount"}
    predictor = example["spec"]["predictor"]
    assert example["metadata"]["annotations"][DEPLOYMENT_MODE] == "Knative"
    assert predictor["model"]["runtime"] == runtime["metadata"]["name"]
    assert predictor["model"]["modelFormat"]["name"] in formats
    assert predictor["model"]["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert predictor["serviceAccountName"] in accounts
    # model pods: no token, limits
    assert predictor["automountServiceAccountToken"] is False
    assert predictor["model"]["resources"]["limits"]
    assert 0 <= predictor["canaryTrafficPercent"] <= 100
    predictor["canaryTrafficPercent"] = "ten"  # the CRD types it
    assert validation_errors(example, kind_kubernetes_version())


def _pipeline_mounts():
    """What the compiled training pipeline mounts into every task's pod."""
    from components.common.config import load_settings
    from pipelines.kfp_package import compile_package

    platform = compile_package(load_settings(profile="cluster"), "training").platform
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return executors["exec-ingest"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_pipeline_pods_find_what_the_compiled_spec_mounts(name):
    """Every pod of a run reads the ConfigMap (and on kind the S3 Secret) the spec names, in the
    namespace KFP standalone runs pipeline pods in; the keys a task cannot do without are there
    (the others are optional: AWS_ENDPOINT_URL is absent on AWS)."""
    objects = render(MANIFESTS / "overlays" / name)
    mounts = _pipeline_mounts()
    (config_map,) = mounts["configMapAsEnv"]
    found = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap"
        and o["metadata"]["name"] == config_map["configMapName"]
        and o["metadata"]["namespace"] == "kubeflow"
    )
    data = found["data"]
    assert data["MLPIPE_CLUSTER"] == "1"
    assert data["MLFLOW_TRACKING_URI"].startswith("http://mlflow.mlpipe.svc.cluster.local")
    assert data["MLPIPE_STATE_DIR"].startswith("s3://")
    assert data["KFP_HOST"].startswith("http://ml-pipeline.kubeflow.svc.cluster.local")
    mounted = {k["configMapKey"] for k in config_map["keyToEnv"]}
    assert set(data) <= mounted  # nothing set there that no task reads
    if name == "kind":
        assert data["AWS_ENDPOINT_URL"] == "http://minio.mlpipe.svc.cluster.local:9000"
        s3 = next(s for s in mounts["secretAsEnv"] if s["secretName"] == "mlpipe-s3")
        secret = next(
            o
            for o in objects
            if o["kind"] == "Secret"
            and o["metadata"]["name"] == "mlpipe-s3"
            and o["metadata"]["namespace"] == "kubeflow"
        )
        assert {k["secretKey"] for k in s3["keyToEnv"]} <= set(secret["data"])
    # MLflow's login: generated on kind with every key the spec mounts; created per the README
    login = next(s for s in mounts["secretAsEnv"] if s["secretName"] == "mlpipe-mlflow-auth")
    if name == "kind":
        secret = Rendered(objects).secret("mlpipe-mlflow-auth", "kubeflow")
        assert {k["secretKey"] for k in login["keyToEnv"]} == set(secret)
    else:
        readme = (MANIFESTS / "README.md").read_text()
        assert "-n kubeflow create secret generic mlpipe-mlflow-auth" in readme
        for key in login["keyToEnv"]:
            assert f"--from-literal={key['secretKey']}=" in readme
