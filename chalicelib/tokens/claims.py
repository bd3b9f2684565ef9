"""What a token says: its registered claims and the caller's AWS identity, in one of two layouts.

``namespaced`` (the default, as STS GetWebIdentityToken lays out its tokens): the registered claims at the top, and
the AWS identity in one object under a namespace claim (a URI, by default the issuer with a trailing ``/``)::

    {"iss", "sub", "aud", "iat", "nbf", "exp", "jti",
     "<namespace>": {"aws_account", "source_region", "principal_id", "principal_type", "session_name",
                     "org_id", "ou_path", "principal_tags", "request_tags"}}

``flat`` (what credport's tokens carried before, kept for relying parties that read it): ``aws_account``,
``aws_arn``, ``aws_principal_type``, ``aws_principal_id``, ``aws_session_name``, ``aws_org_id`` at the top, with
``aws_ou_path``, ``aws_principal_tags`` and ``aws_request_tags`` when there are any.

A claim whose value credport does not know is left out, never sent empty: ``org_id`` (a caller outside any
organization), ``ou_path`` (no Organizations lookup configured), ``principal_tags`` (a principal of another
account: IAM tags are readable in credport's own account only), ``session_name`` (not a role session),
``request_tags`` (none asked for). The README's claims table documents each one.

A caller's claims but the time and ``jti`` are serialized once into a :class:`ClaimsTemplate`, which completes
each token's payload with a format string: a warm container asked for the same token again serializes nothing.
The payload is compact JSON and must fit :data:`MAX_PAYLOAD_BYTES`: with the header and the largest
signature the token then stays under 17,000 characters, inside STS's 20,000-character ``WebIdentityToken`` limit
(STS API Reference, AssumeRoleWithWebIdentity), so every credport token can be federated into AWS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.principal import Principal
from chalicelib.tokens.exceptions import TokenTooLarge

__all__ = ["FLAT_NAMES", "MAX_PAYLOAD_BYTES", "NAMESPACED_NAMES", "ClaimsLayout", "ClaimsTemplate", "TokenClaims"]

MAX_PAYLOAD_BYTES = 12 * 1024
# Each layout's claim for each fact about the caller (a fact a layout has no name for is not in its tokens).
NAMESPACED_NAMES = {
    "account": "aws_account",
    "source_region": "source_region",
    "principal_id": "principal_id",
    "principal_type": "principal_type",
    "session_name": "session_name",
    "org_id": "org_id",
    "ou_path": "ou_path",
    "principal_tags": "principal_tags",
    "request_tags": "request_tags",
}
FLAT_NAMES = {
    "account": "aws_account",
    "arn": "aws_arn",
    "principal_type": "aws_principal_type",
    "principal_id": "aws_principal_id",
    "session_name": "aws_session_name",
    "org_id": "aws_org_id",
    "ou_path": "aws_ou_path",
    "principal_tags": "aws_principal_tags",
    "request_tags": "aws_request_tags",
}


# A jti goes into the payload unescaped: it must be text JSON never escapes (base64url, as secrets.token_urlsafe).
_JTI = re.compile(r"[A-Za-z0-9_-]{8,128}")
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class TokenClaims:
    """One token's claims, serialized: ``payload`` is the JSON the signature covers."""

    payload: bytes

    @property
    def claims(self) -> dict[str, Any]:
        return dict(json.loads(self.payload))


@dataclass(frozen=True)
class ClaimsTemplate:
    """One caller's claims, serialized, but ``iat``/``nbf``/``exp``/``jti``: ``opening`` is the JSON object up to
    ``aud`` (no closing brace), ``closing`` what follows ``jti`` (the identity claims and the closing brace)."""

    opening: str
    closing: str
    ttl: int

    def complete(self, now: int, jti: str) -> TokenClaims:
        if not _JTI.fullmatch(jti):
            raise ValueError("a jti is 8 to 128 base64url characters")
        times = f'"iat":{now:d},"nbf":{now:d},"exp":{now + self.ttl:d}'
        payload = f'{self.opening},{times},"jti":"{jti}"{self.closing}'.encode()
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise TokenTooLarge(
                f"The token's claims would be {len(payload)} bytes, over the maximum of {MAX_PAYLOAD_BYTES}:"
                " ask for fewer or shorter audiences or request tags."
            )
        return TokenClaims(payload)


@dataclass(frozen=True)
class ClaimsLayout:
    issuer: str
    layout: str  # "namespaced" | "flat"
    namespace: str
    source_region: str

    def build(
        self,
        principal: Principal,
        *,
        audience: str | list[str],
        now: int,
        ttl: int,
        jti: str,
        request_tags: Mapping[str, str],
    ) -> TokenClaims:
        return self.template(principal, audience=audience, ttl=ttl, request_tags=request_tags).complete(now, jti)

    def template(
        self, principal: Principal, *, audience: str | list[str], ttl: int, request_tags: Mapping[str, str]
    ) -> ClaimsTemplate:
        """The claims of a token for ``principal``, serialized, in this layout, but its time and jti."""
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise TypeError("a token's ttl is an int")
        facts = {
            "account": principal.account_id,
            "arn": principal.caller_arn,
            "source_region": self.source_region,
            "principal_id": principal.unique_id,
            "principal_type": principal.kind,
            "session_name": principal.session_name,
            "org_id": principal.organization_id,
            "ou_path": principal.ou_path,
            "principal_tags": dict(principal.tags) if principal.tags else None,
            "request_tags": dict(request_tags) if request_tags else None,
        }
        names = FLAT_NAMES if self.layout == "flat" else NAMESPACED_NAMES
        identity = {name: facts[fact] for fact, name in names.items() if facts[fact] is not None}
        head = _COMPACT({"iss": self.issuer, "sub": principal.subject, "aud": audience})[:-1]
        rest = _COMPACT(identity if self.layout == "flat" else {self.namespace: identity})
        return ClaimsTemplate(opening=head, closing="}" if rest == "{}" else "," + rest[1:], ttl=ttl)
