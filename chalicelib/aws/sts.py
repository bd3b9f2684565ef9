"""STS adapter: temporary credentials for roles a policy allows, and the caller's own identity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.aws.errors import aws_call

__all__ = ["CallerIdentity", "Sts", "TemporaryCredentials"]


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key_id: str
    expiration: datetime
    assumed_role_arn: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)


@dataclass(frozen=True)
class CallerIdentity:
    account: str
    arn: str
    user_id: str


class Sts:
    def __init__(self, client: Any) -> None:
        self._client = client

    def assume_role(
        self,
        role_arn: str,
        session_name: str,
        *,
        duration_seconds: int = 3600,
        external_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> TemporaryCredentials:
        args: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration_seconds,
        }
        if external_id:
            args["ExternalId"] = external_id
        if tags:
            args["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        with aws_call("sts", "AssumeRole"):
            response = self._client.assume_role(**args)
        creds = response["Credentials"]
        return TemporaryCredentials(
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
            expiration=creds["Expiration"],
            assumed_role_arn=response["AssumedRoleUser"]["Arn"],
        )

    def caller_identity(self) -> CallerIdentity:
        with aws_call("sts", "GetCallerIdentity"):
            response = self._client.get_caller_identity()
        return CallerIdentity(account=response["Account"], arn=response["Arn"], user_id=response["UserId"])
