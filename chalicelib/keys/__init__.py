"""The key stores' shared shape (not a capability: every capability that holds keys uses it).

:class:`CachedKeySource` is the one expiring cache, :class:`KeySet` the keys in force (the first seals or signs,
every one opens or verifies), :class:`RecipientKeyStore` the RSA recipient keys kept in one secret (the auto-id
server keys and the transfer import key).

The recipient keys are imported on first use of one of their names (PEP 562): they bring the JWE envelope and its
crypto, which the session and token-signing key rings (users of the cache and the key set) never need, so a cold
start serving a token does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.keys.exceptions import InvalidKeySet, KeyUnavailable
from chalicelib.keys.keyset import Keyed, KeySet
from chalicelib.keys.source import CachedKeySource
from chalicelib.lazy import lazy_attribute

if TYPE_CHECKING:
    from chalicelib.keys.recipient import (
        IMPORT_KEY,
        SERVER_KEYS,
        RecipientKeyKind,
        RecipientKeyStore,
        RecipientRotation,
    )

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

_MODULE_OF = {
    "IMPORT_KEY": "recipient",
    "SERVER_KEYS": "recipient",
    "RecipientKeyKind": "recipient",
    "RecipientKeyStore": "recipient",
    "RecipientRotation": "recipient",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _MODULE_OF, name)
