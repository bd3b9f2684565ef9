"""Secrets Manager rotation, run locally: moto stores versions and labels but never runs rotation code.

:class:`RotationDriver` plays Secrets Manager's part. It stages an ``AWSPENDING`` version with no value
under a fresh ``ClientRequestToken`` (what RotateSecret does before it invokes the function), then invokes
the rotation function for ``createSecret``, ``setSecret``, ``testSecret`` and ``finishSecret`` in turn.
A failed step leaves the pending version in place and the next rotation resumes it with the same token,
as AWS retries do, so the function's idempotency per token is exercised for real.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalice.local import LambdaContext

from local.provision import RotationSpec
from local.pump import reason_of

__all__ = ["STEPS", "LocalRotations", "RotationDriver", "RotationFailed", "RotationResult"]

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
RotationFunction = Callable[[dict[str, Any], Any], Any]


class RotationFailed(Exception):
    def __init__(self, secret_id: str, token: str, step: str, cause: BaseException) -> None:
        super().__init__(f"rotation of {secret_id} failed at {step} ({type(cause).__name__})")
        self.secret_id, self.token, self.step = secret_id, token, step
        self.cause = cause  # what the rotation function raised (``python -m local rotate`` reports it)


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


class LocalRotations:
    """The stack's rotation schedules (template.yaml's RotationSchedules), and rotation on request, one rotation
    of a secret at a time, as Secrets Manager runs them; a failure answers with its step and reason."""

    def __init__(self, account_id: str, region: str, log: Callable[[str], None], stopping: threading.Event) -> None:
        self._driver = RotationDriver(account_id, region)
        self._functions: dict[str, tuple[str, RotationFunction]] = {}  # secret name -> (function ARN, handler)
        self._lock = threading.Lock()
        self._log = log
        self._stopping = stopping

    def register(self, specs: Sequence[RotationSpec], module: Any, describe: Callable[[str], str]) -> None:
        """Each spec's secret (its name by ``describe``) with the app's handler of the function the spec names."""
        handlers = {
            f.name: getattr(module, f.handler_string.rsplit(".", 1)[1]) for f in module.app.pure_lambda_functions
        }
        for spec in specs:
            name = spec.function_arn.rsplit(":", 1)[1]
            if name not in handlers:
                raise RuntimeError(f"rotation of {spec.secret_id} names function {name}, which the app does not define")
            self._functions[describe(spec.secret_id)] = (spec.function_arn, handlers[name])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._functions))

    def start_schedules(self, specs: Sequence[RotationSpec]) -> None:
        """As Secrets Manager does: rotate when the schedule is created (unless told not to), then when due."""
        for spec, secret_name in zip(specs, list(self._functions), strict=True):
            if spec.rotate_immediately:
                self._report(secret_name)
            if spec.period_seconds:
                thread = threading.Thread(
                    target=self._loop,
                    args=(secret_name, spec.period_seconds),
                    name=f"rotation:{secret_name}",
                    daemon=True,
                )
                thread.start()

    def _loop(self, secret_name: str, period: int) -> None:
        while not self._stopping.wait(period):
            self._report(secret_name)

    def _report(self, secret_name: str) -> None:
        status, payload = self.rotate(secret_name)
        self._log(f"rotation {secret_name} -> {'ok' if status == 200 else payload}")

    def rotate(self, secret_id: str) -> tuple[int, dict[str, Any]]:
        """Run the rotation of ``secret_id`` now: 200, 404 for a secret without rotation, 500 with its reason."""
        if secret_id not in self._functions:
            return 404, {"error": "unknown_rotation", "rotations": list(self.names)}
        arn, function = self._functions[secret_id]
        with self._lock:
            try:
                result = self._driver.rotate(secret_id, function, function_arn=arn)
            except RotationFailed as failed:
                reason = reason_of(failed.cause)
                return 500, {"error": "rotation_failed", "step": failed.step, "token": failed.token, "reason": reason}
        return 200, {"secret": secret_id, "token": result.token, "resumed": result.resumed}
