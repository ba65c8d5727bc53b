"""kubectl zen tune next to KRR's simple strategy, on the same cluster and the same history.

Usage (KRR is not on PyPI: a checkout of robusta-dev/krr with its requirements installed in
a virtualenv; Debian's prometheus and promtool; kubectl; a release build of the plugin):

    python3 benches/tune_krr.py --krr-python /path/venv/bin/python --krr /path/krr/krr.py

zen-sim runs a Deployment (3 pods) and a StatefulSet (2 pods); three days of per-minute
history for exactly those pods (CPU counters whose rate follows a seeded random walk, memory
gauges with spikes) are backfilled into a real Prometheus with promtool; then both tools
read it with a 5-minute step and the recommendations are printed side by side with the
relative difference. Nothing is left running. With `--spikes 0` the numbers agree within
rounding; with memory spikes between steps, KRR (which samples memory at the step) reports a
lower peak than tune (which reads every sample with max_over_time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NS = "krr-compare"
MIB = 1024 * 1024
WORKLOADS = """apiVersion: v1
kind: Namespace
metadata: {name: krr-compare}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: krr-compare}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - {name: app, image: api, resources: {requests: {cpu: '1', memory: 1Gi}, limits: {memory: 1Gi}}}
      - {name: proxy, image: envoy, resources: {requests: {cpu: 200m, memory: 256Mi}, limits: {memory: 256Mi}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: krr-compare}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: postgres, image: postgres, resources: {requests: {cpu: '2', memory: 4Gi}, limits: {memory: 4Gi}}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {seconds} s")


def history(pods: list[tuple[str, str]], end: int, days: int, spikes: float) -> str:
    """OpenMetrics text: a CPU counter and a memory gauge per (pod, container), a sample a
    minute for `days` days ending at `end`."""
    rng = random.Random(7)
    minutes = days * 24 * 60
    start = end - minutes * 60
    cpu_lines = ["# TYPE container_cpu_usage_seconds counter"]
    memory_lines = ["# TYPE container_memory_working_set_bytes gauge"]
    for pod, container in pods:
        level = rng.uniform(0.05, 1.5)  # cores
        memory = rng.uniform(100, 2000) * MIB
        total = 0.0
        rate = level
        labels = f'namespace="{NS}",pod="{pod}",container="{container}"'
        for minute in range(minutes + 1):
            t = start + minute * 60
            cpu_lines.append(f"container_cpu_usage_seconds_total{{{labels}}} {total:.6f} {t}")
            rate = max(0.001, rate + rng.gauss(0, level * 0.05) + (level - rate) * 0.02)
            total += rate * 60
            spike = 1.4 if rng.random() < spikes else 1.0
            value = memory * (1 + 0.1 * rng.random()) * spike
            memory_lines.append(f"container_memory_working_set_bytes{{{labels}}} {value:.0f} {t}")
    return "\n".join(cpu_lines + memory_lines + ["# EOF", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--krr-python", required=True, help="the Python of KRR's virtualenv")
    parser.add_argument("--krr", required=True, help="KRR's krr.py")
    parser.add_argument("--zen", default=str(ROOT / "target" / "release" / "kubectl-zen"))
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--spikes", type=float, default=0.001,
                        help="chance a minute that memory spikes to 1.4x (KRR samples memory at the "
                             "step and misses most spikes; tune reads every sample)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tune-krr-"))
    children: list[subprocess.Popen[bytes]] = []
    try:
        kubeconfig = work / "kubeconfig"
        children.append(subprocess.Popen([args.zen, "sim", "--write-kubeconfig", str(kubeconfig)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            if kubeconfig.exists() and kubeconfig.stat().st_size > 0:
                break
            time.sleep(0.1)
        kubectl = ["kubectl", "--kubeconfig", str(kubeconfig)]
        subprocess.run(kubectl + ["apply", "-f", "-"], input=WORKLOADS.encode(), check=True,
                       capture_output=True)
        deadline = time.time() + 30
        while True:
            listed = json.loads(subprocess.run(kubectl + ["get", "pods", "-n", NS, "-o", "json"],
                                               check=True, capture_output=True).stdout)
            if len(listed["items"]) == 5 or time.time() > deadline:
                break
            time.sleep(0.2)
        pods = [(p["metadata"]["name"], c["name"]) for p in listed["items"] for c in p["spec"]["containers"]]

        end = int(time.time()) // 60 * 60 - 120
        data = work / "data"
        (work / "history.om").write_text(history(pods, end, args.days, args.spikes))
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                        str(work / "history.om"), str(data)], check=True, capture_output=True)
        (work / "prometheus.yml").write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n")
        port = free_port()
        children.append(subprocess.Popen(
            ["prometheus", f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/-/ready", 60)

        hours = args.days * 24
        started = time.perf_counter()
        zen = json.loads(subprocess.run(
            [args.zen, "tune", "--kubeconfig", str(kubeconfig), "-n", NS, "--prometheus", url,
             "--history", f"{args.days}d", "--step", "5m", "-o", "json"],
            check=False, capture_output=True).stdout)
        zen_seconds = time.perf_counter() - started
        started = time.perf_counter()
        krr_run = subprocess.run(
            [args.krr_python, args.krr, "simple", "--kubeconfig", str(kubeconfig), "-n", NS,
             "--prometheus-url", url, "--history_duration", str(hours), "--timeframe_duration", "5",
             "-f", "json", "-q"],
            capture_output=True, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
        krr_seconds = time.perf_counter() - started
        if krr_run.returncode != 0:
            sys.stderr.write(krr_run.stderr.decode()[-3000:])
            raise SystemExit("KRR failed")
        krr = json.loads(krr_run.stdout)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    theirs = {}
    for scan in krr["scans"]:
        obj = scan["object"]
        rec = scan["recommended"]["requests"]
        theirs[(obj["name"], obj["container"])] = (rec["cpu"]["value"], rec["memory"]["value"])
    print(f"{'workload/container':28} {'zen cpu':>9} {'krr cpu':>9} {'diff':>7}   {'zen mem':>10} {'krr mem':>10} {'diff':>7}")
    worst_cpu = worst_memory = 0.0
    for r in zen["recommendations"]:
        key = (r["workload"]["name"], r["container"])
        krr_cpu, krr_memory = theirs[key]
        zen_cpu = (r["recommended"]["cpu_request"] or float("nan")) / 1000  # cores
        zen_memory = r["recommended"]["memory_request"] or float("nan")
        cpu_diff = (zen_cpu - float(krr_cpu)) / float(krr_cpu)
        memory_diff = (zen_memory - float(krr_memory)) / float(krr_memory)
        worst_cpu, worst_memory = max(worst_cpu, abs(cpu_diff)), max(worst_memory, abs(memory_diff))
        print(f"{key[0] + '/' + key[1]:28} {zen_cpu * 1000:8.0f}m {float(krr_cpu) * 1000:8.0f}m {cpu_diff:+7.2%}   "
              f"{zen_memory / MIB:8.0f}Mi {float(krr_memory) / MIB:8.0f}Mi {memory_diff:+7.2%}")
    print(f"largest difference: CPU {worst_cpu:.2%}, memory {worst_memory:.2%}; "
          f"kubectl zen tune {zen_seconds:.2f} s, KRR {krr_seconds:.2f} s")


if __name__ == "__main__":
    main()
