"""A container's first invocation runs without Python's cyclic garbage collector, and what it built is then frozen.

The first invocation is where a cold start spends its time: the lazy imports (botocore, JOSE, the capability asked
for), the first AWS client (botocore's session, endpoint rules and the service model, hundreds of thousands of small
objects) and the keys. Every 700 new container objects trigger a collection, and the older generations are scanned
again and again while they grow: ~100 ms of the first ``/token`` on a 2-core machine (bench/README.md), for ~250
objects of cyclic garbage found among ~80,000. So the first invocation pauses the collector (reference counting
still frees everything that is not in a cycle), and at its end moves every object alive into the permanent
generation (``gc.freeze``, Python documentation, "gc"), which later collections never scan again: a warm
container's full collections then cost what its requests allocate, not what its start did. The cyclic garbage of the
first invocation (a few hundred objects) stays in memory for the container's life.

Only the first invocation of a process, only if the collector was on (a process that turned it off keeps it off),
and the collector is back on however that invocation ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["Collector", "FirstInvocation"]


class Collector(Protocol):
    """The part of the :mod:`gc` module this uses (a fake in unit tests)."""

    def isenabled(self) -> bool: ...
    def disable(self) -> None: ...
    def enable(self) -> None: ...
    def freeze(self) -> None: ...


class FirstInvocation:
    """``begin()`` at the start of every invocation returns what to call at its end (``None`` for every invocation
    but a process's first, which is the only one that pays anything)."""

    def __init__(self, collector: Collector = gc) -> None:
        self._collector = collector
        self._pending = True
        self._lock = threading.Lock()

    def begin(self) -> Callable[[], None] | None:
        if not self._pending:  # every warm invocation: one attribute read
            return None
        with self._lock:  # threads of the local stack: one of them is the first
            if not self._pending:
                return None
            self._pending = False
            if not self._collector.isenabled():
                return None
            self._collector.disable()
        return self._end

    def _end(self) -> None:
        try:
            self._collector.freeze()
        finally:
            self._collector.enable()
