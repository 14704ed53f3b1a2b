#!/usr/bin/env bash
# Bring up mlpipe on a local kind cluster: `make kind-up` (tear down: `make kind-down`).
# Idempotent: every step checks or re-applies, so re-running it after a failure (or to pick up
# changed manifests or code) continues where it stopped.
#
# Needs on the host: docker (a running engine), kind v0.33.x, kubectl >= 1.34 (its built-in
# kustomize renders our overlays; `git` for the remote KFP/Katib kustomizations), helm >= 3.16
# (OCI charts, for KServe), uv, and internet access for the release manifests and images.
# Memory: KFP + Katib + KServe + mlpipe want ~8 GB for Docker.
#
# Steps, and what each expects:
#   1. kind cluster `$KIND_CLUSTER` from kind-config.yaml (pinned node image, 1 control plane +
#      1 worker); kept if it exists. Every kubectl/helm call below uses its context explicitly.
#   2. cert-manager $CERT_MANAGER_VERSION (release manifest): KServe's webhook certificates.
#   3. Kubeflow Pipelines $KFP_VERSION standalone, platform-agnostic manifests (MySQL + SeaweedFS
#      in namespace kubeflow): cluster-scoped resources, wait for the Application CRD, then the env.
#   4. Katib $KATIB_VERSION standalone (namespace kubeflow; >= 0.18 for log-scale search spaces).
#   5. Knative Serving $KNATIVE_VERSION (release manifests) with Kourier $KOURIER_VERSION as its
#      ingress, then KServe $KSERVE_VERSION from its Helm charts (kserve-crd + kserve-resources)
#      in Knative mode (defaultDeploymentMode "Knative", no Istio VirtualService): the mode in
#      which an InferenceService's canaryTrafficPercent splits requests between two revisions
#      (components/deploy/README.md). The deploy task reaches the service at its cluster-local
#      address.
#   6. The project's images (ghcr.io/mlpipe/{pipeline,serving,tfdv}:$VERSION) built with docker
#      and loaded into the nodes (`make images kind-load`; SKIP_IMAGES=1 skips it).
#   7. manifests/overlays/kind (namespace mlpipe: MinIO, PostgreSQL, MLflow, the ServingRuntime,
#      RBAC, NetworkPolicies); waits for MinIO, PostgreSQL, the bucket Job and MLflow.
#   8. the bundled dataset uploaded to MinIO (s3://mlpipe-data/datasets/, where the cluster profile
#      config/profiles/cluster.yaml points the pipeline) with `mlpipe data upload` through a
#      port-forward; it checks the object's sha256.
#   9. `mlpipe compile` -> outputs/training_pipeline.yaml (cluster profile), then `mlpipe submit`
#      (upload + one run as service account mlpipe-pipeline) through a port-forward to the KFP API.
set -euo pipefail

