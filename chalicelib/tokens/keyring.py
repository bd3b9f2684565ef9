"""The token signing keys, behind KMS aliases ``alias/<prefix>/signing/{previous,current,pending}``.

A container resolves the aliases at most once per ``ttl`` seconds (and again when a rotation is announced)
and keeps each key's public JWK for good: a KMS key's public half never changes. So a warm container makes
exactly one KMS call per token, the Sign itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.kms import KeyService
from chalicelib.tokens.algorithms import KMS_SPEC_TO_JOSE, SigningAlgorithm, algorithm, public_jwk

__all__ = ["ROLES", "KeyRing", "NoSigningKey", "SigningKey", "alias_name"]

ROLES = ("previous", "current", "pending")
USABLE_STATES = frozenset({"Enabled"})


class NoSigningKey(Exception):
    """No usable current key yet: a fresh deployment that must bootstrap."""


def alias_name(prefix: str, role: str) -> str:
    return f"alias/{prefix}/signing/{role}"


@dataclass(frozen=True)
class SigningKey:
    role: str
    key_arn: str
    kid: str
    alg: SigningAlgorithm
    jwk: dict[str, Any] = field(repr=False)


class KeyRing:
    def __init__(
        self, kms: KeyService, prefix: str, *, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kms = kms
        self._prefix = prefix
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at: float | None = None
        self._jwks_by_arn: dict[str, tuple[str, SigningAlgorithm, dict[str, Any]]] = {}

    def invalidate(self) -> None:
        """Forget the aliases (a rotation was announced, or a key stopped working)."""
        with self._lock:
            self._loaded_at = None

    def current(self) -> SigningKey:
        key = self.keys().get("current")
        if key is None:
            raise NoSigningKey()
        return key

    def keys(self) -> dict[str, SigningKey]:
        """The usable keys by role, from cache when fresh."""
        with self._lock:
            if self._loaded_at is None or self._clock() - self._loaded_at > self._ttl:
                self._keys = self._load()
                self._loaded_at = self._clock()
            return dict(self._keys)

    def published(self) -> list[SigningKey]:
        """What the JWKS holds: previous, current and pending (a key is published before it signs and
        stays published after), each once."""
        seen: dict[str, SigningKey] = {}
        for role in ROLES:
            key = self.keys().get(role)
            if key is not None and key.kid not in seen:
                seen[key.kid] = key
        return list(seen.values())

    def _load(self) -> dict[str, SigningKey]:
        keys = {}
        for role in ROLES:
            info = self._kms.alias_target(alias_name(self._prefix, role))
            if info is None or info.state not in USABLE_STATES or info.usage != "SIGN_VERIFY":
                continue
            kid, alg, jwk = self._public(info.arn, info.key_spec)
            keys[role] = SigningKey(role=role, key_arn=info.arn, kid=kid, alg=alg, jwk=jwk)
        return keys

    def _public(self, key_arn: str, key_spec: str) -> tuple[str, SigningAlgorithm, dict[str, Any]]:
        cached = self._jwks_by_arn.get(key_arn)
        if cached is None:
            alg = algorithm(KMS_SPEC_TO_JOSE.get(key_spec, key_spec))
            jwk = public_jwk(self._kms.public_key(key_arn).der, alg)
            cached = self._jwks_by_arn[key_arn] = (str(jwk["kid"]), alg, jwk)
        return cached
