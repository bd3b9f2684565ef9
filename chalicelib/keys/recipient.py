"""RSA recipient keys (envelopes are sealed to them) kept together in one Secrets Manager secret.

One store serves the auto-id server keys and the transfer import key. The secret's current version lists every key
still accepted (:mod:`chalicelib.keys.recipient_document`): the current one, and retired ones until their grace
period ends (``retired_at + grace``), so a rotation never breaks a client holding last week's JWKS. A fresh
deployment's first key is written as one deterministic version (the ClientRequestToken is derived from the
secret and the kind's token), so containers racing to make it end up with the same key; rotation writes one new
version, idempotent per rotation id. A failed write leaves the previous version, and so the current key, in force.
Private keys are parsed lazily, once per container and key, because loading an RSA-4096 key costs milliseconds.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.aws.errors import AwsConflict, AwsNotFound, AwsRejected
from chalicelib.aws.secrets import CURRENT, PREVIOUS, SecretStore
from chalicelib.envelope import EnvelopeError, RecipientKey, generate_recipient_key, private_key_from_pem
from chalicelib.keys.exceptions import KeyUnavailable
from chalicelib.keys.keyset import KeySet
from chalicelib.keys.recipient_document import StoredDocument, StoredKey, document_value, parse_value
from chalicelib.keys.source import CachedKeySource

__all__ = ["IMPORT_KEY", "SERVER_KEYS", "RecipientKeyKind", "RecipientKeyStore", "RecipientRotation"]

CACHE_TTL = 300.0
FORCED_RELOAD_INTERVAL = 10.0
MAX_KEYS = 16  # far above what daily rotation and a 7-day grace keep; bounds the secret's size


@dataclass(frozen=True)
class RecipientKeyKind:
    """What tells one recipient-key secret from another. The tokens name the ClientRequestTokens deployments
    already wrote their keys under (``<secret arn>#<token>``): they never change, so a bootstrap stays idempotent."""

    name: str  # for errors: "the <name> could not be created"
    bootstrap_token: str
    rotation_token: str
    read_previous: bool = False  # AWSPREVIOUS's keys stay accepted too (a key rotated by hand)
    publish_pem: bool = False  # the public documents carry the current key's PEM too


SERVER_KEYS = RecipientKeyKind("auto-id server key", "autoid-key-1", "autoid-rotation")
IMPORT_KEY = RecipientKeyKind("import key", "import-key-1", "import-rotation", read_previous=True, publish_pem=True)


@dataclass(frozen=True)
class RecipientRotation:
    rotation_id: str
    current_kid: str
    retired_kids: tuple[str, ...]
    dropped_kids: tuple[str, ...]
    changed: bool


class RecipientKeyStore(CachedKeySource[KeySet[StoredKey] | None]):
    """``grace_period`` (seconds): how long a retired key stays accepted; None: as long as the secret lists it.
    ``clock`` is the wall clock (key dates, grace); ``monotonic`` times the cache."""

    def __init__(
        self,
        secrets: SecretStore,
        secret_arn: str,
        kind: RecipientKeyKind,
        *,
        grace_period: int | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl=CACHE_TTL, min_forced_interval=FORCED_RELOAD_INTERVAL, clock=monotonic)
        self._secrets = secrets
        self._arn = secret_arn
        self._kind = kind
        self._grace = grace_period
        self._wall = clock
        self._parsed: dict[str, RecipientKey] = {}

    # Reading ------------------------------------------------------------------------------------

    def current_kid(self) -> str:
        return self._stored().current.kid

    def current(self) -> RecipientKey:
        return self._open(self._stored().current)

    def accepted(self, kid: str | None = None, *, create: bool = True) -> dict[str, RecipientKey]:
        """The keys a request may be sealed to now, by kid. Naming a ``kid`` this container does not know
        re-reads the secret (at most every few seconds), so another container's rotation is seen at once.
        ``create=False`` (opening a request): no key yet is no key, never a first one made here; a request can only
        be sealed to a key that exists, and the auto_id function's role may not write the secret."""
        stored = self._stored() if create else self.get()
        if kid is not None and (stored is None or stored.find(kid) is None):
            stored = self._stored(force=True) if create else self.reload()
        if stored is None:
            return {}
        return {k.kid: self._open(k) for k in self._live(stored) if kid is None or k.kid == kid}

    def opening(self, *, create: bool = True) -> Mapping[str, RecipientKey]:
        """The keys as :func:`~chalicelib.envelope.open_envelope` looks them up: by the envelope's ``kid``, so a kid
        this container has not seen yet re-reads the secret (rate-limited) before the envelope is refused."""
        return _Opening(self, create)

    def public_documents(self) -> dict[str, Any]:
        stored = self._stored()
        documents: dict[str, Any] = {
            "keys": [self._open(k).public_jwk() for k in self._live(stored)],
            "current_kid": stored.current.kid,
        }
        if self._kind.publish_pem:
            documents["pem"] = self._open(stored.current).public_pem().decode("ascii")
        return documents

    # Rotating -----------------------------------------------------------------------------------

    def rotate(self, rotation_id: str) -> RecipientRotation:
        """A new current key; the others retire (still accepted for the grace period) or, past it, go."""
        stored, last_rotation = self._read_all()
        if stored is None:
            self._bootstrap()
            stored, last_rotation = self._read_all()[0], None  # a first key is no rotation: this one goes on
            if stored is None:
                raise KeyUnavailable(f"the {self._kind.name} could not be created")
        if last_rotation == rotation_id:
            return RecipientRotation(rotation_id, stored.current.kid, (), (), changed=False)
        now = int(self._wall())
        new = generate_recipient_key()
        assert new.private is not None
        fresh = StoredKey(new.kid, now, None, new.private.as_pem(private=True).decode("ascii"))
        kept = [k for k in (k.retire(now) for k in stored) if self._in_grace(k, now)][: MAX_KEYS - 1]
        try:
            self._secrets.put_value(
                self._arn,
                document_value(rotation_id, [fresh, *kept]),
                client_request_token=self._token(f"{self._kind.rotation_token}#{rotation_id}"),
            )
        except AwsConflict:
            # The same rotation already wrote its version (a retried run that generated another key).
            self.invalidate()
            return RecipientRotation(rotation_id, self.current_kid(), (), (), changed=False)
        self._parsed[new.kid] = new
        self.invalidate()
        kept_kids = {k.kid for k in kept}
        return RecipientRotation(
            rotation_id=rotation_id,
            current_kid=new.kid,
            retired_kids=tuple(k.kid for k in stored if k.retired_at is None),
            dropped_kids=tuple(k.kid for k in stored if k.kid not in kept_kids),
            changed=True,
        )

    # Internals ----------------------------------------------------------------------------------

    def _stored(self, *, force: bool = False) -> KeySet[StoredKey]:
        """The keys, the first one made now if the secret holds none (only where the role may write it)."""
        stored = self.reload() if force else self.get()
        if stored is None:
            self._bootstrap()
            self.invalidate()
            stored = self.get()  # reads back the winner of a race to bootstrap, ours or another container's
            if stored is None:
                raise KeyUnavailable(f"the {self._kind.name} could not be created")
        return stored

    def _live(self, stored: KeySet[StoredKey]) -> KeySet[StoredKey]:
        """The current key and the retired ones still inside their grace period."""
        now = self._wall()
        return stored.keep(lambda key: self._in_grace(key, now))

    def _in_grace(self, key: StoredKey, now: float) -> bool:
        return key.retired_at is None or self._grace is None or now <= key.retired_at + self._grace

    def _load(self) -> KeySet[StoredKey] | None:
        return self._read_all()[0]

    def _lifetime(self, value: KeySet[StoredKey] | None) -> float:
        # No key yet: trusted only briefly (a reader that may create the first key invalidates and reads anyway).
        return self.ttl if value is not None else FORCED_RELOAD_INTERVAL

    def _read_all(self) -> tuple[KeySet[StoredKey] | None, str | None]:
        """The keys every stage read holds (None: no usable key) and the rotation that wrote the current one."""
        current = self._read_stage(CURRENT)
        if current is None or not current.keys:
            return None, None
        keys, opened = list(current.keys), list(current.opened)
        previous = self._read_stage(PREVIOUS) if self._kind.read_previous else None
        if previous is not None:
            # The version before the current one: its keys retired when the current one took over.
            known = {k.kid for k in keys}
            keys += [k.retire(current.created_at) for k in previous.keys if k.kid not in known]
            opened += previous.opened
        kids = {k.kid for k in keys}
        # Only the keys still listed stay parsed: a dropped key's private half leaves memory with it.
        self._parsed = {kid: key for kid, key in self._parsed.items() if kid in kids}
        self._parsed.update((key.kid, key) for key in opened if key.kid in kids)
        return KeySet(keys), current.rotation_id

    def _read_stage(self, stage: str) -> StoredDocument | None:
        try:
            version = self._secrets.get_value(self._arn, stage=stage)
        except AwsNotFound:
            return None
        created = int(version.created_at.timestamp()) if version.created_at is not None else int(self._wall())
        return parse_value(version.value, created_at=created)

    def _open(self, stored: StoredKey) -> RecipientKey:
        key = self._parsed.get(stored.kid)
        if key is None:
            key = private_key_from_pem(stored.private_pem.encode("ascii"))
            if key.kid != stored.kid:
                raise EnvelopeError("kid_mismatch")
            self._parsed[stored.kid] = key
        return key

    def _bootstrap(self) -> None:
        """The first key of a fresh deployment: one deterministic version, so racing containers agree."""
        key = generate_recipient_key()
        assert key.private is not None
        first = StoredKey(key.kid, int(self._wall()), None, key.private.as_pem(private=True).decode("ascii"))
        # Losing the race to another container (same token, other value) is fine: its key is read back.
        with contextlib.suppress(AwsConflict, AwsRejected):
            self._secrets.put_value(
                self._arn,
                document_value("bootstrap", [first]),
                client_request_token=self._token(self._kind.bootstrap_token),
            )
        self._parsed[key.kid] = key

    def _token(self, suffix: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self._arn}#{suffix}"))


class _Opening(Mapping[str, RecipientKey]):
    """A read-only view of a store's accepted keys that asks the store for the very kid looked up."""

    def __init__(self, store: RecipientKeyStore, create: bool) -> None:
        self._store = store
        self._create = create

    def __getitem__(self, kid: str) -> RecipientKey:
        return self._store.accepted(kid, create=self._create)[kid]

    def get(self, kid: str, default: Any = None) -> Any:
        return self._store.accepted(kid, create=self._create).get(kid, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.accepted(create=self._create))

    def __len__(self) -> int:
        return len(self._store.accepted(create=self._create))
