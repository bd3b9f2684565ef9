"""Who the caller is, from the IAM identity API Gateway verified.

Assumed-role sessions map to their role (``sub`` = ``arn:aws:iam::A:role/R``; the session name is only
informational), IAM users keep their path, federated users map to themselves. An assumed-role ARN never
carries the role's path: :mod:`chalicelib.role_arns` puts it back for roles of credport's own account.
The root user and anything unrecognised are refused. The unique id (``AROA…``/``AIDA…``) rides along so a
deleted and re-created principal with the same name is distinguishable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.errors import UnsupportedPrincipal
from chalicelib.identity import RequestIdentity

__all__ = ["Principal", "principal_of"]

# IAM names: letters, digits and +=,.@_- ; role names up to 64, user names up to 64; paths /…/ up to 512.
_NAME = r"[\w+=,.@-]{1,64}"
_SESSION = r"[\w+=,.@-]{2,64}"
_PARTITION = r"aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b"
_ACCOUNT = r"\d{12}"
# Used with fullmatch: "$" would also accept a trailing newline.
_ASSUMED_ROLE = re.compile(rf"arn:({_PARTITION}):sts::({_ACCOUNT}):assumed-role/({_NAME})/({_SESSION})", re.ASCII)
_USER = re.compile(rf"arn:({_PARTITION}):iam::({_ACCOUNT}):user((?:/[\x21-\x7e]{{1,510}})?/)({_NAME})", re.ASCII)
_FEDERATED = re.compile(rf"arn:({_PARTITION}):sts::({_ACCOUNT}):federated-user/({_SESSION})", re.ASCII)


@dataclass(frozen=True)
class Principal:
    kind: str  # "role" | "user" | "federated-user"
    subject: str  # the stable ARN the token is about
    account_id: str
    caller_arn: str  # exactly as verified
    unique_id: str  # AROA…/AIDA… (or the provider's id), without the session part
    session_name: str | None
    organization_id: str | None
    role_name: str | None = None  # roles only: what iam:GetRole takes
    # The principal's IAM tags where credport can read them (its own account's roles and users); None: unknown.
    tags: Mapping[str, str] | None = None
    # The caller account's place in the organization ("o-…/r-…/ou-…/"), where an Organizations lookup is configured.
    ou_path: str | None = None


def principal_of(identity: RequestIdentity, organization_id: str | None = None) -> Principal:
    arn = identity.user_arn
    # Roles: "AROA…:session" -> the role's id; users: "AIDA…"; federated users have no id of their own,
    # and AWS identifies them as "account:name", kept whole.
    unique_id = identity.caller if _FEDERATED.fullmatch(arn) else identity.caller.split(":", 1)[0]
    if not re.fullmatch(r"[\x21-\x7e]{1,128}", unique_id or "-"):
        raise UnsupportedPrincipal()
    if match := _ASSUMED_ROLE.fullmatch(arn):
        partition, account, role, session = match.groups()
        subject, kind, session_name = f"arn:{partition}:iam::{account}:role/{role}", "role", session
        role_name: str | None = role
    elif match := _USER.fullmatch(arn):
        partition, account, path, _name = match.groups()
        if "//" in path:
            raise UnsupportedPrincipal()
        subject, kind, session_name, role_name = arn, "user", None, None
    elif match := _FEDERATED.fullmatch(arn):
        partition, account, _name = match.groups()
        subject, kind, session_name, role_name = arn, "federated-user", None, None
    else:
        # Includes arn:aws:iam::A:root: root credentials never get tokens.
        raise UnsupportedPrincipal()
    if identity.account_id and identity.account_id != account:
        raise UnsupportedPrincipal()
    if not unique_id:
        raise UnsupportedPrincipal()
    return Principal(
        kind=kind,
        subject=subject,
        account_id=account,
        caller_arn=arn,
        unique_id=unique_id,
        session_name=session_name,
        organization_id=organization_id,
        role_name=role_name,
    )
