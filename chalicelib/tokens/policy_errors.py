"""Errors of the token policy (:mod:`chalicelib.tokens.policy`): refusals of one request, and an invalid document.

A refusal's ``message`` is what the HTTP caller reads: it says which part of the request was refused and nothing
else, never a rule's name nor any rule's contents (they would map the policy for a probing caller). ``rule`` and
``reason`` are for the audit log and tests: which rule refused, and why, with the requested values shown bounded.
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.errors import CredportError

__all__ = [
    "AlgorithmNotAllowed",
    "AudienceNotAllowed",
    "PolicyRefusal",
    "TagNotAllowed",
    "TokenPolicyInvalid",
    "TtlNotAllowed",
]


class PolicyRefusal(CredportError):
    """The token policy does not allow this request for this principal. ``rule`` is the name of the first rule
    (in document order) whose principals match, or None when no rule does; ``reason`` says which check failed."""

    code = "not_allowed"
    status = 403
    default_message = "The token policy does not allow this request for your principal."

    def __init__(self, *, rule: str | None, reason: str) -> None:
        super().__init__()  # always the fixed message: the caller learns the refused part, not the policy
        self.rule = rule
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rule={self.rule!r}, reason={self.reason!r})"


class AudienceNotAllowed(PolicyRefusal):
    code = "audience_not_allowed"
    default_message = "The token policy does not allow this audience for your principal."


class TtlNotAllowed(PolicyRefusal):
    code = "ttl_not_allowed"
    default_message = "The token policy does not allow this lifetime (ttl) for your principal."


class AlgorithmNotAllowed(PolicyRefusal):
    code = "algorithm_not_allowed"
    default_message = "The token policy does not allow this signing algorithm for your principal."


class TagNotAllowed(PolicyRefusal):
    code = "tag_not_allowed"
    default_message = "The token policy does not allow these request tags for your principal."


class TokenPolicyInvalid(ValueError):
    """A policy document that cannot be used, with every problem found (not only the first): each names its place
    (``rules[2].max_ttl: must be 60..900, got 4000``). ``source`` names the document (a path, or what the caller
    passed). Not a CredportError: the loader's caller decides what a bad policy means (a configuration error of
    the deployment, a CLI's exit status)."""

    def __init__(self, problems: Iterable[str], *, source: str = "") -> None:
        self.problems: list[str] = list(problems)
        self.source = source
        super().__init__("; ".join(self.problems))
