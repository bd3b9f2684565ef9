"""The identity-based policies AWS evaluates for a principal, read from the embedded AWS's IAM state.

An IAM user: its inline policies, its attached managed policies and those of its groups (inline and attached).
A role session: the role's inline and attached managed policies; its permissions boundary and the session policy
passed to AssumeRole only *limit* them. A managed policy counts with its default version only. Sources: IAM User
Guide, "Policy evaluation logic" (identity-based policies with boundaries and session policies), "Versioning IAM
policies" ("the default version is the operative version").

Simplification: a boundary or session policy that does not allow the request leaves the identity policies only
their Deny statements; the grants a resource policy makes to the principal are not limited by them (IAM User Guide,
"Evaluating identity-based policies with resource-based policies": true for grants to the user or role ARN).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local.iam.policy import Decision, Request, authorize, evaluate_policy

__all__ = ["IdentityPolicies", "identity_policies"]

_NOTHING = json.dumps({"Version": "2012-10-17", "Statement": []})


@dataclass(frozen=True)
class IdentityPolicies:
    documents: tuple[str, ...]  # identity-based policies: what they allow, the principal may do
    limits: tuple[str, ...] = ()  # permissions boundary, session policy: each must also allow it

    def authorize(
        self,
        request: Request,
        resource_policy: Mapping[str, Any] | str | None = None,
        *,
        resource_account: str | None = None,
    ) -> Decision:
        """AWS's decision for this principal (:func:`local.iam.policy.authorize`), limits applied."""
        limited = [evaluate_policy(document, request) for document in self.limits]
        if Decision.DENY in limited:
            return Decision.DENY
        documents: Sequence[Mapping[str, Any] | str] = self.documents
        if any(decision is not Decision.ALLOW for decision in limited):
            documents = [_denies_only(document) for document in self.documents]
        return authorize(request, documents, resource_policy, resource_account=resource_account)


def identity_policies(
    principal_arn: str, account: str, *, partition: str = "aws", session_access_key: str | None = None
) -> IdentityPolicies:
    """The policies of the IAM user or role ``principal_arn`` names (a role ARN, path included, for a session);
    ``session_access_key``: the role session's key, whose session policy limits the role's. Unknown: none."""
    from moto.iam.models import iam_backends

    if account not in iam_backends or partition not in iam_backends[account]:
        return IdentityPolicies(())
    iam = iam_backends[account][partition]
    user = next((u for u in list(iam.users.values()) if u.arn == principal_arn), None)
    if user is not None:
        groups = [g for g in list(iam.groups.values()) if user in g.users]
        documents = [*_own(user), *(d for group in groups for d in _own(group))]
        return IdentityPolicies(tuple(documents))
    role = next((r for r in list(iam.roles.values()) if r.arn == principal_arn), None)
    if role is None:
        return IdentityPolicies(())
    limits = []
    if role.permissions_boundary_arn:
        boundary = iam.managed_policies.get(role.permissions_boundary_arn)
        limits.append(_NOTHING if boundary is None else _default_version(boundary))
    session_policy = _session_policy(account, partition, session_access_key)
    if session_policy:
        limits.append(session_policy)
    return IdentityPolicies(tuple(_own(role)), tuple(limits))


def _own(entity: Any) -> Iterator[str]:
    """An entity's inline policies, then its attached managed policies."""
    yield from (str(document) for document in list(entity.policies.values()))
    yield from (_default_version(policy) for policy in list(entity.managed_policies.values()))


def _default_version(policy: Any) -> str:
    version = next(v for v in policy.versions if v.version_id == policy.default_version_id)
    return str(version.document)


def _session_policy(account: str, partition: str, access_key: str | None) -> str | None:
    from moto.sts.models import sts_backends

    if access_key is None or account not in sts_backends or partition not in sts_backends[account]:
        return None
    sessions = list(sts_backends[account][partition].assumed_roles)
    session = next((s for s in sessions if s.access_key_id == access_key), None)
    return str(session.policy) if session is not None and session.policy else None


def _denies_only(document: Mapping[str, Any] | str) -> dict[str, Any]:
    parsed = json.loads(document) if isinstance(document, str) else dict(document)
    statements = parsed.get("Statement", [])
    listed = statements if isinstance(statements, list) else [statements]
    return {**parsed, "Statement": [s for s in listed if s.get("Effect") == "Deny"]}
