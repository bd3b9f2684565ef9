"""The receiver's import key pair: private PEM in Secrets Manager (AWSCURRENT, and AWSPREVIOUS after a
rotation), public half served to senders. A fresh deployment writes its first key on first use, as one
deterministic version, so containers racing to do it end up with the same key."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from chalicelib.aws.errors import AwsConflict, AwsNotFound, AwsRejected
from chalicelib.aws.secrets import CURRENT, PREVIOUS, SecretStore
from chalicelib.envelope import EnvelopeError, RecipientKey, generate_recipient_key, private_key_from_pem

__all__ = ["ImportKeys"]

CACHE_TTL = 300.0


class ImportKeys:
    def __init__(self, secrets: SecretStore, secret_arn: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._secrets = secrets
        self._arn = secret_arn
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, RecipientKey] = {}
        self._current: RecipientKey | None = None
        self._loaded_at: float | None = None

    def current(self) -> RecipientKey:
        self._load()
        assert self._current is not None
        return self._current

    def by_kid(self) -> dict[str, RecipientKey]:
        self._load()
        return dict(self._keys)

    def public_documents(self) -> dict[str, Any]:
        current = self.current()
        return {
            "keys": [key.public_jwk() for key in self.by_kid().values()],
            "current_kid": current.kid,
            "pem": current.public_pem().decode("ascii"),
        }

    def _load(self) -> None:
        with self._lock:
            if self._loaded_at is not None and self._clock() - self._loaded_at < CACHE_TTL:
                return
            keys: dict[str, RecipientKey] = {}
            current = self._read(CURRENT) or self._bootstrap()
            keys[current.kid] = current
            previous = self._read(PREVIOUS)
            if previous is not None:
                keys[previous.kid] = previous
            self._keys, self._current, self._loaded_at = keys, current, self._clock()

    def _read(self, stage: str) -> RecipientKey | None:
        try:
            value = self._secrets.get_value(self._arn, stage=stage).value
        except AwsNotFound:
            return None
        try:
            pem = json.loads(value)["private_pem"]
            return private_key_from_pem(pem.encode("ascii"))
        except (ValueError, KeyError, TypeError, AttributeError, EnvelopeError):
            return None  # the template's placeholder (or something unusable): not a key

    def _bootstrap(self) -> RecipientKey:
        key = generate_recipient_key()
        assert key.private is not None
        value = json.dumps({"v": 1, "private_pem": key.private.as_pem(private=True).decode("ascii")})
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self._arn}#import-key-1"))
        # Losing the race to another container (same token, other value) is fine: use its key.
        with contextlib.suppress(AwsConflict, AwsRejected):
            self._secrets.put_value(self._arn, value, client_request_token=token)
        existing = self._read(CURRENT)
        if existing is None:
            raise RuntimeError("the import key could not be created")
        return existing
