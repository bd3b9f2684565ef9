"""Liveness: answers without touching AWS or the configuration."""

from __future__ import annotations

from chalicelib import __version__

__all__ = ["status"]


def status() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
