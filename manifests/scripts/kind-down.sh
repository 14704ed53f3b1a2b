#!/usr/bin/env bash
# Delete the kind cluster made by kind-up.sh (`make kind-down`), with everything in it (runs,
# MLflow's database, MinIO's buckets). Idempotent: no cluster, nothing to do.
set -euo pipefail

KIND_CLUSTER="${KIND_CLUSTER:-mlpipe}"

command -v kind >/dev/null 2>&1 || { echo "kind-down: 'kind' not found on PATH" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    echo "==> deleting kind cluster '$KIND_CLUSTER'"
    kind delete cluster --name "$KIND_CLUSTER"
else
    echo "==> no kind cluster '$KIND_CLUSTER': nothing to delete"
fi
