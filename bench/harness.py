"""Measuring: medians over repeated runs after a warm-up, one table, one JSON file.

A figure is compared with a baseline measured in the same run on the same machine, so the ratio means
something on any machine; absolute numbers are reported too, with the machine they came from.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Figure", "machine", "per_op_seconds", "print_table", "write_results"]


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: str
    met: bool
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None
    note: str = ""


def per_op_seconds(
    operation: Callable[[], object],
    *,
    number: int,
    repeat: int,
    warmup: int = 1,
    setup: Callable[[], None] | None = None,
) -> float:
    """Median seconds per call over ``repeat`` batches of ``number`` calls, after ``warmup`` batches."""
    samples = []
    for index in range(warmup + repeat):
        if setup is not None:
            setup()
        started = time.perf_counter()
        for _ in range(number):
            operation()
        elapsed = (time.perf_counter() - started) / number
        if index >= warmup:
            samples.append(elapsed)
    return statistics.median(samples)


def machine() -> dict[str, Any]:
    import cryptography
    import joserfc

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "joserfc": joserfc.__version__,
        "platform": platform.platform(),
    }


def print_table(figures: list[Figure], info: dict[str, Any]) -> str:
    header = ("figure", "measured", "baseline (same run)", "ratio", "target", "met")
    rows = [header]
    for f in figures:
        baseline = f"{f.baseline}: {_fmt(f.baseline_value, f.unit)}" if f.baseline else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        rows.append((f.name, _fmt(f.value, f.unit), baseline, ratio, f.target, "yes" if f.met else "NO"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    text = "\n".join(lines)
    text += f"\n\nmachine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
    text += f"cryptography {info['cryptography']}, joserfc {info['joserfc']}"
    return text


def write_results(path: Path, figures: list[Figure], info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": info, "measured_at": int(time.time()), "figures": [asdict(f) for f in figures]}
    path.write_text(json.dumps(document, indent=2) + "\n")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.3f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ops/s":
        return f"{value:,.0f} ops/s"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g} {unit}".strip()
