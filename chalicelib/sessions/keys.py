"""Session signing keys: the versions of one Secrets Manager secret, cached per container.

Each version's value is ``{"key": base64url(>= 32 random bytes)}``; the version id is the token's ``kid``.
Verifiers accept AWSCURRENT, and AWSPREVIOUS only for a bounded window after the current version took
over (see :mod:`chalicelib.sessions.tokens`), so a retired key stops working on schedule. An unknown
``kid`` triggers one re-read (at most one such forced re-read per ``min_refresh_interval``; routine reloads
do not count), so a container that has not yet seen a rotation accepts the new key's tokens at once, while a
flood of made-up kids cannot hammer Secrets Manager (the shared :class:`~chalicelib.keys.source.CachedKeySource`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from chalicelib import base64url
from chalicelib.aws.errors import AwsNotFound
from chalicelib.aws.secrets import CURRENT, PREVIOUS, SecretStore, SecretVersion
from chalicelib.keys.keyset import KeySet
from chalicelib.keys.source import CachedKeySource
from chalicelib.sessions.exceptions import InvalidKeyMaterial

__all__ = ["CACHE_TTL", "MIN_KEY_BYTES", "KeySource", "SessionKey", "SessionKeyStore", "decode_key", "encode_key"]

MIN_KEY_BYTES = 32
CACHE_TTL = 300.0  # default cache life: how long a container may keep signing with a key after a rotation


@dataclass(frozen=True)
class SessionKey:
    version_id: str
    stage: str
    created_at: float  # for AWSCURRENT: when it took over (the later of creation and the last rotation)
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        # What joserfc's serializer checked of each token before sign() wrote them itself, checked once per key.
        if not isinstance(self.version_id, str) or not isinstance(self.secret, bytes) or not self.secret:
            raise TypeError("a session key is a text version id and non-empty bytes")

    @property
    def kid(self) -> str:
        """The token's ``kid``: the Secrets Manager version id."""
        return self.version_id

    @functools.cached_property
    def hmac_sha256(self) -> hmac.HMAC:
        """HMAC-SHA256 keyed with this key, to be copied (never updated itself): the key schedule is computed once
        per key version, so a token's HS256 signature costs one copy and one digest."""
        return hmac.new(self.secret, digestmod=hashlib.sha256)


class KeySource(Protocol):
    @property
    def signing_lag(self) -> float:
        """How long after a rotation a container may still sign with the previous key (its cache life)."""
        ...

    def current(self) -> SessionKey: ...

    def find(self, kid: str, *, reload: bool = True) -> SessionKey | None:
        """The key with this version id; ``reload=False`` never forces a re-read for an unknown kid (a verifier
        holding two key sets asks both that way first, so one set's tokens do not re-read the other's)."""
        ...


def encode_key(secret: bytes) -> str:
    return json.dumps({"key": base64url.text(secret), "v": 1})


def decode_key(value: str | bytes) -> bytes:
    """The HMAC key of a version's value; short or malformed material is refused (never used)."""
    try:
        document = json.loads(value)
        text = document["key"]
        secret = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidKeyMaterial('the session key secret is not {"key": base64url}') from None
    if len(secret) < MIN_KEY_BYTES:
        raise InvalidKeyMaterial("the session key is shorter than 256 bits")
    return secret


class SessionKeyStore(CachedKeySource[KeySet[SessionKey]]):
    """AWSCURRENT (the first key of the set: it signs) and AWSPREVIOUS, cached for ``ttl`` seconds of ``clock``."""

    def __init__(
        self,
        secrets: SecretStore,
        secret_id: str,
        *,
        ttl: float = CACHE_TTL,
        min_refresh_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(ttl=ttl, min_forced_interval=min_refresh_interval, clock=clock)
        self._secrets = secrets
        self._secret_id = secret_id

    @property
    def signing_lag(self) -> float:
        return self.ttl

    @property
    def refreshes(self) -> int:
        """Reads of the secret, routine or forced."""
        return self.loads

    def current(self) -> SessionKey:
        return self.get().current

    def find(self, kid: str, *, reload: bool = True) -> SessionKey | None:
        """The key with this version id, refreshing once (rate-limited) when it is unknown and ``reload``."""
        key = self.get().find(kid)
        if key is not None or not reload:
            return key
        return self.reload().find(kid)

    def _load(self) -> KeySet[SessionKey]:
        keys: list[SessionKey] = []
        # The version's creation can precede its promotion by a long resumed rotation: take the later.
        rotated = self._secrets.describe(self._secret_id).last_rotated_at
        promoted = rotated.timestamp() if rotated is not None else 0.0
        for stage in (CURRENT, PREVIOUS):
            try:
                version = self._secrets.get_value(self._secret_id, stage=stage)
            except AwsNotFound:
                if stage == CURRENT:
                    raise
                continue
            key = self._key(version, stage)
            if stage == CURRENT and promoted > key.created_at:
                key = SessionKey(key.version_id, stage, promoted, key.secret)
            if all(k.kid != key.kid for k in keys):
                keys.append(key)
        return KeySet(keys)

    @staticmethod
    def _key(version: SecretVersion, stage: str) -> SessionKey:
        created = version.created_at.timestamp() if version.created_at is not None else 0.0
        return SessionKey(
            version_id=version.version_id, stage=stage, created_at=created, secret=decode_key(version.value)
        )
