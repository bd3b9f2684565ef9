"""How much each ratio moves between runs: ``python -m bench.stability RUN.json RUN.json ...`` (files ``make bench``
wrote, e.g. with ``ARGS="--out bench/results/run-1.json"``) prints one Markdown row per ratio figure: its ratio in
each run, their median, and the largest deviation from that median. The exit code is 1 when a ratio moved more than
``--tolerance`` (default 10%) from its median, 2 for files that cannot be read."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

__all__ = ["Row", "main", "rows"]

Row = tuple[str, list[float | None], float, float]  # name, ratio per run, median, largest relative deviation


def rows(runs: list[dict[str, Any]]) -> list[Row]:
    """One row per figure that has a ratio in any run, in the first run's order; keyed by ``key`` where figures carry
    one, else by name."""
    order: list[str] = []
    names: dict[str, str] = {}
    ratios: dict[str, list[float | None]] = {}
    for index, run in enumerate(runs):
        for figure in run.get("figures", []):
            if figure.get("ratio") is None:
                continue
            ident = figure.get("key") or figure["name"]
            if ident not in ratios:
                order.append(ident)
                names[ident] = figure["name"]
                ratios[ident] = [None] * len(runs)
            ratios[ident][index] = float(figure["ratio"])
    found: list[Row] = []
    for ident in order:
        values = [value for value in ratios[ident] if value is not None]
        median = statistics.median(values)
        deviation = max(abs(value - median) / median for value in values) if median else 0.0
        found.append((names[ident], ratios[ident], median, deviation))
    return found


def markdown(found: list[Row], runs: int) -> str:
    header = "| figure | " + " | ".join(f"run {i + 1}" for i in range(runs)) + " | median | largest deviation |"
    lines = [header, "| --- " * (runs + 3) + "|"]
    for name, values, median, deviation in found:
        cells = " | ".join("-" if v is None else f"{v:.2f}x" for v in values)
        lines.append(f"| {name} | {cells} | {median:.2f}x | {deviation * 100:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stability")
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args(argv)
    try:
        runs = [json.loads(path.read_text()) for path in args.results]
    except (OSError, ValueError) as error:
        print(f"bench.stability: cannot read the results: {error}", file=sys.stderr)
        return 2
    found = rows(runs)
    if len(runs) < 2 or not found:
        print("bench.stability: give two results files at least, with ratio figures in them", file=sys.stderr)
        return 2
    print(markdown(found, len(runs)))
    partial = [name for name, values, _, _ in found if None in values]
    if partial:
        print(f"\nnot in every run (compared over the runs that have them): {', '.join(partial)}", file=sys.stderr)
    moved = [name for name, _, _, deviation in found if deviation > args.tolerance]
    if moved:
        print(f"\nmoved more than {args.tolerance:.0%} from their median: {', '.join(moved)}", file=sys.stderr)
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
