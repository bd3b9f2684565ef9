"""What auto-id may ever serve, by the shape of a name: deny by structure, not by a list of what exists.

A secret is served only if its name lies under one of the serving prefixes (``CREDPORT_AUTOID_SERVING_PREFIXES``,
which the settings keep clear of every kind in :mod:`chalicelib.internal_secrets`) and, belt and braces, in
no internal kind. A role is never one of credport's own (``<prefix>-…``), except under the auto-id role
name-space ``<prefix>-autoid-…`` the IAM policy grants. Enrolment refuses a policy that could reach anything
else; serving checks again, so a record written before these rules (or by hand) gains nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.internal_secrets import AUTOID_ROLE_NAMESPACE, internal_kind, reaching_kinds, role_name_prefix

__all__ = ["ServingScope"]

_ROLE_HEAD = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/")


@dataclass(frozen=True)
class ServingScope:
    prefix: str
    secret_prefixes: tuple[str, ...]

    def __post_init__(self) -> None:
        # The settings refuse this already; a scope built another way (tests, bench) must not get further.
        for serving in self.secret_prefixes:
            if not serving.endswith("/") or reaching_kinds(self.prefix, serving):
                raise ValueError(f"serving prefix {serving!r} must end with '/' and reach no internal secret")

    # Serving -----------------------------------------------------------------------------------------

    def secret_refusal(self, name: str) -> str | None:
        """Why ``name`` is never served (a reason for the log), or None."""
        if internal_kind(self.prefix, name) is not None:
            return "internal_secret"
        if not any(name.startswith(serving) and len(name) > len(serving) for serving in self.secret_prefixes):
            return "outside_serving_prefixes"
        return None

    def role_refusal(self, arn: str) -> str | None:
        head = _ROLE_HEAD.match(arn)
        if head is None:
            return "not_a_role"
        return "credport_role" if self._own_role_name(arn[head.end() :].rsplit("/", 1)[-1]) else None

    # Enrolment ---------------------------------------------------------------------------------------

    def policy_problems(self, secrets: tuple[str, ...], roles: tuple[str, ...]) -> list[str]:
        """Every pattern that could reach a name outside what auto-id serves (empty: the policy may be enrolled)."""
        problems = [
            f"secret {pattern!r} could reach names outside the serving prefixes ({', '.join(self.secret_prefixes)})"
            for pattern in secrets
            if not self._secret_pattern_inside(pattern)
        ]
        own = role_name_prefix(self.prefix)
        served = own + AUTOID_ROLE_NAMESPACE
        problems += [
            f"role {pattern!r} could match credport's own roles ({own}…; auto-id serves only {served}…)"
            for pattern in roles
            if self._role_pattern_reaches_own(pattern)
        ]
        return problems

    def _secret_pattern_inside(self, pattern: str) -> bool:
        if pattern.endswith("*"):
            # 'P*' matches every name longer than P that starts with it: P itself must start with a serving prefix.
            stem = pattern[:-1]
            return any(stem.startswith(serving) for serving in self.secret_prefixes) and not reaching_kinds(
                self.prefix, stem
            )
        return self.secret_refusal(pattern) is None

    def _own_role_name(self, name: str) -> bool:
        # IAM role names are unique regardless of case: compare them so, never trusting case to tell roles apart.
        name, own = name.lower(), role_name_prefix(self.prefix).lower()
        return name.startswith(own) and not name.startswith(own + AUTOID_ROLE_NAMESPACE)

    def _role_pattern_reaches_own(self, pattern: str) -> bool:
        """Whether the pattern could match ``arn:…:role/<prefix>-X`` for an X outside ``autoid-``. credport's roles
        live at path '/', and a role ARN names its path: the part after ``role/`` is compared. The account is not:
        a pattern naming another account gains nothing by it, and the rule stays one of shape."""
        head = _ROLE_HEAD.match(pattern)
        if head is None:
            return True  # ClientPolicy refuses such a pattern before this; never assume it harmless
        rest = pattern[head.end() :]
        if not rest.endswith("*"):
            return self._own_role_name(rest.rsplit("/", 1)[-1])
        stem, own = rest[:-1].lower(), role_name_prefix(self.prefix).lower()
        if own.startswith(stem):  # 'role/*', 'role/credport-*', 'role/credport-dev-*'
            return True
        if not stem.startswith(own):  # another name (or a path): never one of credport's roles
            return False
        # 'role/<prefix>-T*': only safe if every name it matches is under '<prefix>-autoid-'.
        return not stem[len(own) :].startswith(AUTOID_ROLE_NAMESPACE)
