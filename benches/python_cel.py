"""kubezen.cel beside cel-python (celpy) and common-expression-language, from Python.

Every engine compiles each expression of benches/cel_expressions.json once and evaluates it
against the same variables; the script checks the engines agree, then times one evaluation
(best of 5 repeats of an auto-sized loop) and prints each engine's time and its ratio to
kubezen's. Each engine gets its variables in the form its API evaluates fastest, built once ahead of the
timing: `kubezen.cel.Variables`, `celpy.json_to_cel`, common-expression-language's
`cel.Context`.

    make bench-python            # installs the two other engines, then runs this
    python3 benches/python_cel.py --json results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubezen import cel as kubezen_cel

SET = json.loads((Path(__file__).parent / "cel_expressions.json").read_text())

Runner = Callable[[], Any]


def kubezen_runner(expression: str, variables: dict[str, Any]) -> Runner:
    program = kubezen_cel.compile(expression)
    converted = kubezen_cel.Variables(variables)
    return lambda: program.eval(converted)


def celpy_runner(expression: str, variables: dict[str, Any]) -> Runner:
    import celpy  # type: ignore[import-not-found]

    env = celpy.Environment()
    program = env.program(env.compile(expression))
    activation = {name: celpy.json_to_cel(value) for name, value in variables.items()}
    return lambda: program.evaluate(activation)


def common_el_runner(expression: str, variables: dict[str, Any]) -> Runner:
    import cel  # type: ignore[import-not-found]  # common-expression-language

    program = cel.compile(expression)
    context = cel.Context(variables=variables)
    return lambda: program.execute(context)


ENGINES: dict[str, Callable[[str, dict[str, Any]], Runner]] = {
    "kubezen": kubezen_runner,
    "celpy": celpy_runner,
    "common-el": common_el_runner,
}


def plain(value: Any) -> Any:
    """A result as plain JSON-like Python, to compare engines' own value types."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or hasattr(value, "__iter__"):
        return [plain(v) for v in value]
    return value


def seconds_per_call(run: Runner) -> float:
    timer = timeit.Timer(run)
    loops, _ = timer.autorange()
    return min(timer.repeat(repeat=5, number=loops)) / loops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    variables = SET["variables"]
    engines: dict[str, Callable[[str, dict[str, Any]], Runner]] = {}
    for name, make in ENGINES.items():
        try:
            make("1 + 1", {})
            engines[name] = make
        except ImportError as missing:
            print(f"{name}: not installed ({missing}); skipped", file=sys.stderr)

    header = f"{'expression':18}" + "".join(f"{name + ' µs':>14}" for name in engines)
    header += "".join(f"{name + '/kubezen':>20}" for name in engines if name != "kubezen")
    print(header)
    rows = []
    slower = 0
    for entry in SET["expressions"]:
        name, expression = entry["name"], entry["expression"]
        runners = {engine: make(expression, variables) for engine, make in engines.items()}
        results = {engine: plain(run()) for engine, run in runners.items()}
        reference = results["kubezen"]
        for engine, result in results.items():
            if result != reference:
                print(f"{name}: {engine} gives {result!r}, kubezen {reference!r}", file=sys.stderr)
                return 1
        times = {engine: seconds_per_call(run) for engine, run in runners.items()}
        ratios = {e: t / times["kubezen"] for e, t in times.items() if e != "kubezen"}
        slower += any(r < 1 for r in ratios.values())
        line = f"{name:18}" + "".join(f"{t * 1e6:14.2f}" for t in times.values())
        line += "".join(f"{r:20.1f}" for r in ratios.values())
        print(line)
        rows.append({"name": name, "seconds": times, "ratio_to_kubezen": ratios})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if slower:
        print(f"kubezen is not the fastest on {slower} expression(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
