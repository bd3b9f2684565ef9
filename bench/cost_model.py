"""What each operation costs AWS: the functions it runs, their measured CPU time, and the AWS calls each makes per
request, per container start and per hour of a warm container (its key caches' refreshes), read from the code:

- ``GET /token`` (api_handler). ``kms`` signer: one KMS Sign per token; a container start looks up the three role
  aliases (DescribeKey) and opens two public keys (GetPublicKey), then re-reads the aliases every 300 s
  (``KmsKeyStore.refresh_interval``). ``envelope`` signer: no call per token; a container start reads the roles
  item (DynamoDB GetItem) and two keys' secrets (GetSecretValue, each a KMS Decrypt of the data key made by
  Secrets Manager), then re-reads the roles every 60 s (``EnvelopeKeyStore.refresh_interval``). Keys kept: three
  per algorithm (previous, current, pending), as KMS keys or as secrets.
- A session request: API Gateway invokes the bearer authorizer for every request (``ttl_seconds=0`` in app.py),
  then the backend (api_handler) serves it. Neither calls AWS per request; each container holds the session keys
  (the authorizer both session keys), DescribeSecret plus AWSCURRENT and AWSPREVIOUS per key every 300 s
  (``sessions.keys.CACHE_TTL``).
- ``POST /auto-id`` (auto_id, serving a secret): the client record (GetItem, strongly consistent: one read
  unit), the nonce (a conditional PutItem: one write unit), the secret (GetSecretValue, and Secrets Manager's KMS
  Decrypt); the server keys and the auto-id session key are cached 300 s, as above. A role instead of a secret
  makes an STS AssumeRole (no charge; STS publishes no rate quota) instead of the GetSecretValue.

Figures are found by their stable ``key``, else by name (results written before figures had keys).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cost_prices as p

__all__ = [
    "CALLS",
    "FIGURES",
    "Call",
    "CostInputError",
    "Invocation",
    "Operation",
    "deployment",
    "operations",
    "read_figures",
]

ALGORITHMS = ("RS256", "ES256", "ES384")
STAGE = "prod"
# chalice's function names, and the logical ids `chalice package` gives them in template.yaml.
FUNCTIONS = {"api_handler": "APIHandler", "bearer": "Bearer", "auto_id": "AutoId"}
# Stable key -> the name of the figure made before figures had keys (bench_tokens, bench_sessions, bench_autoid,
# bench_cold_start). A name with more after it (", 10 audiences") is another figure.
FIGURES: dict[str, str] = {
    **{f"tokens.envelope.{alg}": f"GET /token through the app handler, envelope signer, {alg}" for alg in ALGORITHMS},
    "sessions.authorizer": "session-token verifications/s through the authorizer",
    "autoid.server": "auto-id server cost per successful request (stores in memory)",
    "cold_start.first_token": "cold start: fresh interpreter, import app, first /token",
}
OPTIONAL = frozenset({"cold_start.first_token"})


class CostInputError(Exception):
    """The results cannot feed the model (a figure missing, a unit not understood): a one-line reason."""


@dataclass(frozen=True)
class Call:
    column: str  # where its price is shown (bench.cost.COLUMNS)
    price: float  # USD per call
    quota: str | None = None  # key of bench.cost_prices.QUOTAS it draws on, per request
    quota_weight: float = 1.0


KMS_SIGN_PRICE = {"RSA_2048": p.KMS_REQUEST["RSA_2048"], "ECC": p.KMS_REQUEST["asymmetric"]}
CALLS: dict[str, Call] = {
    "kms:Sign/RSA_2048": Call("KMS", KMS_SIGN_PRICE["RSA_2048"], "kms_RSA_2048"),
    "kms:Sign/ECC": Call("KMS", KMS_SIGN_PRICE["ECC"], "kms_asymmetric"),
    "kms:GetPublicKey/RSA_2048": Call("KMS", KMS_SIGN_PRICE["RSA_2048"]),
    "kms:GetPublicKey/ECC": Call("KMS", KMS_SIGN_PRICE["ECC"]),
    "kms:DescribeKey": Call("KMS", p.KMS_REQUEST["symmetric"]),
    "kms:Decrypt": Call("KMS", p.KMS_REQUEST["symmetric"], "kms_symmetric"),
    "secretsmanager:GetSecretValue": Call("Secrets Manager", p.SECRETS_MANAGER_CALL, "secrets_get"),
    "secretsmanager:DescribeSecret": Call("Secrets Manager", p.SECRETS_MANAGER_CALL),
    # A new on-demand table: 4,000 write units/s or 12,000 read units/s, or a linear combination (QUOTAS).
    "dynamodb:GetItem": Call("DynamoDB", p.DYNAMODB_READ_UNIT, "dynamodb_new_table", 4_000 / 12_000),
    "dynamodb:PutItem": Call("DynamoDB", p.DYNAMODB_WRITE_UNIT, "dynamodb_new_table"),
}


@dataclass(frozen=True)
class Invocation:
    function: str  # chalice's name: api_handler, bearer, auto_id
    cpu_seconds: float  # measured on the bench machine, per request
    calls: Mapping[str, float] = field(default_factory=dict)  # per request (billed while waited for)
    start_calls: Mapping[str, float] = field(default_factory=dict)  # per container start
    hourly_calls: Mapping[str, float] = field(default_factory=dict)  # per warm container and hour


@dataclass(frozen=True)
class Operation:
    name: str
    signer: str  # kms, envelope, or "either" when the signer changes nothing
    invocations: tuple[Invocation, ...]
    init_seconds: float  # billed INIT phase of a container start
    kms_keys: int = 0  # kept for this operation, billed by the month
    secrets: int = 0


def _per_hour(calls: Mapping[str, float], every_seconds: float) -> dict[str, float]:
    return {name: count * 3600 / every_seconds for name, count in calls.items()}


# One session key: DescribeSecret, then AWSCURRENT and AWSPREVIOUS (each a KMS Decrypt made by Secrets Manager).
SESSION_KEY_LOAD = {"secretsmanager:DescribeSecret": 1, "secretsmanager:GetSecretValue": 2, "kms:Decrypt": 2}


def _keys(count: int) -> dict[str, float]:
    return {name: n * count for name, n in SESSION_KEY_LOAD.items()}


def token(alg: str, signer: str, cpu: float, init: float) -> Operation:
    spec = "RSA_2048" if alg == "RS256" else "ECC"
    if signer == "kms":
        # The envelope figure's CPU stands for the kms signer's too: the same handler, the local signature
        # replaced by building, signing (SigV4) and parsing one KMS request.
        roles = {"kms:DescribeKey": 3}
        invocation = Invocation(
            "api_handler",
            cpu,
            calls={f"kms:Sign/{spec}": 1},
            start_calls={**roles, f"kms:GetPublicKey/{spec}": 2},
            hourly_calls=_per_hour(roles, 300),
        )
        return Operation(f"GET /token {alg}", signer, (invocation,), init, kms_keys=3)
    roles = {"dynamodb:GetItem": 1}
    invocation = Invocation(
        "api_handler",
        cpu,
        start_calls={**roles, "secretsmanager:GetSecretValue": 2, "kms:Decrypt": 2},
        hourly_calls=_per_hour(roles, 60),
    )
    return Operation(f"GET /token {alg}", signer, (invocation,), init, secrets=3)


def session(cpu: float, init: float) -> Operation:
    # The backend's own CPU is not measured: taken as the authorizer's (a verification, a small JSON answer).
    authorizer = Invocation("bearer", cpu, start_calls=_keys(2), hourly_calls=_per_hour(_keys(2), 300))
    backend = Invocation("api_handler", cpu, start_calls=_keys(1), hourly_calls=_per_hour(_keys(1), 300))
    return Operation("session request (authorizer + backend)", "either", (authorizer, backend), init, secrets=1)


def autoid(cpu: float, init: float) -> Operation:
    per_request = {
        "dynamodb:GetItem": 1,
        "dynamodb:PutItem": 1,
        "secretsmanager:GetSecretValue": 1,
        "kms:Decrypt": 1,
    }
    invocation = Invocation("auto_id", cpu, per_request, _keys(2), _per_hour(_keys(2), 300))
    return Operation("POST /auto-id (a secret)", "either", (invocation,), init, secrets=2)


def read_figures(results: Mapping[str, Any]) -> dict[str, float]:
    """Seconds per operation of each figure the model uses (the cold start's: seconds, once)."""
    figures = results.get("figures") if isinstance(results, Mapping) else None
    if not isinstance(figures, list):
        raise CostInputError("no 'figures' list: not a bench results file (python -m bench writes one)")
    found: dict[str, float] = {}
    for key, name in FIGURES.items():
        figure = next((f for f in figures if isinstance(f, dict) and f.get("key") == key), None)
        figure = figure or next((f for f in figures if isinstance(f, dict) and f.get("name") == name), None)
        if figure is None:
            if key in OPTIONAL:
                continue
            raise CostInputError(f"no figure {key!r} ({name!r}): run make bench (bench_tokens, bench_sessions, ...)")
        found[key] = _seconds(key, figure)
    return found


def _seconds(key: str, figure: Mapping[str, Any]) -> float:
    value, unit = figure.get("value"), figure.get("unit")
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise CostInputError(f"figure {key!r} has no positive value")
    if unit == "ops/s":
        return 1 / value
    if unit == "s":
        return float(value)
    raise CostInputError(f"figure {key!r} is in {unit!r}, not ops/s or s")


def operations(seconds: Mapping[str, float]) -> list[Operation]:
    init = seconds.get("cold_start.first_token", p.ASSUMED_INIT_SECONDS)
    tokens = [
        token(alg, signer, seconds[f"tokens.envelope.{alg}"], init)
        for alg in ALGORITHMS
        for signer in ("kms", "envelope")
    ]
    return [*tokens, session(seconds["sessions.authorizer"], init), autoid(seconds["autoid.server"], init)]


def deployment(repo: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Memory (MB) and architecture of each function: template.yaml's MemorySize and Architectures (resource, then
    Globals), else .chalice/config.json's lambda_memory_size (function, stage, top level), else Lambda's defaults
    (128 MB, x86_64)."""
    from local.template import load_template

    template = load_template(repo / "template.yaml")
    config = json.loads((repo / ".chalice" / "config.json").read_text())
    stage = config.get("stages", {}).get(STAGE, {})
    globals_ = template.get("Globals", {}).get("Function", {})
    memory, arch = {}, {}
    for function, logical_id in FUNCTIONS.items():
        props = template.get("Resources", {}).get(logical_id, {}).get("Properties", {})
        per_function = stage.get("lambda_functions", {}).get(function, {})
        memory[function] = int(
            props.get("MemorySize")
            or globals_.get("MemorySize")
            or per_function.get("lambda_memory_size")
            or stage.get("lambda_memory_size")
            or config.get("lambda_memory_size")
            or 128
        )
        architectures = props.get("Architectures") or globals_.get("Architectures") or ["x86_64"]
        arch[function] = str(architectures[0])
        if arch[function] not in p.LAMBDA_GB_SECOND_TIERS:
            raise CostInputError(f"{function}: architecture {arch[function]!r} has no price here")
    return memory, arch
