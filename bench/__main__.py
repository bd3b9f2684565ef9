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
_SINK = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run: loggers may keep it as their stream)


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="one short round each (a smoke run, not a figure)")
    parser.add_argument("--only", action="append", help="run only these benchmark modules (e.g. bench_autoid)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    _quiet_logs()
    figures: list[Figure] = []
    for name in modules():
        if args.only and name not in args.only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        # The app's EMF metric lines go to standard output, as Lambda wants them: measured, but not shown.
        with contextlib.redirect_stdout(_SINK):
            figures.extend(importlib.import_module(f"bench.{name}").run(quick=args.quick))
    info = machine()
    print(print_table(figures, info))
    if not args.quick:
        write_results(args.out, figures, info)
        print(f"\nwrote {args.out}")
    return 0 if all(f.met for f in figures) or args.quick else 1


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
