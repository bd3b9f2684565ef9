"""The key stores' shared shape (not a capability: every capability that holds keys uses it).

:class:`CachedKeySource` is the one expiring cache, :class:`KeySet` the keys in force (the first seals or signs,
every one opens or verifies), :class:`RecipientKeyStore` the RSA recipient keys kept in one secret (the auto-id
server keys and the transfer import key).
"""

from __future__ import annotations

from chalicelib.keys.exceptions import InvalidKeySet, KeyUnavailable
from chalicelib.keys.keyset import Keyed, KeySet
from chalicelib.keys.recipient import (
    IMPORT_KEY,
    SERVER_KEYS,
    RecipientKeyKind,
    RecipientKeyStore,
    RecipientRotation,
)
from chalicelib.keys.source import CachedKeySource

__all__ = [
    "IMPORT_KEY",
    "SERVER_KEYS",
    "CachedKeySource",
    "InvalidKeySet",
    "KeySet",
    "KeyUnavailable",
    "Keyed",
    "RecipientKeyKind",
    "RecipientKeyStore",
    "RecipientRotation",
]
