"""The keys in force at one moment, as every store hands them out.

Like ``cryptography``'s ``MultiFernet``: the first key is the current one, the only one that seals or signs; every
key in the set opens or verifies, chosen by its ``kid`` (never by trying keys). Immutable, so a reader holding
a set never sees it change under it; a reload makes a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from chalicelib.keys.exceptions import InvalidKeySet

__all__ = ["KeySet", "Keyed"]


class Keyed(Protocol):
    @property
    def kid(self) -> str: ...


K = TypeVar("K", bound=Keyed)


class KeySet(Generic[K]):
    __slots__ = ("_by_kid", "_keys")

    def __init__(self, keys: Iterable[K]) -> None:
        ordered = tuple(keys)
        if not ordered:
            raise InvalidKeySet("a key set holds at least its current key")
        by_kid = {key.kid: key for key in ordered}
        if len(by_kid) != len(ordered):
            raise InvalidKeySet("a key set holds one key per kid")
        self._keys = ordered
        self._by_kid = by_kid

    @property
    def current(self) -> K:
        """The key that seals or signs."""
        return self._keys[0]

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._by_kid)

    def find(self, kid: str) -> K | None:
        return self._by_kid.get(kid)

    def keep(self, predicate: Callable[[K], bool]) -> KeySet[K]:
        """The current key and the others ``predicate`` keeps (a retired key still in its grace period): a set
        never loses the key it seals with to a filter."""
        return KeySet([self._keys[0], *(key for key in self._keys[1:] if predicate(key))])

    def __iter__(self) -> Iterator[K]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        # Kids only: a key's private half must never reach a log through a repr.
        return f"KeySet(kids={list(self._by_kid)!r})"
