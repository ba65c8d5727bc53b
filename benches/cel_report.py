"""Prints the CEL bench figures from criterion's results (run `make bench` first).

The table gives, per expression of benches/cel_expressions.json, the compile and evaluate
times, their ratio, and each evaluation against the simplest one's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRITERION = ROOT / "target" / "criterion"


def estimate(*parts: str) -> float:
    """The mean of a benchmark, in nanoseconds."""
    path = CRITERION.joinpath(*parts, "new", "estimates.json")
    return float(json.loads(path.read_text())["mean"]["point_estimate"])


def main() -> int:
    names = [e["name"] for e in json.loads((ROOT / "benches" / "cel_expressions.json").read_text())["expressions"]]
    for label, bench in [("cached eval", "cached_eval"), ("cache hit", "cache_hit"), ("lookup+eval", "lookup_and_eval"), ("compile", "compile")]:
        print(f"cel/kro {label:12} {estimate('cel_kro', bench):10.1f} ns")
    print()
    base = estimate("cel_eval", names[0])
    print(f"{'expression':18} {'compile µs':>11} {'eval µs':>9} {'compile/eval':>13} {'eval/simplest':>14}")
    for name in names:
        compile_ns, eval_ns = estimate("cel_compile", name), estimate("cel_eval", name)
        print(f"{name:18} {compile_ns / 1000:11.2f} {eval_ns / 1000:9.2f} {compile_ns / eval_ns:13.1f} {eval_ns / base:14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
