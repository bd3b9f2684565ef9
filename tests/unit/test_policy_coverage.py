"""Every AWS call of every Lambda function is allowed by that function's IAM policy, as AWS decides, conditions
included, for every stage; every statement of each function's policy is needed by a call of that very function (one
policy file and one role per function: .chalice/config.json); and removing a permission fails exactly the calls
that need it. The calls are tests.permissions' catalog (test_aws_call_catalog.py holds it to the code).

Offline: the catalog's requests go to the embedded IAM engine (local.iam.policy), no moto, no AWS.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib import internal_secrets
from local.iam.policy import Decision, Request, authorize
from tests.permissions import CATALOG
from tests.permissions.check import (
    ACCOUNT,
    ESTABLISHED,
    REGION,
    Outcome,
    denied,
    evaluate,
    policy_of,
    principal_of,
    statement_uses,
)
from tests.permissions.model import FUNCTIONS, SAMPLES, deployment, render

STAGES = ("dev", "prod")
# (function, Sid, action) of the policies that no catalog entry of that function needs, each with the reason. The
# test asserts this is exact (empty: every grant of every function's policy is used by that function).
NOT_NEEDED: dict[tuple[str, str, str], str] = {}


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
    assert sorted(_unused(stage, outcomes[stage]) - set(NOT_NEEDED)) == [], "granted, needed by no call of its function"
    assert sorted(set(NOT_NEEDED) - _unused(stage, outcomes[stage])) == [], "NOT_NEEDED lists pairs a call needs"


def _unused(
    stage: str, outcomes: list[Outcome], policies: dict[str, dict[str, Any]] | None = None
) -> set[tuple[str, str, str]]:
    """(function, Sid, action) of each function's policy that no call of that function is allowed by."""
    d = deployment(stage)
    files = {d.policy_file(f).name: f for f in ALL}
    uses = statement_uses(stage, outcomes, policies=policies)
    return {(files[name], sid, action) for (name, sid, action), entries in uses.items() if not entries}


def _own_policies() -> dict[str, dict[str, Any]]:
    d = deployment("dev")
    return {function: copy.deepcopy(policy_of(d, function)) for function in ALL}


def test_a_statement_no_entry_needs_is_reported(outcomes: dict[str, list[Outcome]]) -> None:
    policies = _own_policies()
    extra = {"Sid": "Extra", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}
    policies["s3_object_events"]["Statement"].append(extra)
    assert _unused("dev", outcomes["dev"], policies) == set()  # Resource *: every GetObject it makes uses it
    # The same grant in a function that reads no object at all is reported, in that function's policy.
    policies["bearer"]["Statement"].append(dict(extra))
    assert _unused("dev", outcomes["dev"], policies) == {("bearer", "Extra", "s3:GetObject")}
    policies["s3_object_events"]["Statement"][-1]["Action"] = ["s3:PutBucketPolicy"]
    assert ("s3_object_events", "Extra", "s3:PutBucketPolicy") in _unused("dev", outcomes["dev"], policies)


def test_every_function_has_a_policy_file_and_role_of_its_own() -> None:
    """.chalice/config.json gives each function of the app, in each stage, its own policy file (no stage-wide
    one a new function would silently inherit), and the prod file is the dev file for the prod prefix."""
    import app
    from local.provision import app_functions
    from tests.permissions.model import _chalice_config

    functions = set(app_functions(app.app).values())
    assert set(ALL) == functions
    for stage in STAGES:
        settings = _chalice_config()["stages"][stage]
        assert "iam_policy_file" not in settings, "a stage-wide policy: a new function would get every grant"
        assert set(settings["lambda_functions"]) == functions
        files = {f: settings["lambda_functions"][f]["iam_policy_file"] for f in functions}
        assert len(set(files.values())) == len(files), "one file per function"
        d = deployment(stage)
        assert len({d.role_name(f) for f in functions}) == len(functions), "one role per function"
    for function in functions:
        dev, prod = (deployment(stage).policy_file(function).read_text() for stage in STAGES)
        assert prod == dev.replace("credport-dev", "credport-prod")


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


ALL = FUNCTIONS
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
            "transfer.clients.purge-record": S3_EVENTS_ONLY,
            "transfer.send.seal": SENDERS,
            "autoid.entropy.read": ("auto_id",),
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
                "tokens.kms.usable-keys",
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


