"""The cost curve on AWS: USD per million requests, billed Lambda time, concurrency and the first quota met, for
GET /token (each algorithm, each signer), a session-authorized request and an auto-id request, at 1, 100 and
10,000 requests per second, computed from the CPU time ``make bench`` measured (bench/results/latest.json).

``python -m bench.cost [--results PATH] [--markdown]`` prints the rows as JSON, or as the Markdown table of
bench/README.md ("Cost curve on AWS"). Prices, quotas and assumptions live in :mod:`bench.cost_prices`; the
operations (which functions run, which AWS calls each makes) in :mod:`bench.cost_model`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import cost_prices as p
from bench.cost_model import CALLS, CostInputError, Invocation, Operation, deployment, operations, read_figures

__all__ = ["RATES", "CostInputError", "CostRow", "cost_rows", "main", "markdown"]

RATES = (1, 100, 10_000)
RESULTS = Path(__file__).parent / "results" / "latest.json"
COLUMNS = ("Lambda", "API Gateway", "KMS", "Secrets Manager", "DynamoDB", "Logs")


@dataclass(frozen=True)
class CostRow:
    operation: str
    signer: str
    rps: int
    usd_per_million: float
    by_service: dict[str, float]  # USD per million requests, by COLUMNS
    billed_ms: dict[str, int]  # by function, per invocation
    concurrency: float  # execution environments busy at once, all functions
    first_quota: str
    first_quota_rps: float  # the rate at which that quota is met
    quotas_rps: dict[str, float]  # every quota the operation uses: the rate at which it is met


def tiered(units: float, tiers: p.Tiers) -> float:
    """What ``units`` in one month cost under a tiered price (each tier's units at its own price)."""
    cost, left = 0.0, units
    for size, price in tiers:
        taken = left if size is None else min(left, size)
        cost += taken * price
        left -= taken
        if left <= 0:
            break
    return cost


def duration_seconds(invocation: Invocation, memory_mb: int) -> float:
    """Wall time of one invocation: the measured CPU time, slowed by Lambda's CPU share below one vCPU, plus the
    wait for each AWS call."""
    share = min(1.0, memory_mb / p.LAMBDA_FULL_VCPU_MB)
    # "kms:Sign/ECC" waits as long as any "kms:Sign"; a call with no latency here is made by another service.
    latency = p.ASSUMED_BOTOCORE_LATENCY
    waits = sum(latency.get(call.split("/")[0], 0.0) * n for call, n in invocation.calls.items())
    return invocation.cpu_seconds / share + waits


def billed_ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000 - 1e-9))  # Lambda rounds each invocation up to the millisecond


def cost_row(op: Operation, rps: int, memory: Mapping[str, int], arch: Mapping[str, str]) -> CostRow:
    monthly = rps * p.SECONDS_PER_MONTH  # requests a month, this operation alone at this rate
    usd = dict.fromkeys(COLUMNS, 0.0)  # USD per request
    calls: dict[str, float] = {}  # AWS calls per request, amortised container starts and refreshes included
    gb_seconds: dict[str, float] = {}  # per request, by architecture (each has its own price)
    log_bytes, concurrency = 0.0, 0.0
    billed: dict[str, int] = {}
    for inv in op.invocations:
        gb = memory[inv.function] / 1024
        seconds = duration_seconds(inv, memory[inv.function])
        billed[inv.function] = billed_ms(seconds)
        busy = rps * seconds
        concurrency += busy
        # Each busy environment is replaced every ASSUMED_CONTAINER_LIFETIME_S; at least one is kept warm.
        environments = max(1, math.ceil(busy))
        starts_per_request = environments / p.ASSUMED_CONTAINER_LIFETIME_S / rps
        used = gb * (billed[inv.function] / 1000 + starts_per_request * op.init_seconds)
        gb_seconds[arch[inv.function]] = gb_seconds.get(arch[inv.function], 0.0) + used
        usd["Lambda"] += p.LAMBDA_REQUEST
        log_bytes += p.ASSUMED_LOG_BYTES[inv.function]
        for name, count in inv.calls.items():
            calls[name] = calls.get(name, 0.0) + count
        for name, count in inv.start_calls.items():
            calls[name] = calls.get(name, 0.0) + count * starts_per_request
        for name, per_hour in inv.hourly_calls.items():
            calls[name] = calls.get(name, 0.0) + environments * per_hour / 3600 / rps
    for architecture, used in gb_seconds.items():
        usd["Lambda"] += tiered(used * monthly, p.LAMBDA_GB_SECOND_TIERS[architecture]) / monthly
    usd["API Gateway"] = tiered(monthly, p.API_GATEWAY_REST_TIERS) / monthly
    usd["Logs"] = tiered(log_bytes * monthly / 1e9, p.LAMBDA_LOG_TIERS) / monthly
    for name, count in calls.items():
        usd[CALLS[name].column] += CALLS[name].price * count
    usd["KMS"] += op.kms_keys * p.KMS_KEY_MONTH / monthly
    usd["Secrets Manager"] += op.secrets * p.SECRETS_MANAGER_SECRET_MONTH / monthly
    quotas = quotas_rps(op, {inv.function: duration_seconds(inv, memory[inv.function]) for inv in op.invocations})
    lowest = min(quotas.values())
    first = [key for key, rate in quotas.items() if rate <= lowest * (1 + 1e-9)]  # ties are all named
    return CostRow(
        operation=op.name,
        signer=op.signer,
        rps=rps,
        usd_per_million=sum(usd.values()) * 1e6,
        by_service={column: value * 1e6 for column, value in usd.items()},
        billed_ms=billed,
        concurrency=concurrency,
        first_quota=" and ".join(p.QUOTAS[key][0] for key in first),
        first_quota_rps=lowest,
        quotas_rps={p.QUOTAS[key][0]: value for key, value in quotas.items()},
    )


