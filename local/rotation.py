"""Secrets Manager rotation, run locally: moto stores versions and labels but never runs rotation code.

:class:`RotationDriver` plays Secrets Manager's part. It stages an ``AWSPENDING`` version with no value
under a fresh ``ClientRequestToken`` (what RotateSecret does before it invokes the function), then invokes
the rotation function for ``createSecret``, ``setSecret``, ``testSecret`` and ``finishSecret`` in turn.
A failed step leaves the pending version in place and the next rotation resumes it with the same token,
as AWS retries do, so the function's idempotency per token is exercised for real.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice.local import LambdaContext

__all__ = ["STEPS", "RotationDriver", "RotationFailed", "RotationResult"]

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
RotationFunction = Callable[[dict[str, Any], Any], Any]


class RotationFailed(Exception):
    def __init__(self, secret_id: str, token: str, step: str, cause: BaseException) -> None:
        super().__init__(f"rotation of {secret_id} failed at {step} ({type(cause).__name__})")
        self.secret_id, self.token, self.step = secret_id, token, step


@dataclass(frozen=True)
class RotationResult:
    secret_id: str
    token: str
    resumed: bool


class RotationDriver:
    def __init__(self, account_id: str, region: str) -> None:
        self._account_id = account_id
        self._region = region

    def _secret(self, secret_id: str) -> Any:
        from moto.secretsmanager.models import secretsmanager_backends

        secrets = secretsmanager_backends[self._account_id][self._region].secrets
        if secret_id not in secrets:
            raise KeyError(secret_id)
        return secrets[secret_id]

    def stage_pending(self, secret_id: str) -> tuple[str, bool]:
        """The token of the rotation to run: an unfinished one is resumed, else a new one is staged."""
        secret = self._secret(secret_id)
        for version_id, version in secret.versions.items():
            stages = version["version_stages"]
            if "AWSPENDING" in stages and "AWSCURRENT" not in stages:
                return version_id, True
        token = str(uuid.uuid4())
        secret.remove_version_stages_from_old_versions(["AWSPENDING"])
        secret.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}
        return token, False

    def rotate(self, secret_id: str, function: RotationFunction, *, function_arn: str = "") -> RotationResult:
        token, resumed = self.stage_pending(secret_id)
        secret = self._secret(secret_id)
        secret.rotation_requested = True  # what RotateSecret records (moto reports rotation fields only then)
        secret.rotation_enabled = True
        secret.rotation_lambda_arn = function_arn
        # The rotation function runs as itself (its name, the last part of its ARN): its role signs its requests.
        name = function_arn.rsplit(":", 1)[-1] or "rotation"
        context = LambdaContext(function_name=name, memory_size=512, max_runtime_ms=30_000)
        for step in STEPS:
            try:
                function({"SecretId": secret.arn, "ClientRequestToken": token, "Step": step}, context)
            except Exception as exc:
                raise RotationFailed(secret_id, token, step, exc) from exc
        secret.last_rotation_date = int(time.time())
        return RotationResult(secret_id=secret_id, token=token, resumed=resumed)
