"""Recognise a real request as a catalog entry: the hook for checks that record what the code does at run time.

The IAM-enforced functional suite sees each request the app makes (its action and resource ARN, in moto's account
and region); :func:`entry_for` answers which catalog entry it is, so a request the catalog does not know (the code
drifted from the catalog) can fail that suite.
"""

from __future__ import annotations

import functools
import re

from tests.permissions.catalog import CATALOG
from tests.permissions.model import Entry, deployment, resource_regex

__all__ = ["entries_for", "entry_for"]

# Where a request's SigV4 service name (what a recorder of requests sees) is not the IAM prefix of its actions.
_IAM_PREFIXES = {"tagging": "tag"}


def _iam_action(action: str) -> str:
    service, _, name = action.partition(":")
    return f"{_IAM_PREFIXES.get(service.lower(), service.lower())}:{name}".lower()


@functools.cache
def _patterns(stage: str) -> tuple[tuple[str, re.Pattern[str], Entry], ...]:
    d = deployment(stage)
    return tuple(
        (access.action.lower(), resource_regex(access.resource, d, entry.functions), entry)
        for entry in CATALOG
        for access in entry.access
    )


def entries_for(action: str, resource: str, *, stage: str = "dev", function: str | None = None) -> tuple[Entry, ...]:
    """Every entry with a request of this IAM action (``service:Action``; a SigV4 service name such as ``tagging``
    is taken for its IAM prefix) on this concrete resource ARN, made by ``function`` when given; each entry once, in
    catalog order."""
    found: dict[str, Entry] = {}
    for wanted, pattern, entry in _patterns(stage):
        if (
            wanted == _iam_action(action)
            and pattern.fullmatch(resource)
            and (function is None or function in entry.functions)
        ):
            found.setdefault(entry.id, entry)
    return tuple(found.values())


def entry_for(action: str, resource: str, *, stage: str = "dev", function: str | None = None) -> Entry | None:
    """The first entry :func:`entries_for` finds, or None: the request is not in the catalog."""
    found = entries_for(action, resource, stage=stage, function=function)
    return found[0] if found else None
