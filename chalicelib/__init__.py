"""credport: a credential broker for workloads (shared library of the Chalice app)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
