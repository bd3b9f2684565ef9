"""Secrets Manager adapter. Secret values never appear in a repr, a log line or an error message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.aws.errors import AwsConflict, AwsNotFound, aws_call

__all__ = ["CURRENT", "PENDING", "PREVIOUS", "SecretInfo", "SecretStore", "SecretVersion"]

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
PENDING = "AWSPENDING"


@dataclass(frozen=True)
class SecretVersion:
    arn: str
    name: str
    version_id: str
    stages: tuple[str, ...]
    created_at: datetime | None
    value: str | bytes = field(repr=False)


@dataclass(frozen=True)
class SecretInfo:
    arn: str
    name: str
    versions: Mapping[str, tuple[str, ...]]
    rotation_enabled: bool
    rotation_lambda_arn: str | None
    description: str
    last_rotated_at: datetime | None = None

    def version_in_stage(self, stage: str) -> str | None:
        return next((v for v, stages in self.versions.items() if stage in stages), None)


class SecretStore:
    def __init__(self, client: Any) -> None:
        self._client = client

    def get_value(self, secret_id: str, *, stage: str | None = None, version_id: str | None = None) -> SecretVersion:
        """One version, by id or by stage (AWSCURRENT when neither is given)."""
        args: dict[str, Any] = {"SecretId": secret_id}
        if version_id:
            args["VersionId"] = version_id
        # Always name the stage: a stage-less read can return a stale version after a label move.
        if stage or not version_id:
            args["VersionStage"] = stage or CURRENT
        with aws_call("secretsmanager", "GetSecretValue"):
            response = self._client.get_secret_value(**args)
        value = response["SecretString"] if "SecretString" in response else response["SecretBinary"]
        return SecretVersion(
            arn=response["ARN"],
            name=response["Name"],
            version_id=response["VersionId"],
            stages=tuple(response.get("VersionStages", ())),
            created_at=response.get("CreatedDate"),
            value=value,
        )

    def describe(self, secret_id: str) -> SecretInfo:
        with aws_call("secretsmanager", "DescribeSecret"):
            response = self._client.describe_secret(SecretId=secret_id)
        return SecretInfo(
            arn=response["ARN"],
            name=response["Name"],
            versions={k: tuple(v) for k, v in response.get("VersionIdsToStages", {}).items()},
            rotation_enabled=bool(response.get("RotationEnabled", False)),
            rotation_lambda_arn=response.get("RotationLambdaARN"),
            description=str(response.get("Description", "")),
            last_rotated_at=response.get("LastRotatedDate"),
        )

    def create(
        self,
        name: str,
        value: str | bytes,
        *,
        client_request_token: str | None = None,
        description: str | None = None,
        kms_key_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[str, str]:
        """Create the secret with its first version; returns ``(arn, version_id)``."""
        args: dict[str, Any] = {"Name": name, **_value_args(value)}
        if client_request_token:
            args["ClientRequestToken"] = client_request_token
        if description:
            args["Description"] = description
        if kms_key_id:
            args["KmsKeyId"] = kms_key_id
        if tags:
            args["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        with aws_call("secretsmanager", "CreateSecret"):
            response = self._client.create_secret(**args)
        return response["ARN"], response["VersionId"]

    def create_or_add_version(
        self,
        name: str,
        value: str | bytes,
        *,
        client_request_token: str,
        description: str | None = None,
        kms_key_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[str, str]:
        """Create the secret, or add a version to it; returns ``(arn, version_id)``.

        Idempotent per token: if the token already made a version (a repeated request), that version is
        the answer, whatever ``value`` is this time. The previous version stays as AWSPREVIOUS.
        """
        try:
            arn = self.describe(name).arn
        except AwsNotFound:
            try:
                return self.create(
                    name,
                    value,
                    client_request_token=client_request_token,
                    description=description,
                    kms_key_id=kms_key_id,
                    tags=tags,
                )
            except AwsConflict:
                arn = self.describe(name).arn  # created meanwhile by a concurrent request
        try:
            return arn, self.put_value(arn, value, client_request_token=client_request_token)
        except AwsConflict:
            return arn, client_request_token

    def put_value(
        self,
        secret_id: str,
        value: str | bytes,
        *,
        client_request_token: str,
        stages: tuple[str, ...] | None = None,
    ) -> str:
        """Add a version; the same token with the same value is a no-op, as AWS makes it idempotent."""
        args: dict[str, Any] = {"SecretId": secret_id, "ClientRequestToken": client_request_token}
        args.update(_value_args(value))
        if stages is not None:
            args["VersionStages"] = list(stages)
        with aws_call("secretsmanager", "PutSecretValue"):
            response = self._client.put_secret_value(**args)
        return str(response["VersionId"])

    def move_stage(self, secret_id: str, stage: str, *, to_version: str, from_version: str | None = None) -> None:
        args: dict[str, Any] = {"SecretId": secret_id, "VersionStage": stage, "MoveToVersionId": to_version}
        if from_version:
            args["RemoveFromVersionId"] = from_version
        with aws_call("secretsmanager", "UpdateSecretVersionStage"):
            self._client.update_secret_version_stage(**args)

    def delete(self, secret_id: str, *, recovery_days: int) -> None:
        """Schedule the secret's deletion; it can be restored until ``recovery_days`` have passed."""
        with aws_call("secretsmanager", "DeleteSecret"):
            self._client.delete_secret(SecretId=secret_id, RecoveryWindowInDays=recovery_days)

    def remove_stage(self, secret_id: str, stage: str, *, from_version: str) -> None:
        with aws_call("secretsmanager", "UpdateSecretVersionStage"):
            self._client.update_secret_version_stage(
                SecretId=secret_id, VersionStage=stage, RemoveFromVersionId=from_version
            )


def _value_args(value: str | bytes) -> dict[str, Any]:
    return {"SecretBinary": value} if isinstance(value, bytes) else {"SecretString": value}
