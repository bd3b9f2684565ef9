"""Every AWS call of every Lambda function is allowed by that function's IAM policy, as AWS decides, conditions
included, for every stage; every statement of the policies is needed; and removing a permission fails exactly the
calls that need it. The calls are tests.permissions' catalog (test_aws_call_catalog.py holds it to the code).

Offline: the catalog's requests go to the embedded IAM engine (local.iam.policy), no moto, no AWS.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from local.iam.policy import Decision
from tests.permissions import CATALOG
from tests.permissions.check import (
    ESTABLISHED,
    Outcome,
    denied,
    evaluate,
    policy_of,
    statement_uses,
)
from tests.permissions.model import deployment

STAGES = ("dev", "prod")
# (Sid, action) pairs of the policies no catalog entry needs, each with the reason. The test asserts this is exact.
NOT_NEEDED: dict[tuple[str, str], str] = {
    ("AutoIdEntropy", "s3:DeleteObject"): "excess: entropy objects are only ever purged by VersionId "
    "(s3:DeleteObjectVersion); kept until tests/functional/test_iam_enforced.py's NOT_EXERCISED drops it too",
}


# Requests AWS would deny today, each a defect outside the policy files, with where it gets fixed. The test asserts
# this is exact: the fix makes the test fail until its line goes. (Empty since the signing keys' key policies name
# every function that uses them: chalicelib/tokens/kms_keys.py SIGNING_KEY_FUNCTIONS.)
KNOWN_DENIED: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, list[Outcome]]:
    return {stage: evaluate(stage) for stage in STAGES}


def _unexpected(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in denied(outcomes) if (o.function, o.entry, o.scenario) not in KNOWN_DENIED]


# --- the policies allow every call, and need every statement ----------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_every_call_is_allowed_by_its_functions_policy(stage: str, outcomes: dict[str, list[Outcome]]) -> None:
    assert len(outcomes[stage]) > 200
    assert [o.describe() for o in _unexpected(outcomes[stage])] == []
    assert {(o.function, o.entry, o.scenario) for o in denied(outcomes[stage])} == set(KNOWN_DENIED)


@pytest.mark.parametrize("stage", STAGES)
def test_every_statement_of_the_policy_is_needed(stage: str, outcomes: dict[str, list[Outcome]]) -> None:
    uses = statement_uses(stage, outcomes[stage])
    unused = {(sid, action) for (_, sid, action), entries in uses.items() if not entries}
    assert sorted(unused - set(NOT_NEEDED)) == [], "granted, needed by no entry, no written reason"
    assert sorted(set(NOT_NEEDED) - unused) == [], "NOT_NEEDED lists pairs an entry needs (or the policy lacks)"


def test_a_statement_no_entry_needs_is_reported(outcomes: dict[str, list[Outcome]]) -> None:
    d = deployment("dev")
    policy = copy.deepcopy(policy_of(d, "api_handler"))
    policy["Statement"].append({"Sid": "Extra", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"})
    uses = statement_uses("dev", outcomes["dev"], policies=dict.fromkeys(ALL, policy))
    unused = {(sid, action) for (_, sid, action), entries in uses.items() if not entries}
    assert unused - set(NOT_NEEDED) == set()  # Resource * allows every GetObject the catalog makes: it is "used"
    policy["Statement"][-1]["Action"] = ["s3:PutBucketPolicy"]
    uses = statement_uses("dev", outcomes["dev"], policies=dict.fromkeys(ALL, policy))
    unused = {(sid, action) for (_, sid, action), entries in uses.items() if not entries}
    assert unused - set(NOT_NEEDED) == {("Extra", "s3:PutBucketPolicy")}


# --- the check fails when a permission goes ---------------------------------------------------------------------

Policy = dict[str, Any]


def _without(sid: str) -> Callable[[Policy], None]:
    def change(policy: Policy) -> None:
        policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != sid]

    return change


def _statement(policy: Policy, sid: str) -> dict[str, Any]:
    return next(s for s in policy["Statement"] if s.get("Sid") == sid)


def _other_prefix_tag(policy: Policy) -> None:
    _statement(policy, "UseTokenSigningKeys")["Condition"]["StringEquals"]["aws:ResourceTag/credport:prefix"] = "other"


def _old_logs_resource(policy: Policy) -> None:
    # The Logs resource before issue #19: chalice names the API handler credport-dev, which it does not match.
    _statement(policy, "Logs")["Resource"] = "arn:aws:logs:*:*:log-group:/aws/lambda/credport-dev-*"


def _purge_under_autoid_only(policy: Policy) -> None:
    _statement(policy, "ListVersionsToPurge")["Condition"]["StringLike"]["s3:prefix"] = "autoid/*"


ALL = (
    "api_handler",
    "bearer",
    "key_events",
    "rotate_autoid_keys",
    "rotate_session_key",
    "rotate_signing_keys",
    "rotate_transfer_secrets",
    "s3_object_events",
)
KEY_USERS = ("api_handler", "rotate_signing_keys")
S3_EVENTS_ONLY = ("s3_object_events",)
SENDERS = ("api_handler", "rotate_transfer_secrets", "s3_object_events")
MUTATIONS: dict[str, tuple[Callable[[Policy], None], dict[str, tuple[str, ...]]]] = {
    # A statement removed: exactly the calls whose only grant it was.
    "no DataKeyThroughS3": (
        _without("DataKeyThroughS3"),
        {
            "transfer.inbox.read": S3_EVENTS_ONLY,
            "transfer.inbox.receipt": S3_EVENTS_ONLY,
            "transfer.inbox.move-copy": S3_EVENTS_ONLY,
            "transfer.quarantine.reason": S3_EVENTS_ONLY,
            "transfer.quarantine.copy": S3_EVENTS_ONLY,
            "transfer.clients.read": S3_EVENTS_ONLY,
            "transfer.send.seal": SENDERS,
            "autoid.entropy.read": ("api_handler",),
            "autoid.entropy.write": ("rotate_autoid_keys",),
        },
    ),
    "no PointTokenSigningAliases": (
        _without("PointTokenSigningAliases"),
        {
            "tokens.kms.update-alias": KEY_USERS,
            "tokens.kms.create-alias": KEY_USERS,
            "tokens.kms.delete-alias": KEY_USERS,
        },
    ),
    "no AsyncFailureRecords": (
        _without("AsyncFailureRecords"),
        {
            "lambda.async-failure-destination": (
                "key_events",
                "rotate_autoid_keys",
                "rotate_signing_keys",
                "rotate_transfer_secrets",
            )
        },
    ),
    # A condition value changed.
    "signing keys tagged for another prefix": (
        _other_prefix_tag,
        dict.fromkeys(
            (
                "tokens.kms.roles",
                "tokens.kms.revoke-state",
                "tokens.kms.found-describe",
                "tokens.kms.found-policy",
                "tokens.kms.public-key",
                "tokens.kms.update-alias",
                "tokens.kms.create-alias",
                "tokens.kms.delete-alias",
                "tokens.kms.disable",
                "tokens.kms.retire",
            ),
            KEY_USERS,
        )
        | {"tokens.kms.sign": ("api_handler",)},
    ),
    "purges allowed under autoid/ only": (_purge_under_autoid_only, {"transfer.clients.purge-list": S3_EVENTS_ONLY}),
    "the Logs resource before issue #19": (_old_logs_resource, {"lambda.logs": ("api_handler",)}),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_missing_permission_fails_exactly_the_calls_that_need_it(mutation: str) -> None:
    change, expected = MUTATIONS[mutation]
    d = deployment("dev")
    policy = copy.deepcopy(policy_of(d, "api_handler"))
    change(policy)
    lost = _unexpected(evaluate("dev", policies=dict.fromkeys(ALL, policy)))
    assert {(o.entry, o.function) for o in lost} == {(e, f) for e, functions in expected.items() for f in functions}
    assert all(o.decision is Decision.NONE for o in lost)
    if mutation == "signing keys tagged for another prefix":
        # A key this function has just made is still usable: its key policy grants its creator.
        assert {o.scenario for o in lost} == {ESTABLISHED}


def test_resource_policies_take_part_in_the_decision() -> None:
    # The transfer bucket's policy denies plain HTTP (TlsOnly): the same request over HTTP is refused by it.
    inbox = next(e for e in CATALOG if e.id == "transfer.inbox.read")
    over_http = dataclasses.replace(
        inbox,
        access=tuple(dataclasses.replace(a, context={**a.context, "aws:SecureTransport": False}) for a in inbox.access),
    )
    decisions = {o.request.action: o.decision for o in evaluate("dev", [over_http])}
    assert decisions == {"s3:GetObject": Decision.DENY, "kms:Decrypt": Decision.ALLOW}


def test_each_functions_policy_and_role_follow_chalice_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.permissions import model

    config = copy.deepcopy(model._chalice_config())
    config["stages"]["dev"]["lambda_functions"] = {"bearer": {"iam_policy_file": "policy-dev-bearer.json"}}
    monkeypatch.setattr(model, "_chalice_config", lambda: config)
    d = deployment("dev")
    assert d.policy_file("bearer").name == "policy-dev-bearer.json"
    assert d.policy_file("api_handler").name == "policy-dev.json"
    # chalice with autogen_policy false: a role per function, whatever the policy file (appgraph._create_role_reference)
    assert (d.role_name("bearer"), d.role_name("api_handler")) == ("credport-dev-bearer", "credport-dev-api_handler")
    config["autogen_policy"] = True
    assert d.role_name("bearer") == d.role_name("api_handler") == "credport-dev"
