"""Who the local stack's parts act as in the embedded AWS, which enforces IAM as AWS does (local.iam.enforce).

- The stack itself (provisioning template.yaml, the event pump standing in for the Lambda service's event source
  mappings and Secrets Manager's rotation driver) acts as the account's root user, with a key made at start.
- The app's functions act as on AWS: each with a session of its own role, which holds the function's policy file
  (.chalice/config.json's ``iam_policy_file`` of the function in the dev stage, with the stack's prefix), as chalice
  gives each function a role of its own. The local stack runs every function in one process: the app's AWS clients
  sign with :class:`FunctionCredentials`, the session of the function the current invocation runs as
  (chalicelib.aws.running_function, set per invocation by the gateway, the event pump and the rotation driver
  through the app's invocation middleware, or around an authorizer by the gateway).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import NoCredentialsError

from chalicelib.aws.clients import running_function

__all__ = [
    "LAMBDA_SESSION_SECONDS",
    "FunctionCredentials",
    "Keys",
    "function_policies",
    "lambda_session",
    "role_logical_id",
    "root_keys",
    "stage_policy",
]

STAGE_POLICY_PREFIX = "credport-dev"  # the prefix the dev stage's policy files are written for
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


def role_logical_id(function: str) -> str:
    """The logical id chalice gives ``function``'s role in the packaged SAM template (ApiHandlerRole, AutoIdRole)."""
    from chalice.utils import to_cfn_resource_name

    return str(to_cfn_resource_name(f"{function}_role"))


def function_policies(chalice_dir: Path, functions: Iterable[str], prefix: str, stage: str = "dev") -> dict[str, Any]:
    """Each function's policy, by name, as chalice picks it (.chalice/config.json: the function's ``iam_policy_file``
    in the stage, else the stage's, else ``policy-<stage>.json``), written for the stack's ``prefix``."""
    config = json.loads((chalice_dir / "config.json").read_text())
    settings = config["stages"][stage]
    policies = {}
    for function in functions:
        own = settings.get("lambda_functions", {}).get(function, {}).get("iam_policy_file")
        name = own or settings.get("iam_policy_file") or f"policy-{stage}.json"
        policies[function] = stage_policy((chalice_dir / name).read_text(), prefix)
    return policies


class FunctionCredentials(Credentials):
    """What the app's AWS clients sign with in the local stack: at every request, the session of the function the
    current invocation runs as. No function running, or one without a session, signs nothing: the request fails
    (NoCredentialsError), never falls back to another identity."""

    def __init__(self, sessions: Mapping[str, Keys]) -> None:  # no super().__init__: it would set the keys
        self.method = "credport-local-function"
        self.account_id = None
        self._sessions = dict(sessions)

    def _current(self) -> Keys:
        function = running_function.get()
        keys = self._sessions.get(function) if function is not None else None
        if keys is None:
            raise NoCredentialsError()
        return keys

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        keys = self._current()
        return ReadOnlyCredentials(keys.access_key_id, keys.secret_access_key, keys.session_token, None)

    # botocore reads these directly in a few places (whether credentials exist at all, for one).
    @property
    def access_key(self) -> str:
        return self._current().access_key_id

    @property
    def secret_key(self) -> str:
        return self._current().secret_access_key

    @property
    def token(self) -> str | None:
        return self._current().session_token


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
