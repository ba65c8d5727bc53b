"""kubezen.graph.Graph.order() against networkx on the same graph built from Python.

The graph is the synthetic shape of benches/graph.rs: each of N resources depends on a parent
a quarter of its position back, and every third also on its predecessor. networkx's
topological_sort is the plain DFS order; lexicographical_topological_sort with the
declaration index as key is the deterministic order KRO's matches. Both sides get the graph
already built; building is timed apart.

    python3 benches/python_graph.py [N ...]     (default: 10000)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import networkx as nx

from kubezen.graph import Graph


def dependencies(n: int) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {}
    for i in range(n):
        needs = []
        if i > 0:
            needs.append(f"r{(i - 1) // 4}")
            if i % 3 == 0 and (i - 1) // 4 != i - 1:
                needs.append(f"r{i - 1}")
        deps[f"r{i}"] = needs
    return deps


def best(fn: Callable[[], object], repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000]
    print(f"{'nodes':>7} {'kubezen order':>14} {'nx topo':>10} {'nx lexico':>10} {'ratio':>7} {'ratio lex':>9}   build kubezen / nx")
    for n in sizes:
        deps = dependencies(n)
        build_zen = best(lambda: Graph.from_dependencies(deps), 5)
        g = Graph.from_dependencies(deps)

        def build() -> nx.DiGraph:
            d = nx.DiGraph()
            d.add_nodes_from(deps)
            d.add_edges_from((need, node) for node, needs in deps.items() for need in needs)
            return d

        build_nx = best(build, 5)
        d = build()
        index = {node: i for i, node in enumerate(deps)}
        ours = best(g.order)
        plain = best(lambda: list(nx.topological_sort(d)))
        lexico = best(lambda: list(nx.lexicographical_topological_sort(d, key=index.__getitem__)))
        assert g.order() == list(nx.lexicographical_topological_sort(d, key=index.__getitem__))
        print(
            f"{n:>7} {ours * 1e3:>11.3f} ms {plain * 1e3:>7.2f} ms {lexico * 1e3:>7.2f} ms "
            f"{plain / ours:>6.1f}x {lexico / ours:>8.1f}x   {build_zen * 1e3:.1f} ms / {build_nx * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
