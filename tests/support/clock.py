"""A clock tests move instead of sleeping."""

from __future__ import annotations

__all__ = ["Clock"]


class Clock:
    """A clock to inject where the code takes ``clock``/``now``: tests move time instead of sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
