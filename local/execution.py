"""Who the local stack's parts act as in the embedded AWS, which enforces IAM as AWS does (local.iam.enforce).

- The stack itself (provisioning template.yaml, the event pump standing in for the Lambda service's event source
  mappings and Secrets Manager's rotation driver) acts as the account's root user, with a key made at start.
- The app's functions act as on AWS: with a session of their role, which holds the stage's policy
  (.chalice/policy-dev.json, with the stack's prefix). chalice gives each function a role of its own, all holding
  that one policy; the local stack runs every function in one process with one set of credentials, a session of the
  API handler's role (the role a signing key's key policy and auto-id roles' trust policies name).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

__all__ = ["APP_ROLE", "LAMBDA_SESSION_SECONDS", "Keys", "lambda_session", "root_keys", "stage_policy"]

APP_ROLE = "ApiHandlerRole"  # template.yaml's logical id of the API handler's role
STAGE_POLICY_PREFIX = "credport-dev"  # the prefix .chalice/policy-dev.json is written for
# The Lambda service refreshes a function's credentials; the local stack makes one session for as long as a local
# stack plausibly runs. Role chaining from it is still capped at an hour by the embedded STS, as on AWS.
LAMBDA_SESSION_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def environment(self) -> dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


def root_keys() -> Keys:
    """A fresh key for the account's root user (registered with local.iam.enforce by the caller)."""
    return Keys("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))


def stage_policy(policy_text: str, prefix: str) -> dict[str, Any]:
    """The dev stage's policy for a stack whose prefix is ``prefix`` (names carry the prefix, as the template's)."""
    document: dict[str, Any] = json.loads(policy_text.replace(STAGE_POLICY_PREFIX, prefix))
    return document


def lambda_session(account_id: str, region: str, role_arn: str, function_name: str) -> Keys:
    """A session of ``role_arn``, made as the Lambda service makes one for a function (no caller, no trust check:
    Lambda is the principal the role trusts)."""
    from moto.sts.models import sts_backends

    backend = sts_backends[account_id]["aws"]
    session = backend.assume_role(
        region_name=region,
        role_session_name=function_name,
        role_arn=role_arn,
        policy="",
        duration=LAMBDA_SESSION_SECONDS,
        external_id="",
    )
    return Keys(session.access_key_id, session.secret_access_key, session.session_token)
