#!/usr/bin/env bash
# The demo `make demo` runs, after building both faces: the plugin through kubectl as a user
# runs it, then the same core from Python. Later capabilities add their steps here.
set -euo pipefail
python=${PYTHON:-python3}

command -v kubectl >/dev/null || { echo "demo: kubectl is not on PATH" >&2; exit 1; }
step() { printf '\n$ %s\n' "$*"; }

step 'kubectl plugin list | grep kubectl-zen'
{ kubectl plugin list 2>/dev/null || true; } | grep kubectl-zen

step kubectl zen version
kubectl zen version

step kubectl zen version -o json
kubectl zen version -o json

vars="$(dirname "${BASH_SOURCE[0]}")/cel/instance.yaml"
step "kubectl zen cel eval ... --vars examples/cel/instance.yaml"
kubectl zen cel eval --vars "$vars" \
  "schema.spec.name + '-svc'" \
  'deployment.status.availableReplicas >= schema.spec.replicas' \
  'schema.spec.ports.map(p, {"port": p, "name": "p" + string(p)})' \
  "quantity(schema.spec.memory).isGreaterThan(quantity('256Mi'))"

step "kubectl zen cel check ... -o wide"
kubectl zen cel check -o wide --vars "$vars" \
  'deployment.status.conditions.exists(c, c.type == "Available" && c.status == "True")'

rgd="$(dirname "${BASH_SOURCE[0]}")/rgd"
step "kubectl zen graph inspect examples/rgd/web-app.yaml"
kubectl zen graph inspect "$rgd/web-app.yaml"

step "kubectl zen graph validate examples/rgd/broken.yaml   # exit code 1: four errors"
kubectl zen graph validate "$rgd/broken.yaml" || true

step "kubectl zen graph export examples/rgd/database.yaml -o mermaid"
kubectl zen graph export "$rgd/database.yaml" -o mermaid

# zen-sim: a Kubernetes API in the background, for the cluster steps.
sim_dir="$(mktemp -d)"
kubectl zen sim --write-kubeconfig "$sim_dir/kubeconfig" 2>"$sim_dir/log" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$sim_dir"' EXIT
for _ in $(seq 50); do [ -s "$sim_dir/kubeconfig" ] && break; sleep 0.1; done
kc=(--kubeconfig "$sim_dir/kubeconfig" --cache-dir "$sim_dir/cache")

step "kubectl zen sim --write-kubeconfig \$KUBECONFIG &"
cat "$sim_dir/log"

step "kubectl apply -f examples/sim/web.yaml && kubectl wait --for=condition=Available deploy/web"
kubectl "${kc[@]}" apply -f "$(dirname "${BASH_SOURCE[0]}")/sim/web.yaml"
kubectl "${kc[@]}" wait --for=condition=Available deploy/web --timeout=30s

step "kubectl get deploy,pods,endpointslices -o wide"
kubectl "${kc[@]}" get deploy,pods,endpointslices -o wide

step "kubectl get --raw /apis/metrics.k8s.io/v1beta1/namespaces/default/pods   # the usage model"
kubectl "${kc[@]}" get --raw /apis/metrics.k8s.io/v1beta1/namespaces/default/pods | "$python" -c '
import json, sys
for pod in json.load(sys.stdin)["items"]:
    print(pod["metadata"]["name"], pod["containers"][0]["usage"])'

inst="$(dirname "${BASH_SOURCE[0]}")/reconcile/web-app-instance.yaml"
step "kubectl zen reconcile -f examples/rgd/web-app.yaml -i examples/reconcile/web-app-instance.yaml --dry-run | head -20"
kubectl zen reconcile -f "$rgd/web-app.yaml" -i "$inst" --dry-run | head -20

step "kubectl zen reconcile -f examples/rgd/web-app.yaml -i examples/reconcile/web-app-instance.yaml   # applied to zen-sim, with its status"
kubectl zen reconcile --kubeconfig "$sim_dir/kubeconfig" -f "$rgd/web-app.yaml" -i "$inst"

step "kubectl zen reconcile ... again   # unchanged: 0 writes"
kubectl zen reconcile --kubeconfig "$sim_dir/kubeconfig" -f "$rgd/web-app.yaml" -i "$inst" 2>/dev/null | tail -6

step "kubectl zen reconcile ... --delete   # the last level first"
kubectl zen reconcile --kubeconfig "$sim_dir/kubeconfig" -f "$rgd/web-app.yaml" -i "$inst" --delete 2>/dev/null

step "kubectl zen tune -n default --sample-for 3s --every 500ms --min-samples 5   # usage from metrics.k8s.io"
kubectl zen tune --kubeconfig "$sim_dir/kubeconfig" -n default --sample-for 3s --every 500ms --min-samples 5 2>/dev/null

step "kubectl zen tune -f examples/tune/manifests.yaml | tail -8   # lint manifests (exit 1: error findings)"
kubectl zen tune -f "$(dirname "${BASH_SOURCE[0]}")/tune/manifests.yaml" | tail -8 || true

step "kubectl zen tune gateway --rps 3000 --concurrency 10000"
kubectl zen tune gateway --rps 3000 --concurrency 10000

step "kubectl zen bench api --duration=3s --workers=4 --resources=100   # judged against the API SLOs"
kubectl zen bench api --kubeconfig "$sim_dir/kubeconfig" --duration=3s --workers=4 --resources=100 2>/dev/null

step "kubectl zen bench http \$SIM/version --rate 200 --duration 2s --target-p99 100ms"
kubectl zen bench http "$(kubectl config view --kubeconfig "$sim_dir/kubeconfig" -o jsonpath='{.clusters[0].cluster.server}')/version" --rate 200 --duration 2s --target-p99 100ms

step "kubectl zen bench graph --sizes 10,100,1000"
kubectl zen bench graph --sizes 10,100,1000 --budget 100ms

step "$python -c 'import kubezen; print(kubezen.version_info())'"
"$python" -c 'import kubezen; print(kubezen.version_info())'

step "$python -c 'from kubezen import cel; print(cel.eval(...))'"
"$python" -c 'from kubezen import cel; print(cel.eval("schema.spec.replicas * 2", {"schema": {"spec": {"replicas": 3}}}))'

step "$python -c 'from kubezen.graph import Graph; print(Graph.from_file(...).order())'"
"$python" -c "from kubezen.graph import Graph; print(Graph.from_file('$rgd/platform.yaml').order())"

step "$python -c 'from kubezen import sim; ...'   # zen-sim from Python"
"$python" -c '
from kubezen import sim
with sim.start() as cluster:
    print(cluster)
    print(open(cluster.kubeconfig).read().splitlines()[0], "...")'
