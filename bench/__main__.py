"""``make bench``: run every benchmark, print one table, write ``bench/results/latest.json``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from pathlib import Path

from bench.harness import Figure, machine, print_table, write_results

RESULTS = Path(__file__).parent / "results" / "latest.json"
# A run of some modules only does not replace the full run's results (bench/cost.py reads latest.json whole).
PARTIAL_RESULTS = Path(__file__).parent / "results" / "only.json"
_SINK = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run: loggers may keep it as their stream)


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="one short round each (a smoke run, not a figure)")
    parser.add_argument(
        "--only",
        action="append",
        choices=modules(),
        metavar="MODULE",
        help=f"run only this module (repeat for several): {', '.join(modules())}",
    )
    parser.add_argument("--out", type=Path, help="where to write the results (default: latest.json, only.json)")
    args = parser.parse_args(argv)
    out = args.out or (PARTIAL_RESULTS if args.only else RESULTS)
    _quiet_logs()
    figures: list[Figure] = []
    failed: list[str] = []
    for name in modules():
        if args.only and name not in args.only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            # The app's EMF metric lines go to standard output, as Lambda wants them: measured, but not shown.
            with contextlib.redirect_stdout(_SINK):
                figures.extend(importlib.import_module(f"bench.{name}").run(quick=args.quick))
        except Exception as error:  # one module's failure is reported and the others still run
            failed.append(name)
            print(f"{name} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
    info = machine()
    print(print_table(figures, info))
    if args.quick:
        print("\nquick run: one short round each, to check the modules run; these are not measurements,")
        print("the local-stack figures are skipped, and nothing is written")
    else:
        write_results(out, figures, info)
        print(f"\nwrote {out}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0 if all(f.met is not False for f in figures) or args.quick else 1


def _quiet_logs() -> None:
    """The app logs at INFO as deployed (the cost is measured) but into the void, not over the table."""
    import logging

    import chalicelib.observability  # noqa: F401 (creates the "credport" logger and its handler)

    sink = _SINK
    for handler in logging.getLogger("credport").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


if __name__ == "__main__":
    sys.exit(main())
