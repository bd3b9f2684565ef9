"""One expiring, lock-guarded cache of keys read from a backend (Secrets Manager, KMS aliases).

Every key store had its own copy of this: how long a container may trust what it read (``ttl``), dropping that on
a key event (``invalidate``), and re-reading at once when a request names a key the container has not seen yet,
at most once per ``min_forced_interval`` so that a flood of made-up kids cannot hammer the backend (routine
reloads do not count). In the spirit of Powertools' ``BaseProvider``: the expiry is solved once, the backends only
say how to read (``_load``).
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["DEFAULT_MIN_FORCED_INTERVAL", "CachedKeySource"]

T = TypeVar("T")

DEFAULT_MIN_FORCED_INTERVAL = 5.0


class CachedKeySource(abc.ABC, Generic[T]):
    """What ``_load`` returns, cached for ``ttl`` seconds of ``clock`` (monotonic unless a test moves time)."""

    def __init__(
        self,
        *,
        ttl: float,
        min_forced_interval: float = DEFAULT_MIN_FORCED_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._min_forced_interval = min_forced_interval
        self._clock = clock
        self._lock = threading.Lock()
        # The value, when it was read and how long it may be trusted, in one attribute: the lock-free fresh path
        # reads all three at once.
        self._cached: tuple[T, float, float] | None = None
        self._forced_at: float | None = None
        self.loads = 0  # completed reads of the backend (tests and benchmarks count them)

    @property
    def ttl(self) -> float:
        return self._ttl

    @abc.abstractmethod
    def _load(self) -> T:
        """Read the backend (called with the lock held, so one container never reads it twice at once)."""

    def _lifetime(self, value: T) -> float:
        """How long a loaded value may be trusted: ``ttl``, unless a store says otherwise for what it read (no key
        yet is trusted only for ``min_forced_interval``: a writer that makes the first key drops it at once, and a
        flood of requests naming made-up keys still costs one read per interval, never one per request)."""
        return self._ttl

    def get(self) -> T:
        """The cached value while fresh (no lock, no copy: this is on every signing path), else a new read."""
        cached = self._cached
        if cached is not None and self._clock() - cached[1] <= cached[2]:
            return cached[0]
        with self._lock:
            return self._fresh()

    def reload(self, *, force: bool = True) -> T:
        """A new read now, however fresh the cache (a request named a key it does not hold), unless a forced
        read already happened within ``min_forced_interval``: then the cache, as :meth:`get` answers.
        ``force=False`` is :meth:`get`."""
        if not force:
            return self.get()
        with self._lock:
            if self._forced_at is not None and self._clock() - self._forced_at < self._min_forced_interval:
                return self._fresh()
            self._forced_at = self._clock()
            return self._read()

    def invalidate(self) -> None:
        """Forget the value (a rotation was announced, or this container just wrote a new one)."""
        with self._lock:
            self._cached = None

    def _fresh(self) -> T:
        cached = self._cached
        if cached is not None and self._clock() - cached[1] <= cached[2]:
            return cached[0]
        return self._read()

    def _read(self) -> T:
        value = self._load()
        self.loads += 1
        self._cached = (value, self._clock(), self._lifetime(value))
        return value