def quotas_rps(op: Operation, seconds: Mapping[str, float]) -> dict[str, float]:
    """For each quota the operation draws on, the request rate at which it is used up (this operation alone)."""
    use: dict[str, float] = {
        "api_gateway": 1.0,
        "lambda_invocations": float(len(op.invocations)),
        "lambda_concurrency": sum(seconds.values()),
    }
    for inv in op.invocations:
        for name, count in inv.calls.items():
            call = CALLS[name]
            if call.quota is not None:
                use[call.quota] = use.get(call.quota, 0.0) + count * call.quota_weight
    return {key: p.QUOTAS[key][1] / amount for key, amount in use.items()}


def cost_rows(results: Mapping[str, Any], repo: Path) -> list[CostRow]:
    memory, arch = deployment(repo)
    ops = operations(read_figures(results))
    return [cost_row(op, rps, memory, arch) for op in ops for rps in RATES]


def markdown(rows: list[CostRow]) -> str:
    head = ["operation", "signer", "req/s", "$ per million", *COLUMNS, "billed ms", "concurrency", "first quota met"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        met = f"met at {row.first_quota_rps:,.0f} req/s"
        met = f"**{met}**" if row.rps >= row.first_quota_rps else met  # bold: this rate needs a quota increase
        cells = [
            row.operation,
            row.signer,
            f"{row.rps:,}",
            f"**{_usd(row.usd_per_million)}**",
            *(_usd(row.by_service[column]) for column in COLUMNS),
            " + ".join(str(ms) for ms in row.billed_ms.values()),
            _concurrency(row.concurrency),
            f"{row.first_quota}: {met}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _concurrency(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def _usd(value: float) -> str:
    return "<0.01" if 0 < value < 0.005 else f"{value:,.2f}"


def _provenance(results: Mapping[str, Any], source: Path) -> str:
    machine = results.get("machine")
    cpu = machine.get("cpu", "?") if isinstance(machine, dict) else "?"
    stamp = results.get("measured_at")
    measured = time.strftime("%Y-%m-%d", time.gmtime(stamp)) if isinstance(stamp, int) else "?"
    command = ".venv/bin/python -m bench.cost --markdown"
    if source.resolve() != RESULTS.resolve():  # the hint must read the same file again, not latest.json
        command += f" --results {_shown(source)}"
    return (
        f"Figures: {source.name}, measured {measured} on {cpu}; prices and quotas as of "
        f"{p.PRICES_CHECKED} (us-east-1). Regenerate: `{command}`."
    )


def _shown(path: Path) -> str:
    """``path`` as typed from the repository's root where it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(RESULTS.resolve().parents[2]))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="the figures (default: %(default)s)")
    parser.add_argument("--markdown", action="store_true", help="the Markdown table instead of JSON")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        rows = cost_rows(results, Path(__file__).resolve().parent.parent)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, CostInputError) as error:
        # One line, no traceback: a missing file or figure is a usage problem, not a bug.
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        hint = " (run make bench first: it writes bench/results/latest.json)" if isinstance(error, OSError) else ""
        print(f"python -m bench.cost: {args.results}: {reason}{hint}", file=sys.stderr)
        return 2
    if args.markdown:
        print(markdown(rows))
        print(f"\n{_provenance(results, args.results)}")
    else:
        document = {
            "prices_checked": p.PRICES_CHECKED,
            "results_measured_at": results.get("measured_at"),
            "machine": results.get("machine"),
            "rows": [asdict(row) for row in rows],
        }
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
