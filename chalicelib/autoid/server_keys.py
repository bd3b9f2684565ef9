"""The auto-id server keys: RSA-4096 pairs kept together in one Secrets Manager secret.

The secret's current version lists every key still accepted: the current one, and retired ones until
their grace period ends (``retired_at + grace``), so a rotation never breaks a client holding last week's
JWKS. Rotation writes one new version (idempotent per rotation id through the ClientRequestToken); a
failed write leaves the previous version, and so the current key, in force. Private keys are parsed
lazily, once per container and key, because loading an RSA-4096 key costs milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.errors import AwsConflict, AwsNotFound, AwsRejected
from chalicelib.aws.secrets import CURRENT, SecretStore
from chalicelib.envelope import EnvelopeError, RecipientKey, generate_recipient_key, private_key_from_pem

__all__ = ["KeyRotation", "ServerKeys"]

CACHE_TTL = 300.0
FORCED_RELOAD_INTERVAL = 10.0
MAX_KEYS = 16  # far above what daily rotation and a 7-day grace keep; bounds the secret's size


@dataclass(frozen=True)
class _StoredKey:
    kid: str
    created_at: int
    retired_at: int | None
    private_pem: str = field(repr=False)

    def document(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
            "private_pem": self.private_pem,
        }


@dataclass(frozen=True)
class KeyRotation:
    rotation_id: str
    current_kid: str
    retired_kids: tuple[str, ...]
    dropped_kids: tuple[str, ...]
    changed: bool


class ServerKeys:
    def __init__(
        self,
        secrets: SecretStore,
        secret_arn: str,
        *,
        grace_period: int,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secrets = secrets
        self._arn = secret_arn
        self._grace = grace_period
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stored: tuple[_StoredKey, ...] = ()
        self._parsed: dict[str, RecipientKey] = {}
        self._loaded_at: float | None = None
        self._forced_at = float("-inf")

    # Reading ------------------------------------------------------------------------------------

    def current_kid(self) -> str:
        return self._keys()[0].kid

    def accepted(self, kid: str | None = None, *, create: bool = True) -> dict[str, RecipientKey]:
        """The keys a request may be sealed to now, by kid. Naming a ``kid`` this container does not know
        re-reads the secret (at most every few seconds), so another container's rotation is seen at once.
        ``create=False`` (opening a request): no key yet is no key, never a first one made here; a request can only
        be sealed to a key that exists, and the auto_id function's role may not write the secret."""
        stored = self._keys(create=create)
        if kid is not None and all(k.kid != kid for k in stored):
            stored = self._keys(force=True, create=create)
        live = self._live(stored, self._clock())
        if kid is not None:
            live = [k for k in live if k.kid == kid]
        return {k.kid: self._parse(k) for k in live}

    def public_documents(self) -> dict[str, Any]:
        stored = self._keys()
        return {
            "keys": [self._parse(k).public_jwk() for k in self._live(stored, self._clock())],
            "current_kid": stored[0].kid,
        }

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = None

    # Rotating -----------------------------------------------------------------------------------

    def rotate(self, rotation_id: str) -> KeyRotation:
        """A new current key; the others retire (still accepted for the grace period) or, past it, go."""
        document = self._read_document()
        stored = _parse_document(document) if document else ()
        if not stored:
            stored = self._bootstrap()
        if document and document.get("rotation_id") == rotation_id:
            return KeyRotation(rotation_id, stored[0].kid, (), (), changed=False)
        now = int(self._clock())
        new = generate_recipient_key()
        assert new.private is not None
        fresh = _StoredKey(new.kid, now, None, new.private.as_pem(private=True).decode("ascii"))
        retired = [
            _StoredKey(k.kid, k.created_at, k.retired_at if k.retired_at is not None else now, k.private_pem)
            for k in stored
        ]
        kept = self._live(retired, now)
        kept = kept[: MAX_KEYS - 1]
        value = json.dumps({"v": 1, "rotation_id": rotation_id, "keys": [k.document() for k in [fresh, *kept]]})
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self._arn}#autoid-rotation#{rotation_id}"))
        try:
            self._secrets.put_value(self._arn, value, client_request_token=token)
        except AwsConflict:
            # The same rotation already wrote its version (a retried run that generated another key).
            self.invalidate()
            return KeyRotation(rotation_id, self.current_kid(), (), (), changed=False)
        self._parsed[new.kid] = new
        self.invalidate()
        kept_kids = {k.kid for k in kept}
        return KeyRotation(
            rotation_id=rotation_id,
            current_kid=new.kid,
            retired_kids=tuple(k.kid for k in stored if k.retired_at is None),
            dropped_kids=tuple(k.kid for k in stored if k.kid not in kept_kids),
            changed=True,
        )

    # Internals ----------------------------------------------------------------------------------

    def _live(self, stored: Sequence[_StoredKey], now: float) -> list[_StoredKey]:
        """The current key and the retired ones still inside their grace period."""
        return [k for k in stored if k.retired_at is None or now <= k.retired_at + self._grace]

    def _keys(self, *, force: bool = False, create: bool = True) -> tuple[_StoredKey, ...]:
        with self._lock:
            now = self._monotonic()
            fresh = self._loaded_at is not None and now - self._loaded_at < CACHE_TTL
            if force and now - self._forced_at >= FORCED_RELOAD_INTERVAL:
                self._forced_at, fresh = now, False
            if not fresh:
                document = self._read_document()
                stored = _parse_document(document) if document else ()
                if not stored and not create:
                    return ()  # not cached: the next reader that may create the first key does
                self._stored = stored or self._bootstrap()
                self._loaded_at = now
            return self._stored

    def _read_document(self) -> dict[str, Any] | None:
        try:
            value = self._secrets.get_value(self._arn, stage=CURRENT).value
        except AwsNotFound:
            return None
        try:
            document = json.loads(value)
        except ValueError:
            return None
        return document if isinstance(document, dict) and document.get("v") == 1 else None

    def _parse(self, stored: _StoredKey) -> RecipientKey:
        key = self._parsed.get(stored.kid)
        if key is None:
            key = private_key_from_pem(stored.private_pem.encode("ascii"))
            if key.kid != stored.kid:
                raise EnvelopeError("kid_mismatch")
            self._parsed[stored.kid] = key
        return key

    def _bootstrap(self) -> tuple[_StoredKey, ...]:
        """The first key of a fresh deployment: one deterministic version, so racing containers agree."""
        key = generate_recipient_key()
        assert key.private is not None
        first = _StoredKey(key.kid, int(self._clock()), None, key.private.as_pem(private=True).decode("ascii"))
        value = json.dumps({"v": 1, "rotation_id": "bootstrap", "keys": [first.document()]})
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self._arn}#autoid-key-1"))
        with contextlib.suppress(AwsConflict, AwsRejected):
            self._secrets.put_value(self._arn, value, client_request_token=token)
        document = self._read_document()
        stored = _parse_document(document) if document else ()
        if not stored:
            raise RuntimeError("the auto-id server key could not be created")
        return stored


def _parse_document(document: dict[str, Any]) -> tuple[_StoredKey, ...]:
    keys = []
    for entry in document.get("keys", []):
        try:
            keys.append(
                _StoredKey(
                    kid=str(entry["kid"]),
                    created_at=int(entry["created_at"]),
                    retired_at=None if entry.get("retired_at") is None else int(entry["retired_at"]),
                    private_pem=str(entry["private_pem"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    # The current key is the one not retired; it leads the tuple.
    keys.sort(key=lambda k: (k.retired_at is not None, -(k.retired_at or 0)))
    return tuple(keys) if keys and keys[0].retired_at is None else ()
