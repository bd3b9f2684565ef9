"""The load run's measurements: per-worker recorders, the machine's load while it ran, the summary and its
table (see :mod:`bench.load`)."""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.load import LoadOptions, Rotator, Worker
    from bench.load_stack import Jwks, Prepared

__all__ = [
    "MAX_ERROR_SAMPLES",
    "OPERATIONS",
    "LoadMonitor",
    "Recorder",
    "complaints",
    "format_table",
    "percentile",
    "summarise",
]

OPERATIONS = ("token", "session_refresh", "session_show", "autoid")
MAX_ERROR_SAMPLES = 20

# Measuring ------------------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """One worker's (or the rotator's) measurements; merged after the run, so no lock is needed."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    errors: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, Any]] = field(default_factory=list)
    signing_kids: set[str] = field(default_factory=set)
    session_kids: set[str] = field(default_factory=set)

    def ok(self, op: str, seconds: float) -> None:
        self.latencies[op].append(seconds)

    def error(self, op: str, seconds: float, message: str, *, rejected: bool = False) -> None:
        self.latencies[op].append(seconds)
        self.errors[op] += 1
        if rejected:
            self.rejected[op] += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append({"op": op, "at": round(time.time(), 3), "rejected": rejected, "error": message})


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class CpuSnapshot:
    at: float
    busy: float  # seconds of busy CPU, all cores (from /proc/stat)
    total: float
    processes: dict[int, tuple[str, float]]  # pid -> (command, CPU seconds)


def _cpu_snapshot() -> CpuSnapshot:
    ticks = os.sysconf("SC_CLK_TCK")
    busy = total = 0.0
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [float(v) / ticks for v in fields[:8]]
        total = sum(values)
        busy = total - values[3] - values[4]  # idle, iowait
    except (OSError, IndexError, ValueError):
        pass
    processes: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parts = stat[stat.rfind(")") + 2 :].split()
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        command = " ".join(a.decode(errors="replace")[:40] for a in argv[:3] if a) or f"[{name}]"
        processes[int(entry.name)] = (command, (float(parts[11]) + float(parts[12])) / ticks)
    return CpuSnapshot(time.monotonic(), busy, total, processes)


class LoadMonitor:
    """The machine's load during the run: 1-minute load average (sampled), busy CPU, who used it."""

    def __init__(self, stack_pid: int) -> None:
        self._stack_pid = stack_pid
        self._stop = threading.Event()
        self._loadavg: list[float] = []
        self._thread = threading.Thread(target=self._sample, name="load-monitor", daemon=True)
        self._start = _cpu_snapshot()
        self._own_start = os.times()

    def start(self) -> None:
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self._loadavg.append(os.getloadavg()[0])

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=5)
        end, own = _cpu_snapshot(), os.times()
        elapsed = max(end.at - self._start.at, 1e-9)
        cores = os.cpu_count() or 1
        busy = end.busy - self._start.busy

        def used(pid: int) -> float:
            before = self._start.processes.get(pid)
            after = end.processes.get(pid)
            if after is None:
                return 0.0
            return after[1] - (before[1] if before and before[0] == after[0] else 0.0)

        stack = used(self._stack_pid)
        generator = (own.user - self._own_start.user) + (own.system - self._own_start.system)
        rotations = (own.children_user - self._own_start.children_user) + (
            own.children_system - self._own_start.children_system
        )
        others = sorted(
            (
                (used(pid), command, pid)
                for pid, (command, _) in end.processes.items()
                if pid not in (os.getpid(), self._stack_pid)
            ),
            reverse=True,
        )
        return {
            "cores": cores,
            "seconds": round(elapsed, 1),
            "loadavg_1min": {
                "start": round(self._loadavg[0], 2) if self._loadavg else None,
                "max": round(max(self._loadavg), 2) if self._loadavg else None,
                "end": round(os.getloadavg()[0], 2),
            },
            "cpu_busy_fraction": round(busy / (elapsed * cores), 3),
            "cpu_seconds": {
                "stack": round(stack, 1),
                "load_generator": round(generator, 1),
                "rotation_commands": round(rotations, 1),
                "other_processes_and_kernel": round(max(0.0, busy - stack - generator - rotations), 1),
            },
            "top_other_processes": [
                {"pid": pid, "command": command, "cpu_seconds": round(seconds, 1)}
                for seconds, command, pid in others[:5]
                if seconds >= 0.5
            ],
        }


def complaints(log: Path, limit: int = 20) -> list[str]:
    """The stack's warnings, errors and tracebacks (its log also holds a line per request served)."""
    marks = ('"level":"WARNING"', '"level":"ERROR"', '"level":"CRITICAL"', "Traceback", "Error", "failed")
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[:500] for line in lines if any(mark in line for mark in marks)][-limit:]


