"""Each catalog entry against the IAM policy of each function that makes it, as AWS would decide, conditions included.

Every :class:`~tests.permissions.model.Access` becomes one request to :func:`local.iam.policy.authorize`:
- the principal is the function's role session (``assumed-role/<role>/<function name>``: Lambda names the session
  after the function), with the global keys AWS adds (aws:PrincipalArn, aws:PrincipalAccount, aws:SecureTransport);
- the identity policy is the function's policy file (:meth:`Deployment.policy_file`);
- a KMS request is gated by the key's policy (``key_policy=True``): the data key's from template.yaml; a token-signing
  key's is :func:`chalicelib.tokens.kms_keys.signing_key_policy` of its creator. A signing key is evaluated as made
  by this very function a moment ago (its tags and aliases not in force yet: "it might take up to five minutes for
  tag and alias changes to affect KMS key authorization", KMS Developer Guide, ABAC for AWS KMS), and as made by
  someone else (an operator) long ago, tags in force; and, where the catalog says the call meets one
  (``Entry.key_made_by``), as made a moment ago by another function of the deployment: chalice gives each function a
  role of its own (:meth:`Deployment.role_name`), so the key policy does not name it;
- an S3 request also meets its bucket's policy from template.yaml (its TLS-only Deny, say).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.tokens.kms_keys import signing_key_policy
from local.iam.policy import Decision, Principal, Request, authorize, evaluate_policy
from tests.permissions.catalog import CATALOG
from tests.permissions.model import Access, Deployment, Entry, Key, Value, deployment, render

__all__ = [
    "ACCOUNT",
    "ESTABLISHED",
    "FRESH",
    "FRESH_FROM",
    "REGION",
    "Outcome",
    "denied",
    "evaluate",
    "policy_of",
    "principal_of",
    "statement_uses",
]

ACCOUNT = "123456789012"
REGION = "eu-west-1"
FRESH = "key made by this function, tags not yet in force"
# A key whose key policy names none of the deployment's roles: AWS's default key policy (a key made by an operator
# by hand, or before credport made keys with a key policy), its tags in force. Only the tag-scoped IAM grant allows it.
ESTABLISHED = "key with AWS's default key policy, tags in force"
FRESH_FROM = "key made by {function}, tags not yet in force"
_NOT_YET_IN_FORCE = ("aws:resourcetag/", "kms:resourcealiases")


@dataclass(frozen=True)
class Outcome:
    stage: str
    function: str
    entry: str
    scenario: str
    request: Request
    decision: Decision

    def describe(self) -> str:
        where = f" ({self.scenario})" if self.scenario else ""
        return f"{self.function}: {self.entry}: {self.request.action} on {self.request.resource}{where}"


def policy_of(d: Deployment, function: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(d.policy_file(function).read_text())
    return document


def _context(values: Mapping[str, Value], d: Deployment, function: str) -> dict[str, Value]:
    def one(value: str) -> str:
        return render(value, d, account=ACCOUNT, region=REGION, function=function)

    return {
        key: tuple(one(v) for v in value)
        if isinstance(value, tuple)
        else one(value)
        if isinstance(value, str)
        else value
        for key, value in values.items()
    }


def principal_of(d: Deployment, function: str) -> Principal:
    role = d.role_name(function)
    return Principal(
        arn=f"arn:aws:iam::{ACCOUNT}:role/{role}",
        account=ACCOUNT,
        session_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{d.function_name(function)}",
    )


def _requests(
    d: Deployment, function: str, access: Access, key_made_by: str | None = None
) -> Iterable[tuple[str, Request, Mapping[str, Any] | None]]:
    """(scenario, request, the key or bucket policy that also decides) for one access."""
    principal = principal_of(d, function)
    context: dict[str, Value] = {
        "aws:PrincipalArn": principal.arn,
        "aws:PrincipalAccount": ACCOUNT,
        "aws:PrincipalType": "AssumedRole",
        "aws:SecureTransport": True,
        **_context(access.context, d, function),
    }
    resource = render(access.resource, d, account=ACCOUNT, region=REGION, function=function)
    policies = d.resource_policies(ACCOUNT, REGION)
    if access.key is Key.DATA:
        yield "", Request(access.action, resource, principal, context), policies["data-key"]
    elif access.key is Key.SIGNING:
        fresh = {k: v for k, v in context.items() if not k.lower().startswith(_NOT_YET_IN_FORCE)}
        assert principal.session_arn is not None
        yield (
            FRESH,
            Request(access.action, resource, principal, fresh),
            signing_key_policy(principal.session_arn, d.prefix),
        )
        if key_made_by is not None:
            creator = principal_of(d, key_made_by).session_arn
            assert creator is not None
            scenario = FRESH_FROM.format(function=key_made_by)
            yield scenario, Request(access.action, resource, principal, fresh), signing_key_policy(creator, d.prefix)
        yield ESTABLISHED, Request(access.action, resource, principal, context), _default_key_policy()
    else:
        bucket = resource.removeprefix("arn:aws:s3:::").split("/")[0] if resource.startswith("arn:aws:s3:::") else None
        yield "", Request(access.action, resource, principal, context), policies.get(bucket) if bucket else None


def _default_key_policy() -> dict[str, Any]:
    """What KMS attaches to a key created without a policy (KMS Developer Guide, "Default key policy")."""
    root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    statement = {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": root, "Action": "kms:*"}
    return {"Version": "2012-10-17", "Statement": [{**statement, "Resource": "*"}]}


def evaluate(
    stage: str,
    catalog: Iterable[Entry] = CATALOG,
    *,
    policies: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Outcome]:
    """Every request of every entry, for every function that makes it. ``policies`` (function -> document) replaces
    the policy files (a test removing a statement)."""
    d = deployment(stage)
    outcomes = []
    for entry in catalog:
        for function in sorted(entry.functions):
            identity = policies[function] if policies is not None else policy_of(d, function)
            for access in entry.access:
                made_by = entry.key_made_by.get(function)
                for scenario, request, resource_policy in _requests(d, function, access, made_by):
                    decision = authorize(request, [identity], resource_policy, key_policy=access.key is not None)
                    outcomes.append(Outcome(stage, function, entry.id, scenario, request, decision))
    return outcomes


def denied(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.decision is not Decision.ALLOW]


def statement_uses(
    stage: str, outcomes: Iterable[Outcome], *, policies: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[tuple[str, str, str], set[str]]:
    """(policy file, Sid, action) of every policy in use -> the entries whose requests that action of that statement
    allows on its own (so an action two statements grant counts for both). ``policies`` as for :func:`evaluate`."""
    d = deployment(stage)
    listed = list(outcomes)
    uses: dict[tuple[str, str, str], set[str]] = {}
    for function in sorted({o.function for o in listed}):
        document = policies[function] if policies is not None else policy_of(d, function)
        name = d.policy_file(function).name
        mine = [o for o in listed if o.function == function]
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                alone = {"Version": document.get("Version"), "Statement": [{**statement, "Action": [action]}]}
                key = (name, str(statement.get("Sid", "")), str(action))
                found = uses.setdefault(key, set())
                found.update(o.entry for o in mine if evaluate_policy(alone, o.request) is Decision.ALLOW)
    return uses
