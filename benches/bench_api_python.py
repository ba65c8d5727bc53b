"""`kubectl zen bench api` beside an equivalent script on the Python `kubernetes` client.

Both load the same zen-sim (started here, on loopback) with the same workers, objects and
mix of verbs (get 50, list 5, update 15, patch 10, create 10, delete 10; no watch), each
worker on its own share of the objects, for the same time; the script prints the operations
per second each achieved and their ratio. The Python side uses one thread and one
`ApiClient` (its own connection pool) per worker, as such a script would.

    make bench-api-python        # installs the kubernetes client, builds, then runs this
    python3 benches/bench_api_python.py --zen target/release/kubectl-zen --workers 4 --duration 20
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import threading
import time
from typing import Any

import kubezen.sim

MIX = [("get", 50), ("list", 5), ("update", 15), ("patch", 10), ("create", 10), ("delete", 10)]
PAYLOAD = "x" * 1024


def python_client(kubeconfig: str, workers: int, resources: int, duration: float) -> dict[str, Any]:
    from kubernetes import client, config  # type: ignore[import-untyped]

    namespace = f"py-bench-{random.randrange(1 << 32):08x}"
    setup = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    setup.create_namespace({"metadata": {"name": namespace}})

    def body(name: str, seq: int) -> dict[str, Any]:
        return {"metadata": {"name": name}, "data": {"payload": PAYLOAD, "seq": str(seq)}}

    for i in range(resources):
        setup.create_namespaced_config_map(namespace, body(f"obj-{i}", 0))
    counts = [0] * workers
    errors = [0] * workers
    verbs = [v for v, _ in MIX]
    weights = [w for _, w in MIX]
    start = time.perf_counter()
    deadline = start + duration

    def work(index: int) -> None:
        api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        present = [f"obj-{i}" for i in range(index, resources, workers)]
        absent: list[str] = []
        rng = random.Random(index)
        extra = seq = 0
        while time.perf_counter() < deadline:
            verb = rng.choices(verbs, weights)[0]
            seq += 1
            if verb not in ("create", "list") and not present:
                verb = "create"
            try:
                if verb == "create":
                    if absent:
                        name = absent.pop()
                    else:
                        extra += 1
                        name = f"obj-w{index}-{extra}"
                    api.create_namespaced_config_map(namespace, body(name, seq))
                    present.append(name)
                elif verb == "list":
                    api.list_namespaced_config_map(namespace)
                elif verb == "get":
                    api.read_namespaced_config_map(rng.choice(present), namespace)
                elif verb == "update":
                    api.replace_namespaced_config_map(
                        name := rng.choice(present), namespace, body(name, seq)
                    )
                elif verb == "patch":
                    api.patch_namespaced_config_map(
                        rng.choice(present), namespace, {"data": {"seq": str(seq)}}
                    )
                else:
                    name = present.pop(rng.randrange(len(present)))
                    api.delete_namespaced_config_map(name, namespace)
                    absent.append(name)
            except Exception:  # noqa: BLE001 - any failure is an error, as bench api counts it
                errors[index] += 1
            counts[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    setup.delete_namespace(namespace)
    return {"operations": sum(counts), "errors": sum(errors), "seconds": elapsed,
            "per_second": sum(counts) / elapsed}


def zen(binary: str, kubeconfig: str, workers: int, resources: int, duration: float) -> dict[str, Any]:
    out = subprocess.run(
        [binary, "--kubeconfig", kubeconfig, "bench", "api", "--workers", str(workers),
         "--resources", str(resources), "--duration", f"{duration}s",
         "--ops", "create,get,list,update,patch,delete", "-o", "json"],
        capture_output=True, text=True,
    )
    # Exit 1 is a verdict that failed (the report is still whole); anything else is a failure.
    if out.returncode not in (0, 1) or not out.stdout.strip():
        raise SystemExit(f"bench api failed ({out.returncode}): {out.stderr.strip()}")
    report = json.loads(out.stdout)
    return {"operations": report["operations"], "errors": report["errors"],
            "seconds": report["durationSeconds"], "per_second": report["perSecond"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zen", default="target/release/kubectl-zen")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--resources", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    with kubezen.sim.start() as sim:
        python = python_client(sim.kubeconfig, args.workers, args.resources, args.duration)
        rust = zen(args.zen, sim.kubeconfig, args.workers, args.resources, args.duration)
    for name, result in (("kubernetes (Python)", python), ("kubectl zen bench api", rust)):
        print(f"{name:22} {result['operations']:>8} ops in {result['seconds']:.1f} s: "
              f"{result['per_second']:>9.1f} ops/s, {result['errors']} errors")
    print(f"ratio: {rust['per_second'] / python['per_second']:.1f}x "
          f"({args.workers} workers, {args.resources} objects, {args.duration:g} s each)")


if __name__ == "__main__":
    main()
