"""Names a package exports but imports on first use (PEP 562): a cold start pays only for what its first request
imports, not for every module a package's ``__init__`` would otherwise load."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_attribute"]


def lazy_attribute(package: str, module_of: Mapping[str, str], name: str) -> Any:
    """``name`` from ``package``'s submodule that ``module_of`` names; what a package's ``__getattr__`` returns."""
    module = module_of.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(import_module(f"{package}.{module}"), name)
