"""The IAM identity API Gateway attaches to a request that passed ``IAMAuthorizer``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import Forbidden, OutsideOrganization

__all__ = ["RequestIdentity"]


@dataclass(frozen=True)
class RequestIdentity:
    user_arn: str
    account_id: str
    caller: str
    user: str
    access_key: str
    source_ip: str
    principal_org_id: str | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None) -> RequestIdentity:
        """Read ``requestContext.identity``; a request without a signed IAM identity is refused."""
        identity = (context or {}).get("identity") or {}
        user_arn = identity.get("userArn")
        if not isinstance(user_arn, str) or not user_arn.startswith("arn:"):
            raise Forbidden("The request carries no IAM identity.")
        return cls(
            user_arn=user_arn,
            account_id=str(identity.get("accountId") or ""),
            caller=str(identity.get("caller") or ""),
            user=str(identity.get("user") or ""),
            access_key=str(identity.get("accessKey") or ""),
            source_ip=str(identity.get("sourceIp") or ""),
            principal_org_id=identity.get("principalOrgId") or None,
        )

    def require_organization(self, organization_id: str | None) -> None:
        """Refuse a caller outside ``organization_id`` (None: any caller). API Gateway's ``principalOrgId`` is the
        caller's organization, which the API's resource policy checked already: this is the second layer."""
        if organization_id is not None and self.principal_org_id != organization_id:
            raise OutsideOrganization()

    def public_view(self) -> dict[str, str]:
        """What a caller may see about itself."""
        return {"arn": self.user_arn, "account": self.account_id, "caller": self.caller}
