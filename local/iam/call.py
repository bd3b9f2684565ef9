"""One request as moto received it (:class:`Call`): the IAM action, where it went, and its parameters, read from
moto's parsed request (query and botocore-parsed protocols, else the JSON body, else the query)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Call", "call_of"]

# Credential-scope service name -> IAM action prefix, where they differ.
_PREFIX = {"tagging": "tag", "monitoring": "cloudwatch", "email": "ses"}


@dataclass(frozen=True)
class Call:
    """One request as moto received it: the IAM action, where it went, and its parameters."""

    service: str  # IAM action prefix ("kms", "s3", "tag", ...)
    action: str  # "Sign", "GetObject", ...
    region: str
    account: str
    partition: str
    params: Mapping[str, Any]
    url: str
    remote_addr: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def iam_action(self) -> str:
        return f"{self.service}:{self.action}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


def _params(response: Any) -> dict[str, Any]:
    """moto's parsed parameters (query and botocore-parsed protocols), else the JSON body, else the query (always
    the query for S3, whose body is the object)."""
    if response.service_name != "s3":
        parsed = getattr(response, "params", None)
        if isinstance(parsed, dict) and parsed:
            return parsed
        try:
            body = json.loads(response.body) if response.body else None
        except (TypeError, ValueError):
            body = None
        if isinstance(body, dict):
            return body
    return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in dict(response.querystring).items()}


def call_of(response: Any, action: str, scope_service: str) -> Call:
    environ = getattr(getattr(response, "normalized_request", None), "environ", None) or {}
    return Call(
        service=_PREFIX.get(scope_service, scope_service),
        action=action,
        region=response.region,
        account=response.current_account,
        partition=response.partition,
        params=_params(response),
        url=response.uri,
        remote_addr=environ.get("REMOTE_ADDR"),
        headers=dict(response.headers),
    )
