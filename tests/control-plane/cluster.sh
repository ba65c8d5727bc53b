#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, for the second pass of the tests: etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler built from the Kubernetes Go
# modules (the go.mod files beside this script pin them), kwok as every node's kubelet and
# metrics-server for metrics.k8s.io.
#
#   cluster.sh build            build the binaries once per version into the cache; print its bin dir
#   cluster.sh bin-dir          print that directory (built or not)
#   cluster.sh up DIR           start a cluster whose state, logs and kubeconfig live in DIR
#   cluster.sh down DIR         stop everything `up DIR` started and remove its state
#   cluster.sh restart-apiserver DIR [SECONDS]
#                               kill kube-apiserver, wait SECONDS (default 0), start it again;
#                               returns once it is ready (the other components catch up later)
#   cluster.sh settle DIR       wait until a Deployment becomes Available again end to end
#   cluster.sh run CMD...       up in a fresh directory, run CMD with ZEN_TEST_KUBECONFIG and
#                               KUBECONFIG set to the cluster's and its kubectl first on PATH,
#                               then down, also when CMD fails
#   cluster.sh skips FILE       count the skips the tests recorded in FILE (ZEN_TEST_SKIP_LOG)
#
# The cluster: TLS on 127.0.0.1 with a CA of its own, client-certificate auth (the admin is in
# system:masters; the controller manager and scheduler have their own identities and RBAC),
# RBAC and Node authorization, the default admission plugins plus NodeRestriction, service
# account tokens signed by a key of its own, and three kwok nodes in two regions (eu-west,
# us-east), labelled as zen-sim's nodes are, with a default StorageClass ("standard") and 40
# volumes for claims to bind; pod usage from the pods' zen-sim.kubezen.io/cpu and /memory
# annotations through metrics-server, and pod ports forwarded where kwok ClusterPortForwards
# say. Nothing listens off loopback.
# Each component is cached in ${ZEN_CONTROL_PLANE_CACHE:-~/.cache/kubezen/control-plane}/
# <name>-<key>, the key a hash of its module and the Go version: a version bump rebuilds it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${ZEN_CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubezen/control-plane}"
say() { printf 'control-plane: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The Kubernetes version the binaries report (`kubectl version`, /version), from go.mod.
kube_version() { awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$here/kubernetes/go.mod"; }

# What the control plane is built from: a Go module directory beside this script each.
components=(kubernetes etcd kwok metrics-server)

# A component's key: a hash of its module (go.mod, go.sum, its own Go files) and the Go
# version. Each is built and cached on its own, so a change to one rebuilds only that one.
component_key() { # NAME
  {
    go version
    cat "$here/$1/go.mod" "$here/$1/go.sum"
    find "$here/$1" -name '*.go' -print0 | sort -z | xargs -0 -r cat
  } | sha256sum | cut -c1-16
}

cache_key() { for c in "${components[@]}"; do component_key "$c"; done | sha256sum | cut -c1-16; }

bin_dir() { printf '%s/bin-%s\n' "$cache_root" "$(cache_key)"; }

build_component() { # NAME OUT
  local out="$2"
  case "$1" in
    kubernetes)
      local version major minor
      version="$(kube_version)"
      [[ -n "$version" ]] || die "no k8s.io/kubernetes version in $here/kubernetes/go.mod"
      major="${version#v}"; major="${major%%.*}"
      minor="${version#v*.}"; minor="${minor%%.*}"
      # The version the components report; without it they say v0.0.0-master.
      local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
      ldflags+=" -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
      ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
      ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"
      (cd "$here/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$out/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
      ;;
    etcd) (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" .) ;;
    kwok)
      # kwok, its default stages, the CRD of its port-forward rules and its model of the
      # kubelet's /metrics/resource, all from the same module.
      local source
      (cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok \
        && go run ./stages > "$out/kwok-stages.yaml")
      source="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
      cp "$source/kustomize/crd/bases/kwok.x-k8s.io_clusterportforwards.yaml" "$out/kwok-crds.yaml"
      cp "$source/kustomize/metrics/resource/metrics-resource.yaml" "$out/kwok-metrics-resource.yaml"
      ;;
    metrics-server)
      (cd "$here/metrics-server" && go build -trimpath -ldflags "-s -w" -o "$out/metrics-server" \
        sigs.k8s.io/metrics-server/cmd/metrics-server)
      ;;
  esac
}

