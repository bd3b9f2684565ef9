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
itself, in document order. Should the index ever miss a matching rule, the error fails closed: a request could be
refused (or allowed by a later rule than it should), never allowed by a rule that does not match it. Property tests
hold the index and a rule-by-rule reference to the same answers, the allowing rule's name included (it sets the
request's default ttl and algorithm).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["MAX_LENGTHS", "MIN_RULES", "PrincipalIndex", "resource_prefix"]

MIN_RULES = 4  # below, visiting every rule costs less than a look-up (~1 us a rule)
MAX_LENGTHS = 32  # above, the look-ups (a slice and a hash of the resource each) cost more than they save
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
    ``subject`` (every rule whose ARN condition holds is among them). Where looking up costs more than it can save
    (fewer than :data:`MIN_RULES` rules, more than :data:`MAX_LENGTHS` distinct prefix lengths, or no rule filed),
    every rule is a candidate."""

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
        self._all = tuple(range(len(rule_patterns)))
        self._everyone = tuple(everyone)
        self._filed = {prefix: tuple(indexes) for prefix, indexes in filed.items()}
        self._lengths = tuple(sorted({len(prefix) for prefix in filed}))
        self._useful = len(rule_patterns) >= MIN_RULES and 0 < len(self._lengths) <= MAX_LENGTHS

    def candidates(self, subject: str) -> Sequence[int]:
        if not self._useful:
            return self._all
        parts = subject.split(":", _PARTS_BEFORE_RESOURCE)
        if len(parts) <= _PARTS_BEFORE_RESOURCE:
            return self._everyone  # no resource part: no filed pattern can match it
        resource = parts[-1]
        hits: list[tuple[int, ...]] = []
        for length in self._lengths:
            if length > len(resource):
                break
            indexes = self._filed.get(resource[:length])
            if indexes is not None:
                hits.append(indexes)
        if not hits:
            return self._everyone
        if len(hits) == 1 and not self._everyone:
            return hits[0]  # one prefix's rules: already in order, each once
        # A rule filed under two prefixes of this resource is checked once, in document order.
        return sorted({index for indexes in (*hits, self._everyone) for index in indexes})
