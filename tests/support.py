"""Helpers shared by several test modules (plain functions and classes, no fixtures)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Clock", "existing_role", "gateway_event"]


class Clock:
    """A clock to inject where the code takes ``clock``/``now``: tests move time instead of sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def gateway_event(
    path: str,
    identity: Mapping[str, Any],
    *,
    method: str = "GET",
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """A REST API proxy event as API Gateway sends it (chalice's test client fills no IAM identity)."""
    all_headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", **(headers or {})}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": account_id,
            "apiId": "abc123",
            "identity": dict(identity),
        },
        "body": None,
        "isBase64Encoded": False,
    }


def existing_role(name: str, role_id: str, *, path: str = "/", account_id: str = "123456789012") -> str:
    """Create role ``name`` in moto with the unique id a test's caller identity carries (``AROA…`` before
    ``:session``), and return its ARN. credport reads a same-account caller's role with iam:GetRole and checks
    the id (chalicelib/tokens/role_arns.py); AWS picks role ids, moto a random one, so the test sets it."""
    import json

    import boto3
    from moto.iam.models import iam_backends

    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    arn = str(
        boto3.client("iam").create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
    )
    backend = iam_backends[account_id]["global"]
    role = backend.get_role(name)
    backend.roles[role_id] = backend.roles.pop(role.id)
    role.id = role_id
    return arn