build() {
  command -v go >/dev/null || die "Go is not installed (https://go.dev/doc/install); the README lists what a machine needs"
  local bin component out
  bin="$(bin_dir)"
  if [[ -f "$bin/.complete" ]]; then
    printf '%s\n' "$bin"
    return
  fi
  local started=$SECONDS
  rm -rf "$bin" && mkdir -p "$bin"
  for component in "${components[@]}"; do
    out="$cache_root/$component-$(component_key "$component")"
    if [[ ! -f "$out/.complete" ]]; then
      say "building $component into $out (once per version; Kubernetes takes ~12 minutes on 2 cores)"
      rm -rf "$out" && mkdir -p "$out"
      build_component "$component" "$out"
      touch "$out/.complete"
    fi
    ln -sf "$out"/* "$bin/"
  done
  touch "$bin/.complete"
  say "ready in $((SECONDS - started)) s: $bin"
  printf '%s\n' "$bin"
}

# A free TCP port on loopback (the kernel's choice; nothing else binds between here and use
# but a process of this machine's, which the start-up check below would catch).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Certificates: a CA, the API server's serving certificate and one client certificate per
# identity. EC P-256 keys in PKCS#8, which every client (Go, rustls, Python) reads.
pki() {
  local pki="$1"
  mkdir -p "$pki" && cd "$pki"
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
  key ca
  openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=kubezen-test-ca" -out ca.crt 2>/dev/null
  sign() { # NAME SUBJECT EXTENSIONS
    key "$1"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -sha256 \
      -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
  }
  local client="keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  sign apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign admin "/O=system:masters/CN=kubezen-admin" "$client"
  sign controller-manager "/CN=system:kube-controller-manager" "$client"
  sign scheduler "/CN=system:kube-scheduler" "$client"
  sign apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" "$client"
  # The aggregator's client identity towards metrics-server (kubeadm's front proxy).
  sign front-proxy-client "/CN=front-proxy-client" "$client"
  # What kwok (every node's kubelet API) and metrics-server serve on loopback.
  sign loopback-serving "/CN=kubezen-test-loopback" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
  # The key that signs service account tokens.
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

kubeconfig() { # FILE SERVER USER PKI
  local b64="base64 -w0"
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubezen-test
  cluster:
    server: $2
    certificate-authority-data: $($b64 < "$4/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $($b64 < "$4/$3.crt")
    client-key-data: $($b64 < "$4/$3.key")
contexts:
- name: kubezen-test
  context: {cluster: kubezen-test, user: $3}
current-context: kubezen-test
EOF
  chmod 600 "$1"
}

# Starts one component in the background, its output in DIR/logs/NAME.log, its pid in DIR/pids.
start() { # DIR NAME CMD...
  local dir="$1" name="$2"
  shift 2
  "$@" > "$dir/logs/$name.log" 2>&1 &
  printf '%s %s\n' "$name" "$!" >> "$dir/pids"
  # Stopped by pid (down, restart-apiserver), not as this shell's job: no "Killed" notices.
  disown "$!"
}

# Polls COMMAND until it succeeds; fails at once when a component has exited.
wait_for() { # SECONDS WHAT DIR COMMAND...
  local deadline=$((SECONDS + $1)) what="$2" dir="$3" name pid
  shift 3
  until "$@" >/dev/null 2>&1; do
    while read -r name pid; do
      if ! kill -0 "$pid" 2>/dev/null; then
        say "$name exited while waiting for $what; its log ends with:"
        tail -n 5 "$dir/logs/$name.log" >&2
        return 1
      fi
    done < "$dir/pids"
    if ((SECONDS >= deadline)); then
      say "timed out waiting for $what; the logs in $dir/logs end with:"
      tail -n 5 "$dir"/logs/*.log >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

start_apiserver() { # DIR
  local dir="$1" bin
  bin="$(cat "$dir/bin-dir")"
  # shellcheck disable=SC1091
  source "$dir/ports"
  # --endpoint-reconciler-type=none: the kubernetes Service's endpoint would be the advertised
  # 127.0.0.1, which no endpoint may be; nothing in the cluster dials it, so it has none.
  start "$dir" kube-apiserver "$bin/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --client-ca-file="$dir/pki/ca.crt" \
    --kubelet-client-certificate="$dir/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$dir/pki/apiserver-kubelet-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --endpoint-reconciler-type=none \
    --kubelet-preferred-address-types=InternalIP \
    --requestheader-client-ca-file="$dir/pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$dir/pki/front-proxy-client.crt" \
    --proxy-client-key-file="$dir/pki/front-proxy-client.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling=false --cert-dir="$dir/pki/generated"
  wait_for 120 "kube-apiserver to be ready" "$dir" \
    curl -sf --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz"
}

up() {
  local dir="$1" bin
  [[ -n "$dir" ]] || die "usage: cluster.sh up DIR"
  [[ ! -f "$dir/pids" ]] || die "$dir holds a running cluster: cluster.sh down $dir first"
  bin="$(build)"
  mkdir -p "$dir/logs" "$dir/etcd"
  dir="$(cd "$dir" && pwd)"
  printf '%s\n' "$bin" > "$dir/bin-dir"
  local started=$SECONDS
  pki "$dir/pki"
  cat > "$dir/ports" <<EOF
ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
API_PORT=$(free_port)
KCM_PORT=$(free_port)
SCHEDULER_PORT=$(free_port)
KWOK_PORT=$(free_port)
METRICS_PORT=$(free_port)
EOF
  # shellcheck disable=SC1091
  source "$dir/ports"
  local server="https://127.0.0.1:$API_PORT"
  kubeconfig "$dir/kubeconfig" "$server" admin "$dir/pki"
  kubeconfig "$dir/controller-manager.kubeconfig" "$server" controller-manager "$dir/pki"
  kubeconfig "$dir/scheduler.kubeconfig" "$server" scheduler "$dir/pki"

  start "$dir" etcd "$bin/etcd" --data-dir="$dir/etcd" --name=kubezen-test \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="kubezen-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes=4294967296
  wait_for 60 "etcd to be healthy" "$dir" curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  start_apiserver "$dir"
  start "$dir" kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
    --use-service-account-credentials=true --controllers='*,bootstrapsigner,tokencleaner' \
    --service-account-private-key-file="$dir/pki/sa.key" --root-ca-file="$dir/pki/ca.crt" \
    --cluster-signing-cert-file="$dir/pki/ca.crt" --cluster-signing-key-file="$dir/pki/ca.key" \
    --allocate-node-cidrs=true --cluster-cidr=10.244.0.0/16 --service-cluster-ip-range=10.96.0.0/16 \
    --profiling=false
  start "$dir" kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false --profiling=false
  # kwok plays the kubelet of every node annotated kwok.x-k8s.io/node=fake. The nodes' address is
  # loopback, where kwok serves the kubelet API over TLS: port-forwards (to where a
  # ClusterPortForward says: tests point pod ports at servers of their own) and each node's
  # /metrics/resource, with every container using what the pod's zen-sim.kubezen.io/cpu and
  # /memory annotations say (as on zen-sim; else 10m and 32Mi). Pod IPs are never dialled.
  local kubectl=("$bin/kubectl" --kubeconfig="$dir/kubeconfig")
  wait_for 60 "the API server to take CRDs" "$dir" \
    "${kubectl[@]}" apply --server-side -f "$bin/kwok-crds.yaml"
  cat > "$dir/kwok-usage.yaml" <<'EOF'
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterResourceUsage
metadata: {name: usage-from-zen-sim-annotations}
spec:
  usages:
  - usage:
      cpu:
        expression: |
          "zen-sim.kubezen.io/cpu" in pod.metadata.annotations
          ? Quantity(pod.metadata.annotations["zen-sim.kubezen.io/cpu"]) : Quantity("10m")
      memory:
        expression: |
          "zen-sim.kubezen.io/memory" in pod.metadata.annotations
          ? Quantity(pod.metadata.annotations["zen-sim.kubezen.io/memory"]) : Quantity("32Mi")
EOF
  start "$dir" kwok "$bin/kwok" --kubeconfig="$dir/kubeconfig" \
    --config="$bin/kwok-stages.yaml" --config="$bin/kwok-metrics-resource.yaml" \
    --config="$dir/kwok-usage.yaml" --enable-crds=ClusterPortForward \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
    --tls-cert-file="$dir/pki/loopback-serving.crt" --tls-private-key-file="$dir/pki/loopback-serving.key" \
    --cidr=10.244.0.1/16 --node-lease-duration-seconds=40
  # metrics-server serves metrics.k8s.io through the aggregator from what kwok reports, as on a
  # cluster; its Service names it by an ExternalName (localhost), as no endpoint may be loopback.
  start "$dir" metrics-server "$bin/metrics-server" \
    --bind-address=127.0.0.1 --secure-port="$METRICS_PORT" \
    --tls-cert-file="$dir/pki/loopback-serving.crt" --tls-private-key-file="$dir/pki/loopback-serving.key" \
    --kubeconfig="$dir/kubeconfig" --authentication-kubeconfig="$dir/kubeconfig" \
    --authorization-kubeconfig="$dir/kubeconfig" \
    --kubelet-preferred-address-types=InternalIP --kubelet-use-node-status-port --kubelet-insecure-tls \
    --metric-resolution=10s --kubelet-request-timeout=5s
  "${kubectl[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $METRICS_PORT}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: $METRICS_PORT}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
EOF

  # Three nodes in two regions, labelled as zen-sim labels its nodes (src/sim/control.rs).
  local index region zone
  for index in 0 1 2; do
    case $index in
      0) region=eu-west zone=eu-west-1a ;;
      1) region=us-east zone=us-east-1a ;;
      2) region=eu-west zone=eu-west-1b ;;
    esac
    "${kubectl[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$index
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/kwok-node-$index/metrics/resource
  labels:
    kubernetes.io/hostname: kwok-node-$index
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: kwok.standard
    topology.kubernetes.io/region: $region
    topology.kubernetes.io/zone: $zone
status:
  allocatable: {cpu: "32", memory: 128Gi, pods: "250"}
  capacity: {cpu: "32", memory: 128Gi, pods: "250"}
EOF
  done
  wait_for 120 "the kwok nodes to be Ready" "$dir" \
    "${kubectl[@]}" wait --for=condition=Ready node --all --timeout=1s
  # Storage as a small cluster has it: a default StorageClass "standard" (kind's name for it)
  # and a pool of volumes that kube-controller-manager's volume binder hands to claims. The
  # volumes are never mounted: kwok starts no container.
  {
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Retain
EOF
    for index in $(seq 0 39); do
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: kwok-volume-$index
spec:
  storageClassName: standard
  capacity: {storage: 1Ti}
  accessModes: [ReadWriteOnce, ReadOnlyMany, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /var/lib/kwok-volumes/$index}
EOF
    done
  } | "${kubectl[@]}" apply -f - >/dev/null
  wait_for 120 "the default ServiceAccount (the controller manager's token controllers)" "$dir" \
    "${kubectl[@]}" get serviceaccount default -n default
  # The aggregator reaches metrics-server. A pod's metrics come two scrapes (10 s apart) after
  # it runs, as on any cluster; tests wait for them.
  wait_for 60 "metrics.k8s.io to be served" "$dir" \
    "${kubectl[@]}" wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=1s
  say "Kubernetes $(kube_version) up in $((SECONDS - started)) s at $server; kubeconfig: $dir/kubeconfig"
}

# Stops one component: TERM, then KILL after 10 s.
stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  local dir="$1" name pid
  [[ -n "$dir" ]] || die "usage: cluster.sh down DIR"
  if [[ -f "$dir/pids" ]]; then
    # The reverse of the start order: clients before the API server, etcd last.
    tac "$dir/pids" | while read -r name pid; do stop_pid "$pid"; done
    rm -f "$dir/pids"
  fi
  rm -rf "$dir/etcd" "$dir/pki"
}

restart_apiserver() {
  local dir="$1" pause="${2:-0}" pid
  [[ -f "$dir/pids" ]] || die "no cluster runs in $dir"
  pid="$(awk '$1 == "kube-apiserver" {pid = $2} END {print pid}' "$dir/pids")"
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  # Its line goes: start_apiserver adds the new process's, and a dead pid is a failed start.
  awk -v pid="$pid" '$2 != pid' "$dir/pids" > "$dir/pids.new" && mv "$dir/pids.new" "$dir/pids"
  sleep "$pause"
  start_apiserver "$dir"
}

# Waits until the cluster works end to end again after a restart: the controller manager,
# the scheduler and kwok retry their watches with a backoff of their own, and catch up tens of
# seconds after the API server is back. A Deployment in kube-system that becomes Available has
# passed through all of them; it is then deleted.
settle() {
  local dir="$1" name="settle-$RANDOM$RANDOM"
  [[ -f "$dir/pids" ]] || die "no cluster runs in $dir"
  local kubectl=("$(cat "$dir/bin-dir")/kubectl" --kubeconfig="$dir/kubeconfig" -n kube-system)
  wait_for 120 "the API server to take a Deployment" "$dir" \
    "${kubectl[@]}" create deployment "$name" --image=registry.k8s.io/pause:3.10
  wait_for 180 "a Deployment to become Available" "$dir" \
    "${kubectl[@]}" wait --for=condition=Available "deployment/$name" --timeout=5s
  "${kubectl[@]}" delete deployment "$name" --wait=false >/dev/null
}

run() {
  (($#)) || die "usage: cluster.sh run CMD..."
  local dir status=0
  dir="$(mktemp -d "${TMPDIR:-/tmp}/kubezen-control-plane.XXXXXX")"
  # shellcheck disable=SC2064
  trap "down '$dir'; rm -rf '$dir'" EXIT
  trap 'exit 130' INT TERM
  up "$dir" || { tail -n 20 "$dir"/logs/*.log >&2 || true; exit 1; }
  ZEN_TEST_KUBECONFIG="$dir/kubeconfig" KUBECONFIG="$dir/kubeconfig" ZEN_TEST_CONTROL_PLANE="$dir" \
    PATH="$(cat "$dir/bin-dir"):$PATH" "$@" || status=$?
  if ((status != 0)); then
    say "the command failed ($status); the components' logs were in $dir/logs:"
    for log in "$dir"/logs/*.log; do
      say "--- $(basename "$log") (last 15 lines)"
      tail -n 15 "$log" >&2
    done
  fi
  return "$status"
}

# The parts of tests skipped on the real control plane (support::skip in the Rust tests, the
# `real_cluster_skip` of the Python tests), counted by reason: only what needs zen-sim may skip.
skips() {
  local log="$1"
  if [[ ! -s "$log" ]]; then
    say "0 test parts skipped on the real control plane"
    return
  fi
  say "$(wc -l < "$log") test parts skipped on the real control plane, by reason:"
  sed 's/^[^:]*: //' "$log" | sort | uniq -c | sort -rn >&2
}

case "${1:-}" in
  build) build ;;
  bin-dir) bin_dir ;;
  up) up "${2:-}" ;;
  down) down "${2:-}" ;;
  restart-apiserver) restart_apiserver "${2:-}" "${3:-0}" ;;
  settle) settle "${2:-}" ;;
  run) shift; run "$@" ;;
  skips) skips "${2:?usage: cluster.sh skips FILE}" ;;
  *) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
