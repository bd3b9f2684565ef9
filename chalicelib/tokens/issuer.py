"""Issue JWTs, signed inside KMS or with an envelope key in memory (see :mod:`chalicelib.tokens.keyring`).

The compact JWS is assembled here (``base64url(header).base64url(claims)``) because with the KMS signer the
private key never leaves KMS: KMS signs the signing input with ``MessageType=RAW``. Both signers produce the
same tokens. Everything that *verifies* tokens goes through joserfc with an explicit algorithm allow-list
(see :mod:`chalicelib.tokens.verify`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc.util import urlsafe_b64encode

from chalicelib.aws.errors import AwsNotFound, AwsRejected
from chalicelib.principal import Principal
from chalicelib.tokens.keyring import KeyRing

__all__ = ["IssuedToken", "TokenIssuer", "claims_for"]

# A key that was disabled or scheduled for deletion (an emergency revocation) answers with these.
_STALE_KEY_CODES = frozenset({"DisabledException", "KMSInvalidStateException", "NotFoundException"})


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    kid: str
    jti: str


def claims_for(principal: Principal, *, issuer: str, audience: str, now: int, ttl: int, jti: str) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": principal.subject,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": jti,
        "aws_account": principal.account_id,
        "aws_arn": principal.caller_arn,
        "aws_principal_type": principal.kind,
        "aws_principal_id": principal.unique_id,
    }
    if principal.session_name is not None:
        claims["aws_session_name"] = principal.session_name
    if principal.organization_id is not None:
        claims["aws_org_id"] = principal.organization_id
    return claims


def _segment(value: dict[str, Any]) -> bytes:
    return urlsafe_b64encode(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


class TokenIssuer:
    def __init__(
        self,
        keyring: KeyRing,
        issuer: str,
        *,
        clock: Callable[[], float] = time.time,
        new_jti: Callable[[], str] | None = None,
    ) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._clock = clock
        self._new_jti = new_jti or (lambda: secrets.token_urlsafe(18))

    def issue(self, principal: Principal, *, audience: str, ttl: int) -> IssuedToken:
        now = int(self._clock())
        jti = self._new_jti()
        claims = claims_for(principal, issuer=self._issuer, audience=audience, now=now, ttl=ttl, jti=jti)
        try:
            return self._sign(claims, jti, ttl)
        except (AwsRejected, AwsNotFound) as error:
            if error.aws_code not in _STALE_KEY_CODES:
                raise
            # The cached current KMS key was revoked or rotated away: look the aliases up again, once.
            self._keyring.invalidate()
            return self._sign(claims, jti, ttl)

    def _sign(self, claims: dict[str, Any], jti: str, ttl: int) -> IssuedToken:
        key = self._keyring.current()
        signing_input = key.header + b"." + _segment(claims)
        token = (signing_input + b"." + urlsafe_b64encode(key.sign(signing_input))).decode("ascii")
        return IssuedToken(token=token, expires_in=ttl, kid=key.kid, jti=jti)
