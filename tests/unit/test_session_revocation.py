"""The auto-id client check behind auto-id sessions: the registry's record, cached per container for the session
keys' cache life and no longer, judged at each check (a generation's grace ends on time even while cached)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.autoid.clients import ACTIVE, REVOKED, ClientPolicy, ClientRecord
from chalicelib.sessions import keys
from chalicelib.sessions.revocation import CachedClientStanding
from tests.support import Clock

T0 = 1_800_000_000.0
RECORD = ClientRecord(
    client_id="worker-1",
    status=ACTIVE,
    policy=ClientPolicy(secrets=("credport-dev/autoid/db",)),
    generation=3,
    previous={2: int(T0) + 100},  # generation 2 in grace for 100 more seconds
    objects={3: "gen-3.bin", 2: "gen-2.bin"},
    revision=4,
    created_at=int(T0) - 10_000,
    rotated_at=int(T0) - 50,
)


class Registry:
    """ClientRegistry.get over a dict; reads counted."""

    def __init__(self, *records: ClientRecord) -> None:
        self.records = {r.client_id: r for r in records}
        self.reads: list[str] = []

    def get(self, client_id: str) -> ClientRecord | None:
        self.reads.append(client_id)
        return self.records.get(client_id)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def standing(registry: Registry, clock: Clock, **kwargs: float) -> CachedClientStanding:
    return CachedClientStanding(registry, active_status=ACTIVE, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_the_cache_lives_as_long_as_the_session_keys_cache_by_default() -> None:
    assert CachedClientStanding(Registry(), active_status=ACTIVE)._ttl == keys.CACHE_TTL == 300


def test_current_and_in_grace_generations_pass_others_are_refused(clock: Clock) -> None:
    check = standing(Registry(RECORD), clock)
    assert check.refusal("worker-1", 3) is None
    assert check.refusal("worker-1", 2) is None
    assert check.refusal("worker-1", 1) == "auto-id generation no longer accepted"
    assert check.refusal("worker-1", 4) == "auto-id generation no longer accepted"
    assert check.refusal("nobody", 1) == "auto-id client unknown"


def test_a_revocation_is_seen_once_the_cache_interval_has_passed_not_later(clock: Clock) -> None:
    registry = Registry(RECORD)
    check = standing(registry, clock)
    assert check.refusal("worker-1", 3) is None
    registry.records["worker-1"] = replace(RECORD, status=REVOKED, previous={}, revoked_at=int(T0))
    clock.advance(keys.CACHE_TTL - 0.001)
    assert check.refusal("worker-1", 3) is None  # still the cached record
    assert registry.reads == ["worker-1"]
    clock.advance(0.001)
    assert check.refusal("worker-1", 3) == "auto-id client revoked"
    assert registry.reads == ["worker-1", "worker-1"]


def test_end_grace_is_seen_within_the_interval(clock: Clock) -> None:
    registry = Registry(RECORD)
    check = standing(registry, clock, ttl=60)
    assert check.refusal("worker-1", 2) is None
    registry.records["worker-1"] = replace(RECORD, previous={}, revision=5)
    clock.advance(60)
    assert check.refusal("worker-1", 2) == "auto-id generation no longer accepted"
    assert check.refusal("worker-1", 3) is None


def test_a_grace_period_ends_on_time_even_while_the_record_is_cached(clock: Clock) -> None:
    registry = Registry(RECORD)
    check = standing(registry, clock)
    assert check.refusal("worker-1", 2) is None
    clock.advance(100)
    assert check.refusal("worker-1", 2) is None  # the last second of its grace
    clock.advance(1)
    assert check.refusal("worker-1", 2) == "auto-id generation no longer accepted"
    assert registry.reads == ["worker-1"]


def test_unknown_clients_are_remembered_too_and_the_cache_is_bounded(clock: Clock) -> None:
    registry = Registry(RECORD)
    check = standing(registry, clock, max_entries=2)
    for _ in range(3):
        assert check.refusal("ghost", 1) == "auto-id client unknown"
    assert registry.reads == ["ghost"]
    check.refusal("worker-1", 3)
    check.refusal("other", 1)  # a third client: the least recently used ("ghost") is forgotten
    check.refusal("worker-1", 3)
    assert registry.reads == ["ghost", "worker-1", "other"]
    check.refusal("ghost", 1)
    assert registry.reads == ["ghost", "worker-1", "other", "ghost"]
