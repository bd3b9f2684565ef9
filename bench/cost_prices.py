"""Public AWS prices, default quotas and the model's assumptions for ``bench.cost``, in one place.

Every price is us-east-1 list price in USD, without free tiers, savings plans or taxes; every quota is the
default for one account in one Region (us-east-1 where it varies). Each constant names the page it was read
from; all were read on PRICES_CHECKED. When a page changes, change the constant here and nothing else.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "API_GATEWAY_REST_TIERS",
    "ASSUMED_BOTOCORE_LATENCY",
    "ASSUMED_CONTAINER_LIFETIME_S",
    "ASSUMED_INIT_SECONDS",
    "ASSUMED_LOG_BYTES",
    "DYNAMODB_READ_UNIT",
    "DYNAMODB_WRITE_UNIT",
    "KMS_KEY_MONTH",
    "KMS_REQUEST",
    "LAMBDA_FULL_VCPU_MB",
    "LAMBDA_GB_SECOND_TIERS",
    "LAMBDA_LOG_TIERS",
    "LAMBDA_REQUEST",
    "PRICES_CHECKED",
    "QUOTAS",
    "SECONDS_PER_MONTH",
    "SECRETS_MANAGER_CALL",
    "SECRETS_MANAGER_SECRET_MONTH",
    "Tiers",
]

PRICES_CHECKED: Final = "2026-12-02"
# AWS bills a month as 730 hours (the pricing pages' examples and the pricing calculator).
SECONDS_PER_MONTH: Final = 730 * 3600

# A tiered price: (units in the tier per month, USD per unit), the last tier unbounded (None).
Tiers = tuple[tuple[float | None, float], ...]

# --- AWS Lambda: https://aws.amazon.com/lambda/pricing/ ----------------------------------------------------------
LAMBDA_REQUEST: Final = 0.20 / 1e6  # per request (invocation), either architecture
LAMBDA_GB_SECOND_TIERS: Final[dict[str, Tiers]] = {
    # first 6 billion GB-s a month, next 9 billion, over 15 billion
    "x86_64": ((6e9, 0.0000166667), (9e9, 0.000015), (None, 0.0000133334)),
    # first 7.5 billion GB-s a month, next 11.25 billion, over 18.75 billion
    "arm64": ((7.5e9, 0.0000133334), (11.25e9, 0.0000120001), (None, 0.0000106667)),
}
# CPU share is proportional to memory; 1,769 MB is one full vCPU (Lambda Developer Guide, "Configure Lambda
# function memory"). Python serves a request on one thread, so more memory than that buys no speed here.
LAMBDA_FULL_VCPU_MB: Final = 1769
# Lambda's own logs (START/END/REPORT and the function's stdout) in CloudWatch Logs, standard class, tiered since
# 2025-05-01 (https://aws.amazon.com/cloudwatch/pricing/, "Vended Logs", Lambda): USD per GB ingested.
LAMBDA_LOG_TIERS: Final[Tiers] = ((10_000.0, 0.50), (20_000.0, 0.25), (20_000.0, 0.10), (None, 0.05))

# --- Amazon API Gateway REST API (chalice deploys a REST API: template.yaml RestAPI, AWS::Serverless::Api) -------
# https://aws.amazon.com/api-gateway/pricing/ (REST APIs, us-east-1): USD per request, per month's volume.
API_GATEWAY_REST_TIERS: Final[Tiers] = (
    (333e6, 3.50 / 1e6),
    (667e6, 2.80 / 1e6),
    (19e9, 2.38 / 1e6),
    (None, 1.51 / 1e6),
)

# --- AWS KMS: https://aws.amazon.com/kms/pricing/ ------------------------------------------------------------------
KMS_KEY_MONTH: Final = 1.00  # each customer managed key, symmetric or asymmetric (prorated hourly)
KMS_REQUEST: Final[dict[str, float]] = {
    "symmetric": 0.03 / 10_000,  # Decrypt, DescribeKey and other requests on symmetric keys
    "RSA_2048": 0.03 / 10_000,  # "requests involving RSA 2048 keys"
    "asymmetric": 0.15 / 10_000,  # "asymmetric requests except RSA 2048" (ECC_NIST_P256, ECC_NIST_P384)
}

# --- AWS Secrets Manager: https://aws.amazon.com/secrets-manager/pricing/ ------------------------------------------
SECRETS_MANAGER_SECRET_MONTH: Final = 0.40
SECRETS_MANAGER_CALL: Final = 0.05 / 10_000  # every API call (GetSecretValue, DescribeSecret)

# --- Amazon DynamoDB on-demand (Standard table class): https://aws.amazon.com/dynamodb/pricing/on-demand/ ----------
# Since 2024-11-01. A strongly consistent read of up to 4 KB is one read unit; a write of up to 1 KB one write unit
# (DynamoDB Developer Guide, "DynamoDB on-demand capacity mode", Read request units and write request units).
DYNAMODB_READ_UNIT: Final = 0.125 / 1e6
DYNAMODB_WRITE_UNIT: Final = 0.625 / 1e6

# --- Default quotas, per account and Region: (label, requests per second) ---------------------------------------
QUOTAS: Final[dict[str, tuple[str, float]]] = {
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html (throttle quota per account, per
    # Region across HTTP, REST and WebSocket APIs; burst 5,000).
    "api_gateway": ("API Gateway 10,000/s", 10_000),
    # https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html: invocation requests per Region are
    # 10 x the concurrent executions quota (1,000), synchronous, all sources.
    "lambda_invocations": ("Lambda invocations 10,000/s", 10_000),
    # Same page: concurrent executions, 1,000 (concurrency = requests/s x seconds each).
    "lambda_concurrency": ("Lambda concurrency 1,000", 1_000),
    # https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html: cryptographic operations
    # request rates, shared by every caller in the account and Region. RSA (Sign, Verify, ...) 1,000; ECC and SM2
    # 1,000; symmetric (Decrypt, ...) 100,000 in us-east-1, us-west-2 and eu-west-1 (10,000 or 20,000 elsewhere).
    # Older copies of the page (and many blogs) say RSA 500 and ECC 300: check Service Quotas in your account.
    "kms_RSA_2048": ("KMS RSA 1,000/s", 1_000),
    "kms_asymmetric": ("KMS ECC 1,000/s", 1_000),
    "kms_symmetric": ("KMS symmetric 100,000/s", 100_000),
    # https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html: GetSecretValue 10,000/s
    # (What's New, 2025-03-04); DescribeSecret 40,000/s.
    "secrets_get": ("GetSecretValue 10,000/s", 10_000),
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode.html: a new on-demand
    # table serves up to 4,000 write units/s or 12,000 read units/s at once, or a linear combination; then twice
    # its previous peak within 30 minutes, up to the table quota of 40,000 each. The rate given is in write units;
    # a request's reads count as a third of a write each (12,000 / 4,000).
    "dynamodb_new_table": ("new DynamoDB on-demand table 4,000 WRU/s", 4_000),
}

# --- Assumptions: not measured here, stated in the README next to the table -----------------------------------------
# Wall time of one AWS call from Lambda in the same Region, billed while the function waits (typical, not measured).
ASSUMED_BOTOCORE_LATENCY: Final[dict[str, float]] = {
    "kms:Sign": 0.010,
    "dynamodb:GetItem": 0.005,
    "dynamodb:PutItem": 0.005,
    "secretsmanager:GetSecretValue": 0.010,
}
# How long an execution environment lives under steady traffic before Lambda replaces it (AWS publishes no figure).
ASSUMED_CONTAINER_LIFETIME_S: Final = 3600.0
# Billed INIT phase per container start (billed since 2025-08-01 for ZIP packages on managed runtimes) when the
# results hold no cold-start figure.
ASSUMED_INIT_SECONDS: Final = 0.5
# CloudWatch Logs bytes per invocation: Lambda's START/END/REPORT lines (~300 B) plus the function's own lines. A
# warm /token writes one line, its audit line carrying its TokensIssued count (~625 B, measured on 2026-12-03;
# before, the line ~445 B and an EMF document ~204 B); the authorizer writes nothing on success; auto-id and the
# session backend write one line and one EMF document each (~650 B; auto-id's served line carries its count since
# 2026-12-03), which the api_handler figure keeps.
ASSUMED_LOG_BYTES: Final[dict[str, int]] = {"api_handler": 950, "bearer": 300, "auto_id": 950}
