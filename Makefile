# The few commands a contributor needs. `make demo` and `make test` are the README's two
# commands: on a fresh machine each does all of its own set-up.

CARGO ?= cargo
PYTHON ?= python3
PIP_INSTALL := $(PYTHON) -m pip --disable-pip-version-check install --root-user-action=ignore --quiet
# The plugin binary the Python tests compare the Python face with.
export KUBECTL_ZEN_BIN ?= $(CURDIR)/target/debug/kubectl-zen

.PHONY: help build release demo test lint control-plane protobuf-schema rust-test python python-test deploy dist image bench bench-tune bench-lead bench-python bench-api-python fuzz install clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the plugin (debug)
	$(CARGO) build --locked -p kubectl-zen

release: ## build the plugin (release)
	$(CARGO) build --locked --release -p kubectl-zen

demo: release python ## build both faces and run them on the embedded example data
	@# A directory of its own: kubectl would list target/release's kubectl-zen.d as a plugin too.
	install -D -m 0755 target/release/kubectl-zen target/demo/bin/kubectl-zen
	PATH="$(CURDIR)/target/demo/bin:$$PATH" PYTHON="$(PYTHON)" bash examples/demo.sh

lint: ## rustfmt, clippy and rustdoc (warnings are errors)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --no-deps --workspace

# The real control plane of the tests' second pass (tests/control-plane): built once per
# version from the Kubernetes Go modules, started for each pass, stopped after it.
CONTROL_PLANE := bash tests/control-plane/cluster.sh
# What the second pass skipped, each needing zen-sim; `make test` ends with the count.
export ZEN_TEST_SKIP_LOG := $(CURDIR)/target/control-plane-skips.log
# The Rust suites that talk to a cluster, the core's and the plugin's (the same names pick both
# packages' suites): zen-sim in the first pass, the real one in the second.
CLUSTER_SUITES := conformance kubectl cluster bench bench_latency forward install lead reconcile tune
# Both passes use the kubectl built with the control plane, of the release zen-sim follows.
WITH_KUBECTL = PATH="$$($(CONTROL_PLANE) bin-dir):$$PATH"

test: lint rust-test python-test ## every check and test CI runs, against zen-sim and a real control plane
	@$(CONTROL_PLANE) skips $(ZEN_TEST_SKIP_LOG)

control-plane: ## build the real control plane of the tests' second pass (cached per version)
	$(CONTROL_PLANE) build

# zen-sim's protobuf schema, generated from the Go types of the control plane's release.
PROTOSCHEMA := cd tests/control-plane/protoschema && go run -trimpath .
SCHEMA_JSON := $(CURDIR)/src/sim/protobuf/schema.json

protobuf-schema: ## regenerate zen-sim's protobuf schema from k8s.io/api (tests/control-plane/protoschema)
	$(PROTOSCHEMA) > $(SCHEMA_JSON)

rust-test: control-plane ## Rust unit, integration, doc and example tests; cluster suites twice
	@$(PROTOSCHEMA) | cmp -s - $(SCHEMA_JSON) || { echo "src/sim/protobuf/schema.json is not what tests/control-plane/protoschema generates: run make protobuf-schema" >&2; exit 1; }
	@mkdir -p target && rm -f $(ZEN_TEST_SKIP_LOG)
	$(WITH_KUBECTL) ZEN_TEST_SKIP_LOG= $(CARGO) test --locked
	$(CONTROL_PLANE) run $(CARGO) test --locked -p kubezen -p kubectl-zen $(CLUSTER_SUITES:%=--test %)

python: ## install the kubezen Python package from this checkout, with its test tools
	$(PIP_INSTALL) 'maturin>=1.9,<2'
	$(PIP_INSTALL) --no-build-isolation '.[test]'

python-test: build python control-plane ## Python tests, the stub checked against the native module, mypy; cluster tests twice
	$(PYTHON) -m mypy.stubtest kubezen
	$(PYTHON) -m mypy --strict python/kubezen tests/python
	$(WITH_KUBECTL) ZEN_TEST_SKIP_LOG= $(PYTHON) -m pytest
	$(CONTROL_PLANE) run $(PYTHON) -m pytest -m cluster

deploy: ## regenerate deploy/ (the kustomize bases and graph) from `kubectl zen install`
	ZEN_UPDATE_DEPLOY=1 $(CARGO) test --locked -p kubectl-zen --test install deploy_holds_what_install_prints

dist: ## the krew release archive, its sha256 and the rendered krew manifest, in dist/
	CARGO="$(CARGO)" bash scripts/dist.sh

# The controllers' image (docs/install.md); needs a Docker engine, which CI's machines lack.
IMAGE ?= ghcr.io/kubectl-zen/kubectl-zen:v$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
image: ## build the controllers' image (Dockerfile: the static binary on distroless/static)
	docker build -t $(IMAGE) .

bench: ## criterion benchmarks (release build), the CEL ratio table, zen-sim's capacity (100,000 objects)
	$(CARGO) bench --locked --bench table --bench cel --bench graph --bench cluster --bench reconcile --bench tune --bench bench --bench forward --bench protobuf
	$(PYTHON) benches/cel_report.py
	$(CARGO) bench --locked --bench sim

# The issue-#7 figure: a 121-million-sample snapshot generated, analysed by the release CLI
# (time and peak RSS), and checked against the exact answers. Needs ~4.5 GB in TUNE_SNAPSHOT.
TUNE_SNAPSHOT ?= target/tune-snapshot
bench-tune: release ## tune a generated 10,000-workload, 14-day snapshot; time, peak RSS, answers checked
	$(CARGO) bench --locked --bench tune_snapshot -- generate $(TUNE_SNAPSHOT) 10000 14 300
	/usr/bin/time -f 'tune --snapshot: %e s wall, %M KB peak RSS' target/release/kubectl-zen tune --snapshot $(TUNE_SNAPSHOT) -o csv > $(TUNE_SNAPSHOT)/report.csv
	$(CARGO) bench --locked --bench tune_snapshot -- check $(TUNE_SNAPSHOT)

bench-lead: release ## zen-lead with 1,000 opted-in Services over 10,000 pods: convergence, steady p95, failover, memory
	$(CARGO) bench --locked --bench lead -- scale 1000 10

bench-python: python ## kubezen against cel-python, common-expression-language and networkx
	$(PIP_INSTALL) cel-python common-expression-language networkx
	$(PYTHON) benches/python_cel.py
	$(PYTHON) benches/python_graph.py 1000 10000

bench-api-python: release python ## `bench api` beside the same workload on the Python kubernetes client
	$(PIP_INSTALL) kubernetes
	$(PYTHON) benches/bench_api_python.py --zen target/release/kubectl-zen

# cargo-fuzz passes nightly flags to rustc; RUSTC_BOOTSTRAP lets the stable toolchain take them.
FUZZ_RUNS ?= 1000000
FUZZ_TARGET ?= cel
fuzz: ## fuzz with cargo-fuzz: FUZZ_TARGET=cel|graph, FUZZ_RUNS executions
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	mkdir -p target/fuzz-corpus/$(FUZZ_TARGET)
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none -O $(FUZZ_TARGET) \
		../target/fuzz-corpus/$(FUZZ_TARGET) seeds/$(FUZZ_TARGET) -- -runs=$(FUZZ_RUNS) -max_len=8192 -timeout=10

install: ## install kubectl-zen into ~/.cargo/bin, where kubectl finds it on PATH
	$(CARGO) install --locked --path kubectl-plugin

clean: ## remove build output
	$(CARGO) clean
	rm -rf dist
