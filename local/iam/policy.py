"""One IAM policy document against one request, and AWS's evaluation logic across policies.

Sources: IAM User Guide, "Policy evaluation logic" (explicit deny, then allows; identity-based and resource-based
policies in the same account are a union, across accounts an intersection; "Cross-account policy evaluation logic"),
"IAM JSON policy elements" (Action/NotAction case-insensitive, Resource/NotResource case-sensitive, both with ``*`` and
``?``; Principal/NotPrincipal; "AWS JSON policy elements: Principal": an account id means the account's root, which
delegates to the account's IAM policies), KMS Developer Guide, "Key policies" and "Default key policy" (the key policy
is the gate; IAM policies count only where it allows the account root).

Resource patterns are matched with our own glob (every character but ``*``/``?`` escaped): moto's ``_match`` forgets to
escape regex metacharacters, so ``.`` in a pattern would match any character there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .conditions import (
    Unresolved,
    UnsupportedCondition,
    conditions_hold,
    expand,
    glob_regex,
    normalize_context,
    validate_block,
)

__all__ = ["Decision", "Principal", "Request", "UnsupportedCondition", "authorize", "evaluate_policy"]

_VARIABLES_VERSION = "2012-10-17"  # policy variables exist only from this Version on
_STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)
_ACCOUNT = re.compile(r"\d{12}")
_ROOT = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):root")


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"  # an explicit Deny statement matched
    NONE = "none"  # nothing matched: an implicit deny


@dataclass(frozen=True)
class Principal:
    """Who makes the request. ``arn`` is what ``aws:PrincipalArn`` holds: the user ARN, the *role* ARN for a
    role session (path included), ``arn:aws:iam::A:root`` for the root user. ``session_arn`` is the
    ``arn:aws:sts::A:assumed-role/R/S`` ARN of a role session (what a resource policy may also name).
    ``federated``: the identity provider of an AssumeRoleWithWebIdentity/SAML request (what a trust policy's
    ``{"Federated": ...}`` names)."""

    arn: str
    account: str
    session_arn: str | None = None
    service: str | None = None  # "lambda.amazonaws.com" for a service principal
    federated: str | None = None

    @property
    def is_root(self) -> bool:
        return (m := _ROOT.fullmatch(self.arn)) is not None and m.group(1) == self.account


@dataclass(frozen=True)
class Request:
    action: str  # "service:Action"
    resource: str  # the resource ARN, or "*" for actions without one
    principal: Principal | None = None
    # Condition keys (matched case-insensitively) -> str | bool | int | list[str] (multi-valued) ; absent = missing.
    context: Mapping[str, Any] = field(default_factory=dict)


class _Match(Enum):
    NO = 0
    ACCOUNT = 1  # the principal matched only as a member of an account named by its id or root ARN
    SPECIFIC = 2  # "*", the principal's own ARN, its service or provider, or a statement without Principal


@dataclass(frozen=True)
class _Outcome:
    decision: Decision
    specific: bool = False  # some Allow that matched named the principal itself (not only its account)


def _document(document: Mapping[str, Any] | str) -> Mapping[str, Any]:
    parsed = json.loads(document) if isinstance(document, str) else document
    if not isinstance(parsed, Mapping) or "Statement" not in parsed:
        raise ValueError("a policy document is an object with a Statement")
    return parsed


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _action_matches(patterns: Any, action: str) -> bool:
    return any(
        glob_regex(expand(str(p), {}, variables=False), ignore_case=True).fullmatch(action) is not None
        for p in _listed(patterns)
    )


def _resource_matches(patterns: Any, resource: str, context: Mapping[str, Any], variables: bool) -> bool:
    return any(
        glob_regex(expand(str(p), context, variables=variables)).fullmatch(resource) is not None
        for p in _listed(patterns)
    )


def _aws_principal(entry: str, principal: Principal) -> _Match:
    if entry == "*":
        return _Match.SPECIFIC
    if _ACCOUNT.fullmatch(entry) or (_ROOT.fullmatch(entry) is not None):
        account = entry if _ACCOUNT.fullmatch(entry) else entry.split(":")[4]
        if principal.is_root and account == principal.account:
            return _Match.SPECIFIC
        return _Match.ACCOUNT if account == principal.account else _Match.NO
    # No wildcards inside a principal ARN ("AWS JSON policy elements: Principal"): compared as is. A role ARN
    # names every session of the role (Principal.arn is the role ARN for a session).
    return _Match.SPECIFIC if entry in (principal.arn, principal.session_arn) else _Match.NO


def _principal_match(element: Any, principal: Principal | None) -> _Match:
    if element == "*":
        return _Match.SPECIFIC  # everyone, anonymous included
    if not isinstance(element, Mapping):
        raise UnsupportedCondition(f"unsupported Principal element {element!r}")
    best = _Match.NO
    for kind, entries in element.items():
        if kind not in ("AWS", "Service", "Federated"):
            raise UnsupportedCondition(f"unsupported principal type {kind!r}")
        for entry in _listed(entries):
            if principal is None:
                continue
            if kind == "AWS" and principal.service is None and principal.federated is None:
                found = _aws_principal(str(entry), principal)
            elif kind == "Service":
                found = _Match.SPECIFIC if entry == principal.service else _Match.NO
            elif kind == "Federated":
                found = _Match.SPECIFIC if entry == principal.federated else _Match.NO
            else:
                found = _Match.NO
            best = max(best, found, key=lambda m: m.value)
    return best


def _statement(statement: Mapping[str, Any], request: Request, context: Mapping[str, Any], version: Any) -> _Match:
    """How the statement applies to the request: NO, or the way its principal matched."""
    variables = version == _VARIABLES_VERSION
    if "Action" in statement:
        if not _action_matches(statement["Action"], request.action):
            return _Match.NO
    elif _action_matches(statement["NotAction"], request.action):
        return _Match.NO
    match = _Match.SPECIFIC
    if "Principal" in statement:
        match = _principal_match(statement["Principal"], request.principal)
    elif "NotPrincipal" in statement:
        excluded = _principal_match(statement["NotPrincipal"], request.principal) is not _Match.NO
        match = _Match.NO if excluded else _Match.SPECIFIC
    if match is _Match.NO:
        return match
    try:
        if "Resource" in statement:
            if not _resource_matches(statement["Resource"], request.resource, context, variables):
                return _Match.NO
        elif "NotResource" in statement and _resource_matches(
            statement["NotResource"], request.resource, context, variables
        ):
            return _Match.NO
        if "Condition" in statement and not conditions_hold(statement["Condition"], context, variables=variables):
            return _Match.NO
    except Unresolved:
        return _Match.NO  # "If AWS cannot resolve a variable, this might cause the entire statement to be invalid"
    return match


def _validate(statement: Any, resource_policy: bool | None) -> Mapping[str, Any]:
    """Every statement checked whole before any is evaluated: an unknown element, operator or key raises even in a
    statement that would not apply to this request."""
    if not isinstance(statement, Mapping):
        raise UnsupportedCondition("a statement must be an object")
    unknown = set(statement) - _STATEMENT_KEYS
    if unknown or statement.get("Effect") not in ("Allow", "Deny"):
        raise UnsupportedCondition(f"malformed statement (unknown elements {sorted(unknown)} or bad Effect)")
    if ("Action" in statement) == ("NotAction" in statement):
        raise UnsupportedCondition("a statement has exactly one of Action and NotAction")
    if "NotPrincipal" in statement:
        # AWS matches NotPrincipal against every principal of a session's chain (session ARN, role, account), which
        # this evaluator does not model: refused rather than guessed (IAM User Guide, "NotPrincipal").
        raise UnsupportedCondition("NotPrincipal is not emulated")
    has_principal = "Principal" in statement or "NotPrincipal" in statement
    if resource_policy is not None and has_principal != resource_policy:
        kind = "resource" if resource_policy else "identity"
        raise UnsupportedCondition(f"a {kind} policy statement {'needs' if resource_policy else 'has'} a Principal")
    for element in ("Principal", "NotPrincipal"):
        if element in statement:
            _principal_match(statement[element], None)  # raises for an unknown principal type
    if "Condition" in statement:
        validate_block(statement["Condition"])
    return statement


def _evaluate(document: Mapping[str, Any] | str, request: Request, *, resource_policy: bool | None = None) -> _Outcome:
    parsed = _document(document)
    context = normalize_context(request.context)
    listed = parsed["Statement"] if isinstance(parsed["Statement"], list) else [parsed["Statement"]]
    allowed, specific = False, False
    for statement in [_validate(s, resource_policy) for s in listed]:
        match = _statement(statement, request, context, parsed.get("Version"))
        if match is _Match.NO:
            continue
        if statement["Effect"] == "Deny":
            return _Outcome(Decision.DENY)
        allowed, specific = True, specific or match is _Match.SPECIFIC
    return _Outcome(Decision.ALLOW if allowed else Decision.NONE, specific)


def evaluate_policy(document: Mapping[str, Any] | str, request: Request) -> Decision:
    """One document: DENY if a Deny statement applies, else ALLOW if an Allow applies, else NONE."""
    return _evaluate(document, request).decision


def _resource_account(resource: str) -> str | None:
    parts = resource.split(":", 5)
    return parts[4] if len(parts) == 6 and _ACCOUNT.fullmatch(parts[4]) else None


def authorize(
    request: Request,
    identity_policies: Sequence[Mapping[str, Any] | str],
    resource_policy: Mapping[str, Any] | str | None = None,
    *,
    resource_account: str | None = None,
    key_policy: bool = False,
) -> Decision:
    """AWS's decision over the principal's identity policies and the resource's policy (if any).

    Same account: allowed when either allows (a resource policy naming only the account root delegates to IAM).
    Across accounts: both must allow. ``key_policy``: KMS semantics, where the key policy is the gate and
    identity policies count only when the key policy allows the account root (a role's trust policy gates
    sts:AssumeRole the same way: pass it with ``key_policy=True``). The root user of an account is allowed what its
    account's resource policies do not deny; ``resource_account`` defaults to the account in the resource ARN, else
    the principal's.
    """
    principal = request.principal
    identities = [_evaluate(d, request, resource_policy=False) for d in identity_policies]
    resource = _evaluate(resource_policy, request, resource_policy=True) if resource_policy is not None else None
    if any(o.decision is Decision.DENY for o in (*identities, *([resource] if resource else []))):
        return Decision.DENY
    owner = resource_account or _resource_account(request.resource) or (principal.account if principal else None)
    resource_allows = resource is not None and resource.decision is Decision.ALLOW
    if principal is None or principal.service is not None:  # anonymous or a service: only a resource policy grants
        return Decision.ALLOW if resource_allows and resource is not None and resource.specific else Decision.NONE
    same = principal.account == owner
    identity_allows = principal.is_root or any(o.decision is Decision.ALLOW for o in identities)
    if key_policy:
        if resource is None:
            raise ValueError("key_policy=True needs the key (or trust) policy")
        if not resource_allows:
            return Decision.NONE
        granted = (resource.specific and same) or identity_allows
        return Decision.ALLOW if granted else Decision.NONE
    if same:
        granted = identity_allows or (resource_allows and resource is not None and resource.specific)
        return Decision.ALLOW if granted else Decision.NONE
    return Decision.ALLOW if identity_allows and resource_allows else Decision.NONE
