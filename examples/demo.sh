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

step "$python -c 'import kubezen; print(kubezen.version_info())'"
"$python" -c 'import kubezen; print(kubezen.version_info())'
