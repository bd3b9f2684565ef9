"""Auto-id sessions end with their client: revoking it, ``end-grace`` and the end of a rotation's grace end the
sessions it already holds, on every container within the session keys' cache life (:data:`CACHE_TTL`).

The client's record is read through the auto-id registry (one DynamoDB GetItem) and kept per container for no
longer than that interval. Unknown clients are remembered too (as absent), so a flood of tokens for one client
costs one read per interval; the number of clients remembered is bounded. Only tokens that already passed the
signature and every claim check reach this, so an unauthenticated caller cannot make it read anything.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from chalicelib.sessions.keys import CACHE_TTL

__all__ = ["MAX_CLIENTS_CACHED", "CachedClientStanding", "ClientRecordSource", "ClientRecordView"]

MAX_CLIENTS_CACHED = 1024


class ClientRecordView(Protocol):
    """What sessions read of an auto-id client's record (chalicelib.autoid.clients.ClientRecord has it)."""

    @property
    def status(self) -> str: ...

    def accepts_generation(self, generation: int, now: float) -> bool: ...


class ClientRecordSource(Protocol):
    """The registry's read (chalicelib.autoid.clients.ClientRegistry.get)."""

    def get(self, client_id: str) -> ClientRecordView | None: ...


class CachedClientStanding:
    """The :class:`~chalicelib.sessions.tokens.AutoIdClients` check over the registry, cached per container."""

    def __init__(
        self,
        records: ClientRecordSource,
        *,
        active_status: str,
        ttl: float = CACHE_TTL,
        max_entries: int = MAX_CLIENTS_CACHED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
        self._active = active_status
        self._ttl = ttl
        self._max_entries = max(1, max_entries)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, ClientRecordView | None]] = OrderedDict()
        self.reads = 0

    def refusal(self, client_id: str, generation: int) -> str | None:
        record = self._record(client_id)
        if record is None:
            return "auto-id client unknown"
        if record.status != self._active:
            return "auto-id client revoked"
        # Evaluated now, not when the record was read: a generation's grace ends on time even while cached.
        if not record.accepts_generation(generation, self._clock()):
            return "auto-id generation no longer accepted"
        return None

    def _record(self, client_id: str) -> ClientRecordView | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(client_id)
            if cached is not None and now - cached[0] < self._ttl:
                self._cache.move_to_end(client_id)
                return cached[1]
        # Outside the lock: one slow read must not hold up every other client's check.
        record = self._records.get(client_id)
        with self._lock:
            self.reads += 1
            self._cache[client_id] = (now, record)  # dated from before the read: never kept longer than the TTL
            self._cache.move_to_end(client_id)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return record