KIND_CLUSTER="${KIND_CLUSTER:-mlpipe}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.17.0}"
KFP_VERSION="${KFP_VERSION:-2.17.0}"
KATIB_VERSION="${KATIB_VERSION:-v0.19.0}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
KSERVE_DEPLOYMENT_MODE="${KSERVE_DEPLOYMENT_MODE:-Knative}"
# the Knative Serving release KServe 0.20 installs in its own setup (and Kourier of that minor)
KNATIVE_VERSION="${KNATIVE_VERSION:-v1.21.1}"
KOURIER_VERSION="${KOURIER_VERSION:-v1.21.0}"
# keep the default on kind: the manifests name ghcr.io/mlpipe images, which are loaded, not pulled
IMAGE_REGISTRY="${IMAGE_REGISTRY:-ghcr.io/mlpipe}"
WAIT="${WAIT:-900s}"
DATASET="data/acs_employment_ma_2015_2018.parquet"
DATASET_URL="s3://mlpipe-data/datasets/acs_employment_ma_2015_2018.parquet"  # the cluster profile's

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VERSION="${VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)}"
CONTEXT="kind-${KIND_CLUSTER}"
KUBECTL=(kubectl --context "$CONTEXT")
HELM=(helm --kube-context "$CONTEXT")
PF_PIDS=()

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'kind-up: %s\n' "$*" >&2; exit 1; }
cleanup() { for pid in "${PF_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# retry N DELAY CMD...: for applies that race a webhook that has just become Ready
retry() {
    local attempts=$1 delay=$2 n=1
    shift 2
    until "$@"; do
        if (( n >= attempts )); then return 1; fi
        info "attempt $n failed; retrying in ${delay}s"
        sleep "$delay"
        n=$((n + 1))
    done
}

step "checking tools"
for tool in docker kind kubectl helm uv git; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH (see README: Run on kind)"
done
docker info >/dev/null 2>&1 || die "the docker engine is not reachable (is Docker running?)"
info "kind $(kind version | awk '{print $2}'), $(kubectl version --client | head -n 1)"
info "helm $(helm version --short), $(uv --version)"

step "1/9 kind cluster '$KIND_CLUSTER'"
if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    info "exists: keeping it"
else
    kind create cluster --name "$KIND_CLUSTER" --config kind-config.yaml --wait 180s
fi
"${KUBECTL[@]}" wait --for=condition=Ready node --all --timeout="$WAIT"

step "2/9 cert-manager $CERT_MANAGER_VERSION"
"${KUBECTL[@]}" apply -f \
    "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
"${KUBECTL[@]}" -n cert-manager wait --for=condition=Available deployment --all --timeout="$WAIT"

step "3/9 Kubeflow Pipelines $KFP_VERSION (standalone, platform-agnostic)"
"${KUBECTL[@]}" apply -k \
    "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${KFP_VERSION}"
"${KUBECTL[@]}" wait --for condition=established --timeout=60s crd/applications.app.k8s.io
retry 3 20 "${KUBECTL[@]}" apply -k \
    "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=${KFP_VERSION}"
info "waiting for the KFP deployments (first time: image pulls take several minutes)"
"${KUBECTL[@]}" -n kubeflow wait --for=condition=Available deployment --all --timeout="$WAIT"

step "4/9 Katib $KATIB_VERSION (standalone)"
retry 3 20 "${KUBECTL[@]}" apply --server-side --force-conflicts -k \
    "github.com/kubeflow/katib.git/manifests/v1beta1/installs/katib-standalone?ref=${KATIB_VERSION}"
for deployment in katib-controller katib-db-manager katib-mysql katib-ui; do
    "${KUBECTL[@]}" -n kubeflow wait --for=condition=Available "deployment/$deployment" \
        --timeout="$WAIT"
done

step "5/9 Knative Serving $KNATIVE_VERSION + Kourier $KOURIER_VERSION, KServe $KSERVE_VERSION (Knative mode)"
"${KUBECTL[@]}" apply -f \
    "https://github.com/knative/serving/releases/download/knative-${KNATIVE_VERSION}/serving-crds.yaml"
"${KUBECTL[@]}" wait --for condition=established --timeout=60s crd/services.serving.knative.dev
retry 3 20 "${KUBECTL[@]}" apply -f \
    "https://github.com/knative/serving/releases/download/knative-${KNATIVE_VERSION}/serving-core.yaml"
retry 3 20 "${KUBECTL[@]}" apply -f \
    "https://github.com/knative/net-kourier/releases/download/knative-${KOURIER_VERSION}/kourier.yaml"
# Kourier as Knative's ingress; the example.com domain for external URLs (KServe's own Kourier
# setup, hack/setup/infra/knative/templates/knative-serving-kourier.yaml in v0.20.0). The deploy
# task uses the cluster-local address, which needs no DNS beyond the cluster's.
"${KUBECTL[@]}" -n knative-serving patch configmap/config-network --type merge \
    -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
"${KUBECTL[@]}" -n knative-serving patch configmap/config-domain --type merge \
    -p '{"data":{"example.com":""}}'
"${KUBECTL[@]}" -n knative-serving wait --for=condition=Available deployment --all --timeout="$WAIT"
"${KUBECTL[@]}" -n kourier-system wait --for=condition=Available deployment --all --timeout="$WAIT"
"${HELM[@]}" upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd \
    --version "$KSERVE_VERSION" --namespace kserve --create-namespace --wait
# Knative mode is where canaryTrafficPercent splits traffic (components/deploy/README.md); no
# Istio: KServe creates no VirtualService (disableIstioVirtualHost), Kourier routes
"${HELM[@]}" upgrade --install kserve-resources oci://ghcr.io/kserve/charts/kserve-resources \
    --version "$KSERVE_VERSION" --namespace kserve --wait --timeout 15m \
    --set kserve.controller.deploymentMode="$KSERVE_DEPLOYMENT_MODE" \
    --set kserve.controller.gateway.disableIstioVirtualHost=true
"${KUBECTL[@]}" -n kserve wait --for=condition=Available deployment/kserve-controller-manager \
    --timeout="$WAIT"
mode="$("${KUBECTL[@]}" -n kserve get configmap inferenceservice-config -o jsonpath='{.data.deploy}')"
[[ "$mode" == *"$KSERVE_DEPLOYMENT_MODE"* ]] || die "KServe's deploy config is not $KSERVE_DEPLOYMENT_MODE: $mode"
info "inferenceservice-config deploy: $(echo "$mode" | tr -d '\n ')"

step "6/9 images ${IMAGE_REGISTRY}/{pipeline,serving,tfdv}:${VERSION}"
if [[ "${SKIP_IMAGES:-0}" == "1" ]]; then
    info "SKIP_IMAGES=1: not building or loading"
else
    make --no-print-directory images kind-load \
        VERSION="$VERSION" IMAGE_REGISTRY="$IMAGE_REGISTRY" KIND_CLUSTER="$KIND_CLUSTER"
fi

step "7/9 mlpipe manifests (manifests/overlays/kind)"
# a Job's pod template is immutable: drop the finished Jobs so a new image or key can re-run them
"${KUBECTL[@]}" -n mlpipe delete job minio-buckets minio-readonly-user --ignore-not-found
# the KServe webhook validates the ServingRuntime: it may refuse for a few seconds after startup
retry 5 15 "${KUBECTL[@]}" apply -k manifests/overlays/kind
"${KUBECTL[@]}" -n mlpipe wait --for=condition=Available deployment/minio --timeout="$WAIT"
"${KUBECTL[@]}" -n mlpipe rollout status statefulset/mlflow-postgres --timeout="$WAIT"
"${KUBECTL[@]}" -n mlpipe wait --for=condition=Complete job/minio-buckets --timeout="$WAIT"
"${KUBECTL[@]}" -n mlpipe wait --for=condition=Complete job/minio-readonly-user --timeout="$WAIT"
"${KUBECTL[@]}" -n mlpipe wait --for=condition=Available deployment/mlflow --timeout="$WAIT"
"${KUBECTL[@]}" -n mlpipe get servingruntime mlpipe >/dev/null

step "8/9 the bundled dataset -> $DATASET_URL (MinIO)"
"${KUBECTL[@]}" -n mlpipe port-forward svc/minio 9000:9000 >/dev/null 2>&1 &
PF_PIDS+=($!)
sleep 5
# the dev-only credentials of the kind overlay (manifests/overlays/kind/kustomization.yaml)
AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=mlpipe-dev \
    AWS_SECRET_ACCESS_KEY=dev-only-minio-password AWS_DEFAULT_REGION=us-east-1 \
    uv run --frozen mlpipe data upload "$DATASET" "$DATASET_URL"

step "9/9 compile and submit the training pipeline (cluster profile)"
MLPIPE_IMAGE_REGISTRY="$IMAGE_REGISTRY" uv run --frozen mlpipe compile --output outputs/training_pipeline.yaml
"${KUBECTL[@]}" -n kubeflow port-forward svc/ml-pipeline 8888:8888 >/dev/null 2>&1 &
PF_PIDS+=($!)
sleep 5
# uploads a content-named pipeline version and starts a run as runtime.service_account
# (mlpipe-pipeline); MLflow, the state store and S3 come from the ConfigMap the spec mounts
MLPIPE_IMAGE_REGISTRY="$IMAGE_REGISTRY" uv run --frozen mlpipe submit --host http://127.0.0.1:8888

step "ready"
cat <<EOF
    KFP UI:     kubectl --context $CONTEXT -n kubeflow port-forward svc/ml-pipeline-ui 8080:80
                then http://localhost:8080
    KFP API:    kubectl --context $CONTEXT -n kubeflow port-forward svc/ml-pipeline 8888:8888
    MLflow:     kubectl --context $CONTEXT -n mlpipe port-forward svc/mlflow 5000:5000
                then http://localhost:5000
    Katib UI:   kubectl --context $CONTEXT -n kubeflow port-forward svc/katib-ui 8081:80
                then http://localhost:8081/katib/
    tear down:  make kind-down
EOF
