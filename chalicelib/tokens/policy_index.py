"""Which rules of a token policy may match a caller, found by a few dictionary look-ups rather than by visiting every
rule: a 20-rule policy is checked in the time of a handful of rules.

An ARN pattern is matched part by part (:mod:`chalicelib.tokens.policy`): its first five ``:``-separated parts
never match a ``:``, so the resource of a subject it matches (what follows the subject's fifth ``:``) is matched by
the pattern's resource, and starts with that resource's literal beginning (up to its first ``*`` or ``?``), whatever
wildcards the parts before it hold. A rule is filed under those prefixes, one per pattern; a rule with no ARN
condition, or with a pattern whose resource begins with a wildcard (``arn:aws:iam::*:*``), is a candidate for every
caller. A caller's candidates are the rules filed under a prefix of its resource, one look-up per distinct prefix
length, and the rules of every caller.

The index only proposes: :meth:`chalicelib.tokens.policy.TokenPolicy.check` checks each candidate's every condition
itself, in document order. A rule it failed to propose could only take an allowance away, never grant one (a request
is allowed by a rule that matches and allows it); property tests hold the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["PrincipalIndex", "resource_prefix"]

_PARTS_BEFORE_RESOURCE = 5


def resource_prefix(pattern: str) -> str | None:
    """The literal beginning of ``pattern``'s resource part (up to its first ``*`` or ``?``), or None when the pattern
    has no resource part: then any subject could match it. Wildcards in the parts before the resource do not matter:
    they never match a ``:``, so the resource of a subject the pattern matches is the text after its fifth ``:``."""
    parts = pattern.split(":", _PARTS_BEFORE_RESOURCE)
    if len(parts) <= _PARTS_BEFORE_RESOURCE:
        return None
    resource = parts[-1]
    ends = [at for at in (resource.find("*"), resource.find("?")) if at >= 0]
    return resource[: min(ends)] if ends else resource


class PrincipalIndex:
    """``candidates(subject)``: the indexes, in document order, of the rules whose ARN condition may hold for
    ``subject`` (every rule whose ARN condition holds is among them)."""

    def __init__(self, rule_patterns: Sequence[Iterable[str] | None]) -> None:
        everyone: list[int] = []
        filed: dict[str, list[int]] = {}
        for index, patterns in enumerate(rule_patterns):
            prefixes = None if patterns is None else {resource_prefix(pattern) for pattern in patterns}
            if prefixes is None or None in prefixes or "" in prefixes:
                everyone.append(index)
                continue
            for prefix in prefixes:
                filed.setdefault(str(prefix), []).append(index)
        self._everyone = tuple(everyone)
        self._filed = {prefix: tuple(indexes) for prefix, indexes in filed.items()}
        self._lengths = tuple(sorted({len(prefix) for prefix in filed}))
        self._count = len(rule_patterns)

    def candidates(self, subject: str) -> Sequence[int]:
        parts = subject.split(":", _PARTS_BEFORE_RESOURCE)
        if len(parts) <= _PARTS_BEFORE_RESOURCE:
            return self._everyone  # no resource part: no filed pattern can match it
        resource = parts[-1]
        found: list[int] = []
        for length in self._lengths:
            if length > len(resource):
                break
            found.extend(self._filed.get(resource[:length], ()))
        if not found:
            return self._everyone
        found.extend(self._everyone)
        return sorted(set(found))  # a rule filed under two prefixes of this resource is checked once
