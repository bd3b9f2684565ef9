"""The local stack: the whole credport app on an embedded AWS (moto), for development and tests."""

from __future__ import annotations

__all__: list[str] = []
