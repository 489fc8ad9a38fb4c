#!/usr/bin/env bash
# Bootstrap a local kind cluster (needs Docker, kind, kubectl and helm on PATH) or an existing
# cluster (--existing-cluster: skips kind, uses the current kubectl context) with pinned versions of:
#   cert-manager -> Knative Serving + Kourier -> KServe (Knative mode, for canaries and tag routing)
#   -> Kubeflow Pipelines standalone -> kube-prometheus-stack (+ ShelfOps alerts and dashboard).
# Every version can be overridden from the environment; see infra/README.md.
#
# Usage: infra/bootstrap.sh [--existing-cluster] [--skip-kfp] [--skip-monitoring]
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-shelfops}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.33.1}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.17.2}"
KNATIVE_VERSION="${KNATIVE_VERSION:-knative-v1.19.0}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
KFP_VERSION="${KFP_VERSION:-2.14.3}"
KUBE_PROMETHEUS_STACK_VERSION="${KUBE_PROMETHEUS_STACK_VERSION:-81.6.2}"
SHELFOPS_NAMESPACE="${SHELFOPS_NAMESPACE:-shelfops}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXISTING=false
SKIP_KFP=false
SKIP_MONITORING=false
for arg in "$@"; do
  case "$arg" in
    --existing-cluster) EXISTING=true ;;
    --skip-kfp) SKIP_KFP=true ;;
    --skip-monitoring) SKIP_MONITORING=true ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '\n==> %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "bootstrap: '$1' is required on PATH" >&2; exit 1; }; }

need kubectl
need helm
if [ "$EXISTING" = false ]; then
  need docker
  need kind
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    log "kind cluster '$CLUSTER_NAME' exists; reusing it"
  else
    log "creating kind cluster '$CLUSTER_NAME' ($KIND_NODE_IMAGE)"
    kind create cluster --name "$CLUSTER_NAME" --image "$KIND_NODE_IMAGE" \
      --config "$HERE/kind-config.yaml" --wait 120s
  fi
  kubectl config use-context "kind-$CLUSTER_NAME"
fi

log "cert-manager $CERT_MANAGER_VERSION"
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
kubectl -n cert-manager rollout status deployment --timeout=300s

log "Knative Serving $KNATIVE_VERSION with Kourier"
kubectl apply -f "https://github.com/knative/serving/releases/download/$KNATIVE_VERSION/serving-crds.yaml"
kubectl apply -f "https://github.com/knative/serving/releases/download/$KNATIVE_VERSION/serving-core.yaml"
kubectl apply -f "https://github.com/knative/net-kourier/releases/download/$KNATIVE_VERSION/kourier.yaml"
kubectl patch configmap/config-network -n knative-serving --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
# emptyDir volumes (read-only root filesystems) and pod-level securityContext for the Bento pods.
kubectl patch configmap/config-features -n knative-serving --type merge \
  -p '{"data":{"kubernetes.podspec-emptydir":"enabled","kubernetes.podspec-securitycontext":"enabled"}}'
kubectl patch configmap/config-domain -n knative-serving --type merge \
  -p '{"data":{"example.com":""}}'
if [ "$EXISTING" = false ]; then
  # kind has no load balancer: expose Kourier on the NodePort mapped to localhost:8080.
  kubectl patch service/kourier -n kourier-system --type merge \
    -p '{"spec":{"type":"NodePort","ports":[{"name":"http2","port":80,"protocol":"TCP","targetPort":8080,"nodePort":31080}]}}'
fi
kubectl -n knative-serving rollout status deployment --timeout=300s
kubectl -n kourier-system rollout status deployment --timeout=300s

log "KServe $KSERVE_VERSION"
kubectl apply --server-side -f "https://github.com/kserve/kserve/releases/download/$KSERVE_VERSION/kserve.yaml"
kubectl -n kserve rollout status deployment/kserve-controller-manager --timeout=300s
kubectl apply --server-side -f "https://github.com/kserve/kserve/releases/download/$KSERVE_VERSION/kserve-cluster-resources.yaml"

if [ "$SKIP_KFP" = false ]; then
  log "Kubeflow Pipelines $KFP_VERSION (standalone, platform-agnostic)"
  kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
  kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
  kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"
  echo "KFP needs a few minutes; then: kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8081:80"
fi

if [ "$SKIP_MONITORING" = false ]; then
  log "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION"
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
  helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
    --version "$KUBE_PROMETHEUS_STACK_VERSION" --namespace monitoring --create-namespace \
    --values "$HERE/prometheus/kube-prometheus-stack-values.yaml" --wait --timeout 10m
  kubectl create configmap shelfops-grafana-dashboard -n monitoring \
    --from-file="$HERE/grafana/shelfops-serving.json" --dry-run=client -o yaml \
    | kubectl label --local -f - grafana_dashboard=1 -o yaml \
    | kubectl apply -f -
fi

kubectl create namespace "$SHELFOPS_NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -

log "done"
cat <<NEXT
Next steps:
  helm upgrade --install shelfops helm/shelfops -n $SHELFOPS_NAMESPACE -f helm/shelfops/ci/local-kind-values.yaml
  (build and load images first: see infra/README.md, "Images on kind")
NEXT
