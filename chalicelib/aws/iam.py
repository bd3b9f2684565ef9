"""IAM adapter: read one role of this account (its ARN, path included, and its unique id)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.aws.errors import aws_call

__all__ = ["Iam", "RoleInfo"]


@dataclass(frozen=True)
class RoleInfo:
    arn: str  # arn:aws:iam::A:role/PATH/NAME: the path is only here, never in an assumed-role ARN
    role_id: str  # AROA…: what a session of this very role carries before ":session"


class Iam:
    def __init__(self, client: Any) -> None:
        self._client = client

    def get_role(self, name: str) -> RoleInfo:
        """``iam:GetRole``: it reads the caller's own account only (a role name says nothing of the account)."""
        with aws_call("iam", "GetRole"):
            role = self._client.get_role(RoleName=name)["Role"]
        return RoleInfo(arn=str(role["Arn"]), role_id=str(role["RoleId"]))
