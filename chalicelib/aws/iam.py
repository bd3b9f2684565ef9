"""IAM adapter: read one role or one user of this account (its ARN, its unique id and its tags).

Both reads take a bare name and answer for the caller's own account only: IAM is per account, so credport can read
its own account's principals and nobody else's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.errors import aws_call

__all__ = ["Iam", "RoleInfo", "UserInfo"]


@dataclass(frozen=True)
class RoleInfo:
    arn: str  # arn:aws:iam::A:role/PATH/NAME: the path is only here, never in an assumed-role ARN
    role_id: str  # AROA…: what a session of this very role carries before ":session"
    # The role's IAM tags (GetRole's Role.Tags; absent when the role has none): {} for a role without tags.
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UserInfo:
    arn: str  # arn:aws:iam::A:user/PATH/NAME
    user_id: str  # AIDA…: what API Gateway reports as the caller of a request signed with the user's keys
    tags: Mapping[str, str] = field(default_factory=dict)


class Iam:
    def __init__(self, client: Any) -> None:
        self._client = client

    def get_role(self, name: str) -> RoleInfo:
        """``iam:GetRole``: it reads the caller's own account only (a role name says nothing of the account)."""
        with aws_call("iam", "GetRole"):
            role = self._client.get_role(RoleName=name)["Role"]
        return RoleInfo(arn=str(role["Arn"]), role_id=str(role["RoleId"]), tags=_tags(role.get("Tags")))

    def get_user(self, name: str) -> UserInfo:
        """``iam:GetUser`` of a named user of the caller's own account: its ARN, its unique id and its tags, in one
        answer (IAM API Reference, the User data type: ``Tags``, ``UserId``)."""
        with aws_call("iam", "GetUser"):
            user = self._client.get_user(UserName=name)["User"]
        return UserInfo(arn=str(user["Arn"]), user_id=str(user["UserId"]), tags=_tags(user.get("Tags")))


def _tags(tags: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """IAM's ``[{"Key": k, "Value": v}]`` (at most 50 per principal, keys unique) as a dict."""
    return {str(tag["Key"]): str(tag["Value"]) for tag in tags or ()}
