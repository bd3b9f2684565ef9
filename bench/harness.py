"""Measuring: medians over repeated runs after a warm-up, one table, one JSON file.

A figure is compared with a baseline measured in the same run on the same machine, so the ratio means
something on any machine; absolute numbers are reported too, with the machine they came from. A ratio comes from
:func:`paired`: short batches of the subject and the baseline alternate (A/B, then B/A), each round gives one
ratio from two batches measured moments apart, and the figure is the median of those ratios with their spread.
A change in the machine's load then hits both sides of a ratio alike, where two long runs minutes apart would
each see a different machine.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Figure", "Paired", "machine", "paired", "per_op_seconds", "print_table", "write_results"]


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: str
    met: bool | None  # None: a figure shown for scale, with no target to meet
    baseline: str = ""
    baseline_value: float | None = None
    ratio: float | None = None
    note: str = ""
    # Half the interquartile range of the per-round ratios, relative to their median (0.03: +-3%).
    spread: float | None = None
    rounds: int | None = None
    # A stable name for scripts (bench/cost.py) to find the figure by, whatever its display name becomes.
    key: str = ""


@dataclass(frozen=True)
class Paired:
    """What :func:`paired` measured: seconds per operation of each side (medians of their batches), and the
    median of the per-round ratios with its spread."""

    subject: float
    baseline: float
    ratio: float
    spread: float
    rounds: int


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


def paired(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    *,
    number: int,
    rounds: int,
    better: Literal["faster", "cheaper"],
    baseline_number: int | None = None,
    warmup: int = 1,
    setup: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.thread_time,
) -> Paired:
    """Alternating batches: ``number`` subject calls, then ``baseline_number`` (default ``number``) baseline calls,
    the order swapped every round, ``rounds`` rounds after ``warmup``. ``better="faster"`` gives throughput ratios
    (subject ops/s over baseline ops/s: higher is better); ``"cheaper"`` gives cost ratios (subject seconds over
    baseline seconds: lower is better). ``setup`` runs before every subject batch, outside the clock.

    The clock is the measuring thread's CPU time by default: both sides run on this thread, and the time it spends
    descheduled while a neighbour on the machine runs counts for neither (wall time would charge it to whichever
    batch it fell in). Pass ``time.perf_counter`` where the work happens in other processes."""
    if rounds < 1 or number < 1:
        raise ValueError("paired() needs one round and one call at least")
    per_baseline = baseline_number or number
    subject_times: list[float] = []
    baseline_times: list[float] = []
    ratios: list[float] = []
    for index in range(warmup + rounds):
        gc.collect()  # a collection owed by one side is not paid inside the other's batch
        if index % 2 == 0:
            a = _batch(subject, number, setup, clock)
            b = _batch(baseline, per_baseline, None, clock)
        else:
            b = _batch(baseline, per_baseline, None, clock)
            a = _batch(subject, number, setup, clock)
        if index < warmup:
            continue
        subject_times.append(a)
        baseline_times.append(b)
        ratios.append(b / a if better == "faster" else a / b)
    ratio = statistics.median(ratios)
    if len(ratios) >= 4:
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    else:
        q1, q3 = min(ratios), max(ratios)
    return Paired(
        subject=statistics.median(subject_times),
        baseline=statistics.median(baseline_times),
        ratio=ratio,
        spread=(q3 - q1) / 2 / ratio,
        rounds=rounds,
    )


def _batch(
    operation: Callable[[], object], number: int, setup: Callable[[], None] | None, clock: Callable[[], float]
) -> float:
    if setup is not None:
        setup()
    started = clock()
    for _ in range(number):
        operation()
    return (clock() - started) / number


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
        if f.ratio is not None and f.spread is not None:
            ratio += f" +-{f.spread * 100:.0f}%"
        met = "-" if f.met is None else "yes" if f.met else "NO"
        rows.append((f.name, _fmt(f.value, f.unit), baseline, ratio, f.target, met))
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