_SIDS = {
    "no DataKeyThroughS3": "DataKeyThroughS3",
    "no PointTokenSigningAliases": "PointTokenSigningAliases",
    "no AsyncFailureRecords": "AsyncFailureRecords",
    "signing keys tagged for another prefix": "UseTokenSigningKeys",
    "purges allowed under autoid/ only": "ListVersionsToPurge",
    "the Logs resource before issue #19": "Logs",
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_missing_permission_fails_exactly_the_calls_that_need_it(mutation: str) -> None:
    change, expected = MUTATIONS[mutation]
    policies = _own_policies()
    for policy in policies.values():  # every function's policy holding the statement changes
        if any(s.get("Sid") == _SIDS[mutation] for s in policy["Statement"]):
            change(policy)
    lost = _unexpected(evaluate("dev", policies=policies))
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


# --- credport's own secrets: each function reaches exactly those its calls need ---------------------------------

SECRET_ACTIONS = (
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:DeleteSecret",
)


def _kind_arn(kind: Any, prefix: str) -> str:
    name = kind.member(prefix, "sample") if kind.is_namespace else kind.name(prefix)
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"


def _needs(d: Any, function: str, action: str, kind: Any) -> bool:
    """Whether a call of ``function`` in the catalog makes ``action`` on a secret of ``kind``."""
    for entry in CATALOG:
        if function not in entry.functions:
            continue
        for access in entry.access:
            resource = render(access.resource, d, account=ACCOUNT, region=REGION, function=function)
            name = resource.split(":secret:", 1)[-1].removesuffix("-" + SAMPLES["suffix"])
            if access.action == action and ":secret:" in resource and kind.contains(d.prefix, name):
                return True
    return False


@pytest.mark.parametrize("stage", STAGES)
def test_each_function_reaches_exactly_the_internal_secrets_its_calls_need(stage: str) -> None:
    """Every kind of secret credport owns (chalicelib/internal_secrets.py, the list the code names them from: a new
    kind is covered without touching this test), every Secrets Manager action, every function: allowed exactly when
    one of that function's calls needs it. So auto_id, the unauthenticated route's function, cannot read a signing
    key, the session key, the import key or a transfer secret, and only the rotation function writes a session key."""
    d = deployment(stage)
    wrong = []
    for function in ALL:
        principal = principal_of(d, function)
        context = {"aws:PrincipalArn": principal.arn, "aws:PrincipalAccount": ACCOUNT, "aws:SecureTransport": True}
        for kind in internal_secrets.KINDS:
            for action in SECRET_ACTIONS:
                request = Request(action, _kind_arn(kind, d.prefix), principal, context)
                allowed = authorize(request, [policy_of(d, function)]) is Decision.ALLOW
                if allowed != _needs(d, function, action, kind):
                    wrong.append(f"{function}: {action} on {kind.suffix}: {'allowed' if allowed else 'denied'}")
    assert wrong == []
    auto_id = {k.suffix for k in internal_secrets.KINDS if _needs(d, "auto_id", "secretsmanager:GetSecretValue", k)}
    assert auto_id == {"autoid-server-key", "autoid-session-key"}  # what it opens requests and signs sessions with
    writers = {f for f in ALL if _needs(d, f, "secretsmanager:PutSecretValue", internal_secrets.SESSION_KEY)}
    assert writers == {"rotate_session_key"}


@pytest.mark.parametrize(
    "kind", [k for k in internal_secrets.KINDS if k.suffix not in {"autoid-server-key", "autoid-session-key"}]
)
def test_the_auto_id_role_cannot_decrypt_another_secret_through_secrets_manager(kind: Any) -> None:
    """Defence in depth under the GetSecretValue denial: its data-key grant names the secrets it reads (the
    encryption context Secrets Manager sends KMS), so no other secret under the data key can be decrypted."""
    d = deployment("dev")
    principal = principal_of(d, "auto_id")
    context = {
        "aws:PrincipalArn": principal.arn,
        "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
        "kms:ResourceAliases": [f"alias/{d.prefix}/data"],
        "kms:EncryptionContext:SecretARN": _kind_arn(kind, d.prefix),
    }
    request = Request("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{SAMPLES['data-key-id']}", principal, context)
    assert authorize(request, [policy_of(d, "auto_id")]) is not Decision.ALLOW


def test_the_signing_keys_key_policy_names_exactly_the_functions_that_use_them() -> None:
    """A key's key policy names the roles of SIGNING_KEY_FUNCTIONS: exactly the functions with a call on a signing
    key (auto_id, the unauthenticated route's function, is not one of them)."""
    from chalicelib.tokens.kms_keys import SIGNING_KEY_FUNCTIONS
    from tests.permissions.model import Key

    users = {f for e in CATALOG for a in e.access if a.key is Key.SIGNING for f in e.functions}
    assert users == set(SIGNING_KEY_FUNCTIONS)
