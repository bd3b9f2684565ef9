"""A container's first invocation runs without Python's cyclic garbage collector, and what it built is then frozen.

The first invocation is where a cold start spends its time: the lazy imports (botocore, JOSE, the capability asked
for), the first AWS client (botocore's session, endpoint rules and the service model) and the keys leave ~80,000
objects the collector tracks alive at its end. Every 700 new ones trigger a collection and the older generations are
scanned again and again while they grow: on a 2-core machine 134 young, 12 middle and one full collection, ~100 ms of
the first ``/token`` (bench/README.md), to find ~250 objects of cyclic garbage. So the first invocation pauses the
collector (reference counting still frees everything that is not in a cycle), and at its end moves every object
alive into the permanent generation (``gc.freeze``, Python documentation, "gc"), which later collections never scan
again: a warm container's full collections then cost what its requests allocate, not what its start did. The cyclic
garbage of the first invocation (a few hundred objects) stays in memory for the container's life.

Only on Lambda, whose execution environment serves one invocation at a time (``AWS_LAMBDA_FUNCTION_NAME``, which
Lambda always sets): a process that serves several at once on threads (the local stack) or runs the app in-process
(the tests) keeps its collector as it is. Only the first invocation of a process, only if the collector was on (a
process that turned it off keeps it off), and the collector is back on however that invocation ends. Should another
invocation begin while the first runs all the same, the collector is back on at once and nothing is frozen: the
pause never covers more than the first invocation alone.
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
    but a process's first, which is the only one that pays anything). ``enabled`` False: never pause (a process
    that is not a Lambda execution environment)."""

    def __init__(self, collector: Collector = gc, *, enabled: bool = True) -> None:
        self._collector = collector
        self._pending = enabled
        self._paused = False  # the first invocation is running with the collector off
        self._lock = threading.Lock()

    def begin(self) -> Callable[[], None] | None:
        if self._pending:
            with self._lock:  # threads: one of them is the first
                if self._pending:
                    if not self._collector.isenabled():
                        self._pending = False
                        return None
                    self._collector.disable()
                    self._paused = True  # set before _pending falls: whoever reads it False sees the pause
                    self._pending = False
                    return self._end
        if self._paused:  # another invocation alongside the first: the pause ends now
            self._resume(freeze=False)
        return None  # every warm invocation: two attribute reads

    def _end(self) -> None:
        self._resume(freeze=True)

    def _resume(self, *, freeze: bool) -> None:
        with self._lock:
            if not self._paused:
                return
            self._paused = False
            try:
                if freeze:
                    self._collector.freeze()
            finally:
                self._collector.enable()
