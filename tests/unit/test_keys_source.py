"""The one expiring key cache: clock-driven expiry, invalidation, and the rate limit on forced reloads."""

from __future__ import annotations

import threading

import pytest

from chalicelib.keys import CachedKeySource
from tests.support import Clock

TTL = 300.0
MIN_FORCED = 10.0
SHORT = 2.0


class Counting(CachedKeySource[int]):
    """Loads 1, 2, 3...; while ``short`` is set, what it loads is trusted only ``SHORT`` seconds (as a store trusts
    "no key yet")."""

    def __init__(self, clock: Clock, *, short: bool = False) -> None:
        super().__init__(ttl=TTL, min_forced_interval=MIN_FORCED, clock=clock)
        self.backend_reads = 0
        self.short = short

    def _load(self) -> int:
        self.backend_reads += 1
        return self.backend_reads

    def _lifetime(self, value: int) -> float:
        return SHORT if self.short else TTL


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


def test_the_value_is_cached_for_exactly_ttl(clock: Clock) -> None:
    source = Counting(clock)
    assert source.get() == 1
    clock.advance(TTL)
    assert source.get() == 1  # the last instant of its life
    clock.advance(0.001)
    assert source.get() == 2
    assert source.loads == 2


def test_invalidate_drops_the_value(clock: Clock) -> None:
    source = Counting(clock)
    source.get()
    source.invalidate()
    assert source.get() == 2
    assert source.get() == 2


def test_a_forced_reload_reads_at_once_at_most_once_per_interval(clock: Clock) -> None:
    source = Counting(clock)
    assert source.get() == 1
    assert source.reload() == 2  # fresh cache, still a new read
    clock.advance(MIN_FORCED - 0.001)
    assert source.reload() == 2  # a flood of unknown kids gets the cache
    assert source.reload() == 2
    assert source.backend_reads == 2
    clock.advance(0.001)
    assert source.reload() == 3
    assert source.get() == 3  # and it is cached


def test_a_rate_limited_forced_reload_still_refreshes_an_expired_cache(clock: Clock) -> None:
    source = Counting(clock)
    source.reload()
    clock.advance(TTL + 1)
    source.reload()  # forced: allowed (past the interval)
    clock.advance(1)
    assert source.reload() == 2  # refused as forced, the cache is fresh
    clock.advance(TTL)
    source.invalidate()
    assert source.reload(force=False) == 3  # force=False is get()


def test_routine_reloads_do_not_count_against_the_rate_limit(clock: Clock) -> None:
    source = Counting(clock)
    source.get()
    clock.advance(TTL + 1)
    source.get()  # an expiry reload
    assert source.reload() == 3  # the first forced one is allowed


def test_a_value_lives_as_long_as_its_own_lifetime(clock: Clock) -> None:
    source = Counting(clock, short=True)
    assert [source.get(), source.get()] == [1, 1]
    clock.advance(SHORT)
    assert source.get() == 1  # the last instant of its short life
    clock.advance(0.001)
    assert source.get() == 2
    source.short = False
    clock.advance(SHORT + 0.001)
    assert source.get() == 3  # read when the short value expired; this one lives the full ttl
    clock.advance(TTL)
    assert source.get() == 3
    source.short = True
    clock.advance(0.001)
    assert source.get() == 4
    assert source.loads == 4


def test_concurrent_readers_of_an_expired_cache_read_the_backend_once(clock: Clock) -> None:
    gate = threading.Event()

    class Slow(Counting):
        def _load(self) -> int:
            gate.wait(5)
            return super()._load()

    source = Slow(clock)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(source.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert results == [1] * 8
    assert source.backend_reads == 1
