"""The value of a recipient-key secret: the RSA key pairs envelopes may be sealed to, as JSON.

``{"v": 1, "rotation_id": ..., "keys": [{"kid", "created_at", "retired_at", "private_pem"}, ...]}``: the current
key (``retired_at`` null) and the retired ones. Before the key stores were one, the transfer import key was kept
as ``{"v": 1, "private_pem": ...}``, one key per secret version; a deployment may still hold that (and an older
one at AWSPREVIOUS, from an operator's rotation by hand), so it is read as a document of one current key.
Anything else (the template's placeholder, garbage) is no key at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.envelope import EnvelopeError, RecipientKey, private_key_from_pem

__all__ = ["StoredDocument", "StoredKey", "document_value", "parse_value"]


@dataclass(frozen=True)
class StoredKey:
    kid: str
    created_at: int
    retired_at: int | None  # None: the current key
    private_pem: str = field(repr=False)

    def retire(self, at: int) -> StoredKey:
        """This key as a retired one (a key retired already keeps its date: its grace runs from then)."""
        return self if self.retired_at is not None else replace(self, retired_at=at)

    def document(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
            "private_pem": self.private_pem,
        }


@dataclass(frozen=True)
class StoredDocument:
    """One secret version's keys, current first (empty: no usable key)."""

    keys: tuple[StoredKey, ...]
    rotation_id: str | None
    created_at: int  # the version's creation: when its keys took over from the version before
    opened: tuple[RecipientKey, ...] = field(default=(), repr=False)  # keys parsed already (the legacy form's)


def document_value(rotation_id: str, keys: Sequence[StoredKey]) -> str:
    return json.dumps({"v": 1, "rotation_id": rotation_id, "keys": [k.document() for k in keys]})


def parse_value(value: str | bytes, *, created_at: int) -> StoredDocument:
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if isinstance(document, dict) and "private_pem" in document:
        return _legacy(document, created_at)
    if not isinstance(document, dict) or document.get("v") != 1:
        return StoredDocument((), None, created_at)
    rotation_id = document.get("rotation_id")
    return StoredDocument(
        _current_first(_entries(document.get("keys", []))),
        rotation_id if isinstance(rotation_id, str) else None,
        created_at,
    )


def _legacy(document: dict[str, Any], created_at: int) -> StoredDocument:
    # The PEM must be parsed to learn its kid. Whatever is unusable is no key, as the import key store read it.
    try:
        pem = document["private_pem"]
        key = private_key_from_pem(pem.encode("ascii"))
    except (ValueError, KeyError, TypeError, AttributeError, EnvelopeError):
        return StoredDocument((), None, created_at)
    return StoredDocument((StoredKey(key.kid, created_at, None, pem),), None, created_at, (key,))


def _entries(entries: object) -> Iterable[StoredKey]:
    for entry in entries if isinstance(entries, list) else []:
        try:
            yield StoredKey(
                kid=str(entry["kid"]),
                created_at=int(entry["created_at"]),
                retired_at=None if entry.get("retired_at") is None else int(entry["retired_at"]),
                private_pem=str(entry["private_pem"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue


def _current_first(entries: Iterable[StoredKey]) -> tuple[StoredKey, ...]:
    """The current key (the one not retired) first, then the most recently retired; one entry per kid. A list
    with no current key holds no usable key."""
    keys = sorted(entries, key=lambda k: (k.retired_at is not None, -(k.retired_at or 0)))
    unique: dict[str, StoredKey] = {}
    for key in keys:
        unique.setdefault(key.kid, key)
    return tuple(unique.values()) if keys and keys[0].retired_at is None else ()