def summarise(
    options: LoadOptions,
    elapsed: float,
    workers: list[Worker],
    rotator: Rotator,
    jwks: Jwks,
    generations: list[int],
    load: dict[str, Any],
    prepared: Prepared,
) -> dict[str, Any]:
    from bench.harness import machine

    operations: dict[str, Any] = {}
    errors: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    samples: list[dict[str, Any]] = []
    for worker in workers:
        errors.update(worker.record.errors)
        rejected.update(worker.record.rejected)
        samples.extend(worker.record.samples)
    errors["jwks"] = len(jwks.fetch_errors)
    samples.extend(jwks.fetch_errors)
    for op in OPERATIONS:
        latencies = [s for w in workers for s in w.record.latencies[op]]
        operations[op] = {
            "count": len(latencies),
            "errors": errors[op],
            "rejected_valid": rejected[op],
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "max_ms": round(max(latencies, default=0.0) * 1000, 2),
            "throughput_per_s": round(len(latencies) / elapsed, 2),
        }
    all_latencies = [s for w in workers for op in OPERATIONS for s in w.record.latencies[op]]
    rotation_failures = sum(1 for r in rotator.results if not r["ok"])
    rounds = Counter(r["rotation"] for r in rotator.results if r["ok"])
    totals = {
        "requests": len(all_latencies),
        "errors": sum(errors.values()),
        "rejected_valid_tokens": sum(rejected.values()),
        "rotations_ok": sum(rounds.values()),
        "rotations_failed": rotation_failures,
        "p50_ms": round(percentile(all_latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(all_latencies, 0.99) * 1000, 2),
        "throughput_per_s": round(len(all_latencies) / elapsed, 2),
    }
    passed = (
        totals["errors"] == 0
        and totals["rejected_valid_tokens"] == 0
        and rotation_failures == 0
        and all(operations[op]["count"] > 0 for op in OPERATIONS)
    )
    return {
        "passed": passed,
        "measured_at": int(time.time()),
        "machine": machine(),
        "options": {"duration_s": options.duration, "workers": options.workers, "rotate_every_s": options.rotate_every},
        "elapsed_s": round(elapsed, 2),
        "operations": operations,
        "totals": totals,
        "observed": {
            "signing_kids": len(set().union(*(w.record.signing_kids for w in workers))),
            "session_kids": len(set().union(*(w.record.session_kids for w in workers))),
            "autoid_generation": {"enrolled": 1, "min_at_end": min(generations), "max_at_end": max(generations)},
            "jwks_fetches": jwks.fetches,
        },
        "rotations": rotator.results,
        "load": load,
        "error_samples": sorted(samples, key=lambda s: float(s["at"]))[:MAX_ERROR_SAMPLES],
        "notes": (
            "latency is the client's round trip over loopback; autoid includes the client library's own work "
            "(bundle load, RSA-4096 seal, answer decrypt); token excludes its JWKS verification"
        ),
    }


def format_table(summary: dict[str, Any]) -> str:
    header = ("operation", "count", "errors", "rejected", "p50", "p99", "max", "throughput")
    rows = [header]
    for op, figures in summary["operations"].items():
        rows.append(
            (
                op,
                str(figures["count"]),
                str(figures["errors"]),
                str(figures["rejected_valid"]),
                f"{figures['p50_ms']:.1f} ms",
                f"{figures['p99_ms']:.1f} ms",
                f"{figures['max_ms']:.1f} ms",
                f"{figures['throughput_per_s']:.1f} /s",
            )
        )
    t = summary["totals"]
    rows.append(
        (
            "all",
            str(t["requests"]),
            str(t["errors"]),
            str(t["rejected_valid_tokens"]),
            f"{t['p50_ms']:.1f} ms",
            f"{t['p99_ms']:.1f} ms",
            "",
            f"{t['throughput_per_s']:.1f} /s",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, lines[1])
    o, load, observed = summary["options"], summary["load"], summary["observed"]
    cpu = load["cpu_seconds"]
    lines += [
        "",
        f"{summary['elapsed_s']:.1f} s, {o['workers']} workers; rotations every {o['rotate_every_s']:g} s: "
        f"{t['rotations_ok']} ok, {t['rotations_failed']} failed",
        f"seen: {observed['signing_kids']} signing keys, {observed['session_kids']} session keys, auto-id generation "
        f"1 -> {observed['autoid_generation']['min_at_end']}..{observed['autoid_generation']['max_at_end']}, "
        f"{observed['jwks_fetches']} JWKS fetches",
        f"machine: {summary['machine']['cpu']}, {load['cores']} cores; busy {load['cpu_busy_fraction']:.0%}; "
        f"load average {load['loadavg_1min']['start']} -> max {load['loadavg_1min']['max']}; CPU s: stack "
        f"{cpu['stack']}, load generator {cpu['load_generator']}, rotation commands {cpu['rotation_commands']}, "
        f"other processes and kernel {cpu['other_processes_and_kernel']}",
    ]
    if summary.get("error_samples"):
        lines.append("first errors:")
        lines += [f"  [{s['op']}] {s['error']}" for s in summary["error_samples"][:10]]
    failed = [r for r in summary["rotations"] if not r["ok"]]
    if failed:
        lines.append("failed rotations:")
        lines += [f"  {r['rotation']} at {r['at_s']} s: {r.get('detail', '')}" for r in failed]
    if summary.get("stack_complaints"):
        lines.append(f"the stack's warnings and errors ({len(summary['stack_complaints'])}, see the JSON):")
        lines += [f"  {line[:200]}" for line in summary["stack_complaints"][:5]]
    lines.append("PASSED: 0 errors, 0 rejected valid tokens" if summary["passed"] else "FAILED")
    return "\n".join(lines)
