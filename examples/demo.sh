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

step "$python -c 'import kubezen; print(kubezen.version_info())'"
"$python" -c 'import kubezen; print(kubezen.version_info())'

step "$python -c 'from kubezen import cel; print(cel.eval(...))'"
"$python" -c 'from kubezen import cel; print(cel.eval("schema.spec.replicas * 2", {"schema": {"spec": {"replicas": 3}}}))'

step "$python -c 'from kubezen.graph import Graph; print(Graph.from_file(...).order())'"
"$python" -c "from kubezen.graph import Graph; print(Graph.from_file('$rgd/platform.yaml').order())"
