"""How creators read a resource's properties: strictly (a property the local stack does not apply is an error,
never silently skipped) and with CloudFormation's booleans (``true``/``"True"``/``"true"`` alike)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local.template import TemplateError

__all__ = ["boolean", "strict"]


def strict(logical_id: str, props: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(props) - known
    if unknown:
        raise TemplateError(f"{logical_id}: the local stack does not apply {sorted(unknown)}; teach local/provision/")


def boolean(value: Any) -> str:
    return "true" if str(value).lower() == "true" else "false"
