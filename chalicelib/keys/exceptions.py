"""What the shared key stores raise."""

from __future__ import annotations

__all__ = ["InvalidKeySet", "KeyUnavailable"]


class InvalidKeySet(ValueError):
    """A key set with no key, or two keys under one kid: a key set must name exactly one key per kid, so a
    lookup by kid can never be ambiguous, and always has a current key to seal or sign with."""


class KeyUnavailable(RuntimeError):
    """No usable key could be read or made (a fresh deployment whose first key could not be written)."""
