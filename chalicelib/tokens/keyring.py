"""The token signing keys as a container sees them, whichever signer holds them.

A :class:`KeyStore` knows where the keys live and which key holds each role (previous, current, pending):
KMS keys behind aliases (:mod:`chalicelib.tokens.kms_keys`) or private keys kept in Secrets Manager
(:mod:`chalicelib.tokens.envelope_keys`). The :class:`KeyRing` asks the store for the roles at most once per
``ttl`` seconds (and again when a rotation is announced), through the shared expiring cache
(:class:`~chalicelib.keys.source.CachedKeySource`), and opens each key once: a key's public half, and
an envelope key's private half, never change. So a warm container signs with no lookup at all: one KMS Sign
per token with the KMS signer, no AWS call with the envelope signer.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib import base64url
from chalicelib.keys.source import CachedKeySource
from chalicelib.tokens.algorithms import SigningAlgorithm
from chalicelib.tokens.exceptions import NoSigningKey

__all__ = [
    "ROLES",
    "KeyRing",
    "KeyStore",
    "NoSigningKey",
    "SigningKey",
    "alias_name",
    "key_set_name",
    "qualified",
    "signing_key",
]

ROLES = ("previous", "current", "pending")


def key_set_name(algorithm: str, legacy_algorithm: str) -> str:
    """The name of an algorithm's key set in key names and journal items: empty for the legacy algorithm, whose keys
    keep the names of releases before per-algorithm keys (an upgrade signs on with them), else the algorithm in
    lower case (``es384``)."""
    return "" if algorithm == legacy_algorithm else algorithm.lower()


def qualified(name: str, key_set: str) -> str:
    return f"{name}/{key_set}" if key_set else name


def alias_name(prefix: str, role: str, key_set: str = "") -> str:
    """``alias/<prefix>/signing/<role>``, or ``alias/<prefix>/signing/<key set>/<role>``."""
    return f"alias/{prefix}/signing/{key_set + '/' if key_set else ''}{role}"


@dataclass(frozen=True)
class SigningKey:
    """A key that signs tokens. ``sign`` returns the JWS signature of the signing input; for an envelope key
    it holds the private key, which therefore never appears in a repr or a comparison."""

    role: str
    key_id: str  # the KMS key ARN, or the ARN of the secret holding the private key
    kid: str
    alg: SigningAlgorithm
    jwk: dict[str, Any] = field(repr=False)
    sign: Callable[[bytes], bytes] = field(repr=False, compare=False)
    header: bytes = field(repr=False, compare=False)  # the JWS header, base64url-encoded once


def signing_key(key_id: str, alg: SigningAlgorithm, jwk: dict[str, Any], sign: Callable[[bytes], bytes]) -> SigningKey:
    """A store's opened key (its role is given by the key ring)."""
    kid = str(jwk["kid"])
    header = {"alg": alg.jose, "typ": "JWT", "kid": kid}
    encoded = base64url.encode(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())
    return SigningKey(role="", key_id=key_id, kid=kid, alg=alg, jwk=jwk, sign=sign, header=encoded)


class KeyStore(Protocol):
    """Where the signing keys live. Every write is idempotent, so a rotation step can always be rerun."""

    @property
    def signer(self) -> str:
        """``kms`` or ``envelope`` (CREDPORT_TOKEN_SIGNER)."""
        ...

    @property
    def algorithm(self) -> str:
        """The JOSE ``alg`` of every key of this store (one key set per algorithm)."""
        ...

    @property
    def journal_key(self) -> Mapping[str, str]:
        """The state-table item that journals this store's rotations."""
        ...

    @property
    def refresh_interval(self) -> float:
        """How long a container may trust its view of the roles."""
        ...

    def roles(self, *, usable_only: bool = False) -> dict[str, str | None]:
        """The key id holding each role (None where none does); with ``usable_only``, keys that can no longer
        sign (disabled, scheduled for deletion) count as absent."""
        ...

    def open(self, key_id: str) -> SigningKey | None:
        """The key ready to sign (its role left empty), or None when it cannot sign any more."""
        ...

    def create(self, label: str) -> str:
        """A new key of the configured algorithm; the same ``label`` always answers the same key, so a key
        whose creation was not journaled (a crash) is found again instead of orphaned."""
        ...

    def point(self, targets: Mapping[str, str | None]) -> None:
        """Give each named role its key (None: drop the role), in the order previous, current, pending."""
        ...

    def revoke(self, key_id: str) -> None:
        """Stop the key signing now; destroy it after the deletion window."""
        ...

    def retire(self, key_id: str) -> None:
        """Destroy the key after the deletion window."""
        ...


class KeyRing(CachedKeySource[dict[str, SigningKey]]):
    """The usable keys by role, cached for ``ttl`` seconds (the store's refresh interval unless given)."""

    def __init__(
        self, store: KeyStore, *, ttl: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(ttl=store.refresh_interval if ttl is None else ttl, clock=clock)
        self._store = store
        self._opened: dict[str, SigningKey | None] = {}

    @property
    def store(self) -> KeyStore:
        return self._store

    def current(self) -> SigningKey:
        # The hot path: the cache's lock-free read while the roles are fresh, no copy, no lookup.
        key = self.get().get("current")
        if key is None:
            raise NoSigningKey()
        return key

    def keys(self) -> dict[str, SigningKey]:
        """The usable keys by role, from cache when fresh."""
        return dict(self.get())

    def published(self) -> list[SigningKey]:
        """What the JWKS holds: previous, current and pending (a key is published before it signs and
        stays published after), each once."""
        seen: dict[str, SigningKey] = {}
        keys = self.get()
        for role in ROLES:
            key = keys.get(role)
            if key is not None and key.kid not in seen:
                seen[key.kid] = key
        return list(seen.values())

    def _load(self) -> dict[str, SigningKey]:
        targets = {role: key_id for role, key_id in self._store.roles(usable_only=True).items() if key_id}
        # Keep only the keys still in a role: a retired envelope key's private half leaves memory with it.
        self._opened = {key_id: self._opened[key_id] for key_id in targets.values() if key_id in self._opened}
        keys = {}
        for role, key_id in targets.items():
            if key_id not in self._opened:
                self._opened[key_id] = self._store.open(key_id)
            opened = self._opened[key_id]
            if opened is not None:
                keys[role] = dataclasses.replace(opened, role=role)
        return keys
