"""Issue JWTs, signed inside KMS or with an envelope key in memory (see :mod:`chalicelib.tokens.keyring`).

The compact JWS is assembled here (``base64url(header).base64url(claims)``) because with the KMS signer the
private key never leaves KMS: KMS signs the signing input (``MessageType=RAW``, or its hash as ``DIGEST`` past
4096 bytes). The claims are :mod:`chalicelib.tokens.claims`'s. Both signers produce the
same tokens. Everything that *verifies* tokens goes through joserfc with an explicit algorithm allow-list
(see :mod:`chalicelib.tokens.verify`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chalicelib import base64url
from chalicelib.aws.errors import AwsNotFound, AwsRejected
from chalicelib.principal import Principal
from chalicelib.tokens.claims import ClaimsLayout, ClaimsTemplate
from chalicelib.tokens.keyring import KeyRing

__all__ = ["IssuedToken", "TokenIssuer"]


def new_jti_value() -> str:
    """A token's jti: 144 bits from the OS's CSPRNG, base64url (24 characters): ``secrets.token_urlsafe(18)``,
    which reads the same ``os.urandom``, without its three Python frames."""
    return base64url.text(os.urandom(18))


# A key that was disabled or scheduled for deletion (an emergency revocation) answers with these.
_STALE_KEY_CODES = frozenset({"DisabledException", "KMSInvalidStateException", "NotFoundException"})


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    kid: str
    jti: str
    alg: str


class TokenIssuer:
    """Signs with the current key of the algorithm asked for (each algorithm has its own key ring)."""

    def __init__(
        self,
        keyrings: KeyRing | Mapping[str, KeyRing],
        issuer: str | ClaimsLayout,
        *,
        clock: Callable[[], float] = time.time,
        new_jti: Callable[[], str] | None = None,
    ) -> None:
        self._keyrings = keyrings if isinstance(keyrings, Mapping) else {keyrings.store.algorithm: keyrings}
        self._layout = (
            issuer
            if isinstance(issuer, ClaimsLayout)
            else ClaimsLayout(issuer=issuer, layout="flat", namespace="", source_region="")
        )
        self._default = next(iter(self._keyrings))
        self._clock = clock
        self._new_jti = new_jti or new_jti_value

    @property
    def layout(self) -> ClaimsLayout:
        return self._layout

    def issue(
        self,
        principal: Principal,
        *,
        audience: str | list[str],
        ttl: int,
        algorithm: str | None = None,
        request_tags: Mapping[str, str] | None = None,
    ) -> IssuedToken:
        template = self._layout.template(principal, audience=audience, ttl=ttl, request_tags=request_tags or {})
        return self.issue_from(template, algorithm=algorithm)

    def issue_from(self, template: ClaimsTemplate, *, algorithm: str | None = None) -> IssuedToken:
        """A token with ``template``'s claims, issued now, with a fresh jti."""
        jti = self._new_jti()
        keyring = self._keyrings[algorithm or self._default]
        payload = base64url.encode(template.complete(int(self._clock()), jti).payload)
        try:
            return self._sign(keyring, payload, jti, template.ttl)
        except (AwsRejected, AwsNotFound) as error:
            if error.aws_code not in _STALE_KEY_CODES:
                raise
            # The cached current KMS key was revoked or rotated away: look the aliases up again, once.
            keyring.invalidate()
            return self._sign(keyring, payload, jti, template.ttl)

    @staticmethod
    def _sign(keyring: KeyRing, payload: bytes, jti: str, ttl: int) -> IssuedToken:
        key = keyring.current()
        signing_input = key.header + b"." + payload
        token = (signing_input + b"." + base64url.encode(key.sign(signing_input))).decode("ascii")
        return IssuedToken(token=token, expires_in=ttl, kid=key.kid, jti=jti, alg=key.alg.jose)
