"""Who calls STS: the principal behind the access key of a request, read from the embedded AWS's own state.

An IAM user's access key, or the temporary key of a role session (AssumeRole, AssumeRoleWithWebIdentity), is
that principal; a session key with the wrong or an expired session token is refused as STS refuses it
(InvalidClientTokenId / ExpiredToken, 403). Any *other* key (the test suite's dummy ``testing`` keys in tests that
do not enforce IAM, moto's ``AKIAEXAMPLE`` default; under enforcement moto refuses an unknown key before this is
asked, and the local stack always enforces) stands for moto's default identity:
an administrator IAM user named ``moto`` of the request's account (moto's GetCallerIdentity reports the same
user). It may call AssumeRole, but role trust policies are still evaluated for it like for any IAM user: a role
trusts it when its policy names that account (root or id), ``*``, or that user's ARN.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.core.utils import utcnow

__all__ = ["DEFAULT_USER", "Caller", "CallerRefused", "find_caller", "organization_of"]

DEFAULT_USER = "moto"
_INVALID = "The security token included in the request is invalid."
_EXPIRED = "The security token included in the request is expired"


class CallerRefused(Exception):
    """The request's credentials are not valid: STS answers 403 before looking at anything else."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Caller:
    kind: str  # "user", "role-session" or "default" (moto's default identity, see the module docstring)
    arn: str  # as STS names the caller in errors: the user ARN or arn:aws:sts::A:assumed-role/R/S
    account: str
    principal_arn: str  # aws:PrincipalArn: the user ARN, or the *role* ARN (path included) of a session
    user_id: str  # aws:userid: AIDA... for a user, AROA...:session for a role session
    tags: Mapping[str, str] = field(default_factory=dict)  # aws:PrincipalTag/*

    @property
    def is_role_session(self) -> bool:
        return self.kind == "role-session"

    def condition_context(self) -> dict[str, Any]:
        """The global condition keys AWS sets for this principal (IAM User Guide, "AWS global condition context
        keys"): aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType, aws:userid, aws:username (users),
        aws:PrincipalTag/*, aws:PrincipalOrgID (when the account is in an organization)."""
        context: dict[str, Any] = {
            "aws:PrincipalArn": self.principal_arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "AssumedRole" if self.is_role_session else "User",
            "aws:userid": self.user_id,
        }
        if not self.is_role_session:
            context["aws:username"] = self.principal_arn.rsplit("/", 1)[-1]
        for key, value in self.tags.items():
            context[f"aws:PrincipalTag/{key}"] = value
        org = organization_of(self.account)
        if org is not None:
            context["aws:PrincipalOrgID"] = org
        return context


def find_caller(access_key: str, session_token: str | None, *, account: str, partition: str) -> Caller:
    """The principal that owns ``access_key`` (``account`` is the request's account, for unknown keys)."""
    for session_account, session in _sessions(partition):
        if not hmac.compare_digest(session.access_key_id, access_key):
            continue
        if session_token is None or not hmac.compare_digest(session.session_token, session_token):
            raise CallerRefused("InvalidClientTokenId", _INVALID)
        if session.expiration.replace(tzinfo=None) <= utcnow().replace(tzinfo=None):
            raise CallerRefused("ExpiredToken", _EXPIRED)
        return _session_caller(session_account, partition, session)
    for user_account, iam, user, key in _user_keys(partition):
        if not hmac.compare_digest(key.access_key_id, access_key):
            continue
        if session_token is not None or key.status != "Active":
            raise CallerRefused("InvalidClientTokenId", _INVALID)
        tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(user.name)}
        return Caller("user", user.arn, user_account, user.arn, user.id, tags)
    arn = f"arn:{partition}:iam::{account}:user/{DEFAULT_USER}"
    return Caller("default", arn, account, arn, "AIDAMOTODEFAULTUSER")


def _session_caller(account: str, partition: str, session: Any) -> Caller:
    from moto.iam.models import iam_backends

    role_arn, tags = session.role_arn, {}
    try:
        role = iam_backends[account][partition].get_role_by_arn(session.role_arn)
    except Exception:  # moto raises its own NotFoundException: the role was deleted since
        role = None
    if role is not None:
        role_arn, tags = role.arn, {t["Key"]: t["Value"] for t in role.tags}
    return Caller("role-session", session.arn, account, role_arn, session.user_id, tags)


def _sessions(partition: str) -> Iterator[tuple[str, Any]]:
    from moto.sts.models import sts_backends

    for account in list(sts_backends.keys()):
        regions = sts_backends[account]
        if partition in regions:
            for session in list(regions[partition].assumed_roles):
                yield account, session


def _user_keys(partition: str) -> Iterator[tuple[str, Any, Any, Any]]:
    from moto.iam.models import iam_backends

    for account in list(iam_backends.keys()):
        regions = iam_backends[account]
        if partition in regions:
            iam = regions[partition]
            for user in list(iam.users.values()):
                for key in list(user.access_keys):
                    yield account, iam, user, key


def organization_of(account: str) -> str | None:
    """The id of the AWS Organization ``account`` belongs to in the embedded AWS, if any."""
    from moto.organizations.models import organizations_backends

    master, partition = organizations_backends.master_accounts.get(account, (account, "aws"))
    if master not in organizations_backends:
        return None
    org = organizations_backends[master][partition].org
    return None if org is None else str(org.id)
