"""local/iam/policy.py: one policy document against one request, and AWS's evaluation logic across identity and
resource policies (same account, cross-account, KMS key policies, the root user), on the AWS documentation's
examples (each test names its page)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.iam.policy import Decision, Principal, Request, UnsupportedCondition, authorize, evaluate_policy

A, B = "111122223333", "444455556666"
ALICE = Principal(arn=f"arn:aws:iam::{A}:user/Alice", account=A)
SESSION = Principal(
    arn=f"arn:aws:iam::{A}:role/ops/deploy", account=A, session_arn=f"arn:aws:sts::{A}:assumed-role/deploy/run-1"
)
ROOT = Principal(arn=f"arn:aws:iam::{A}:root", account=A)
BOB = Principal(arn=f"arn:aws:iam::{B}:user/Bob", account=B)
S3_SERVICE = Principal(arn="s3.amazonaws.com", account="", service="s3.amazonaws.com")
ALLOW, DENY, NONE = Decision.ALLOW, Decision.DENY, Decision.NONE


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def req(action: str, resource: str = "*", principal: Principal | None = ALICE, **context: Any) -> Request:
    """``aws__username="x"`` is the context key ``aws:username``."""
    return Request(action, resource, principal, {k.replace("__", ":"): v for k, v in context.items()})


# ---- one document --------------------------------------------------------------------------------------------


def test_action_is_case_insensitive_with_wildcards() -> None:
    # IAM User Guide, "IAM JSON policy elements: Action": "iam:*AccessKey*" covers every access key action.
    policy = doc(allow("iam:*AccessKey*"))
    assert evaluate_policy(policy, req("iam:CreateAccessKey")) is ALLOW
    assert evaluate_policy(policy, req("IAM:listaccesskeys")) is ALLOW
    assert evaluate_policy(policy, req("iam:CreateUser")) is NONE
    assert evaluate_policy(doc(allow("s3:Get?bject")), req("s3:GetObject")) is ALLOW


def test_not_action_applies_to_every_other_action() -> None:
    # IAM User Guide, "IAM JSON policy elements: NotAction": allow everything except IAM.
    policy = doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate_policy(policy, req("s3:GetObject")) is ALLOW
    assert evaluate_policy(policy, req("iam:CreateUser")) is NONE


def test_resource_is_case_sensitive_and_escapes_regex_metacharacters() -> None:
    policy = doc(allow("s3:GetObject", "arn:aws:s3:::my.bucket/David/*"))
    assert evaluate_policy(policy, req("s3:GetObject", "arn:aws:s3:::my.bucket/David/a.txt")) is ALLOW
    assert evaluate_policy(policy, req("s3:GetObject", "arn:aws:s3:::my.bucket/david/a.txt")) is NONE
    # moto's IAMPolicyStatement._match turns "." into "any character": "myxbucket" would match there.
    assert evaluate_policy(policy, req("s3:GetObject", "arn:aws:s3:::myxbucket/David/a.txt")) is NONE


def test_a_request_without_a_resource_matches_only_star() -> None:
    assert evaluate_policy(doc(allow("kms:ListKeys")), req("kms:ListKeys")) is ALLOW
    assert evaluate_policy(doc(allow("kms:ListKeys", "arn:aws:kms:*:*:key/*")), req("kms:ListKeys")) is NONE


def test_not_resource() -> None:
    # IAM User Guide, "IAM JSON policy elements: NotResource": deny everything outside one bucket.
    policy = doc(
        allow("s3:*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::HRBucket/Payroll/*"]}
    )
    assert evaluate_policy(policy, req("s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/p.csv")) is ALLOW
    assert evaluate_policy(policy, req("s3:GetObject", "arn:aws:s3:::HRBucket/Other/p.csv")) is DENY


def test_policy_variables_in_resource() -> None:
    # IAM User Guide, "IAM policy elements: Variables and tags": each user's own "home directory".
    policy = doc(allow(["s3:GetObject", "s3:PutObject"], ["arn:aws:s3:::mybucket/${aws:username}/*"]))
    david = "arn:aws:s3:::mybucket/David/notes.txt"
    assert evaluate_policy(policy, req("s3:GetObject", david, aws__username="David")) is ALLOW
    assert evaluate_policy(policy, req("s3:GetObject", david, aws__username="Adele")) is NONE
    # "If AWS cannot resolve a variable, this might cause the entire statement to be invalid": no match.
    assert evaluate_policy(policy, req("s3:GetObject", david)) is NONE
    # Without Version 2012-10-17 variables are literal strings.
    old = doc(allow("s3:GetObject", "arn:aws:s3:::mybucket/${aws:username}/*"), version="2008-10-17")
    assert evaluate_policy(old, req("s3:GetObject", david, aws__username="David")) is NONE
    literal = "arn:aws:s3:::mybucket/${aws:username}/notes.txt"
    assert evaluate_policy(old, req("s3:GetObject", literal, aws__username="David")) is ALLOW


def test_an_unresolved_variable_never_turns_a_deny_on() -> None:
    policy = doc(allow("s3:*"), deny("s3:*", "arn:aws:s3:::b/${aws:username}/*"))
    assert evaluate_policy(policy, req("s3:GetObject", "arn:aws:s3:::b/x/y")) is ALLOW


def test_statement_and_elements_as_object_or_list_and_document_as_json() -> None:
    single = {"Version": "2012-10-17", "Statement": allow("s3:GetObject", "arn:aws:s3:::b/*")}
    assert evaluate_policy(single, req("s3:GetObject", "arn:aws:s3:::b/k")) is ALLOW
    assert evaluate_policy(json.dumps(single), req("s3:GetObject", "arn:aws:s3:::b/k")) is ALLOW
    listed = doc(allow(["s3:PutObject", "s3:GetObject"], ["arn:aws:s3:::a/*", "arn:aws:s3:::b/*"]))
    assert evaluate_policy(listed, req("s3:GetObject", "arn:aws:s3:::b/k")) is ALLOW


def test_explicit_deny_wins_in_a_document() -> None:
    # IAM User Guide, "Policy evaluation logic": an explicit deny in any policy overrides any allow.
    policy = doc(allow("s3:*"), deny("s3:DeleteObject"))
    assert evaluate_policy(policy, req("s3:DeleteObject", "arn:aws:s3:::b/k")) is DENY
    assert evaluate_policy(policy, req("s3:GetObject", "arn:aws:s3:::b/k")) is ALLOW


def test_condition_decides_the_statement() -> None:
    # IAM User Guide, "IAM JSON policy elements: Condition operators": s3:max-keys up to 10.
    policy = doc(
        allow(
            "s3:ListBucket", "arn:aws:s3:::example_bucket", Condition={"NumericLessThanEquals": {"s3:max-keys": "10"}}
        )
    )
    assert evaluate_policy(policy, req("s3:ListBucket", "arn:aws:s3:::example_bucket")) is NONE
    bucket = "arn:aws:s3:::example_bucket"
    assert evaluate_policy(policy, Request("s3:ListBucket", bucket, ALICE, {"s3:max-keys": "10"})) is ALLOW
    assert evaluate_policy(policy, Request("s3:ListBucket", bucket, ALICE, {"s3:max-keys": "11"})) is NONE


def test_dynamodb_leading_keys_fine_grained_access() -> None:
    # Amazon DynamoDB Developer Guide, "Using IAM policy conditions for fine-grained access control".
    table = f"arn:aws:dynamodb:us-west-2:{A}:table/GameScores"
    policy = doc(
        allow(
            ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"],
            table,
            Condition={
                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${cognito-identity.amazonaws.com:sub}"]}
            },
        )
    )
    mine = {"dynamodb:LeadingKeys": ["us-east-1:42"], "cognito-identity.amazonaws.com:sub": "us-east-1:42"}
    assert evaluate_policy(policy, Request("dynamodb:GetItem", table, ALICE, mine)) is ALLOW
    theirs = {**mine, "dynamodb:LeadingKeys": ["us-east-1:42", "us-east-1:7"]}
    assert evaluate_policy(policy, Request("dynamodb:Query", table, ALICE, theirs)) is NONE


@pytest.mark.parametrize(
    "statement",
    [
        allow("s3:*", Condition={"StringEqualz": {"aws:TagKeys": "a"}}),
        allow("s3:*", Condition={"StringEquals": {"ec2:InstanceType": "t2.micro"}}),
        allow("sqs:*", Condition={"StringEquals": {"ec2:InstanceType": "t2.micro"}}),  # not even this action
    ],
)
def test_unknown_operator_or_key_raises(statement: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedCondition):
        evaluate_policy(doc(allow("s3:GetObject"), statement), req("s3:GetObject"))


def test_malformed_statement_raises() -> None:
    with pytest.raises(UnsupportedCondition):
        evaluate_policy(doc({"Effect": "Permit", "Action": "*", "Resource": "*"}), req("s3:GetObject"))
    with pytest.raises(UnsupportedCondition):
        evaluate_policy(doc(allow("*", Resources="*")), req("s3:GetObject"))


# ---- principals ----------------------------------------------------------------------------------------------


def resource_policy(
    principal: Any, action: str = "s3:GetObject", effect: str = "Allow", **extra: Any
) -> dict[str, Any]:
    return doc({"Effect": effect, "Principal": principal, "Action": action, "Resource": "*", **extra})


@pytest.mark.parametrize(
    ("element", "principal", "expected"),
    [
        # "AWS JSON policy elements: Principal": everyone, accounts, users, roles, role sessions, services.
        ("*", None, ALLOW),
        ({"AWS": "*"}, ALICE, ALLOW),
        ({"AWS": "*"}, None, NONE),
        ({"AWS": A}, ALICE, ALLOW),
        ({"AWS": f"arn:aws:iam::{A}:root"}, SESSION, ALLOW),
        ({"AWS": f"arn:aws:iam::{A}:root"}, BOB, NONE),
        ({"AWS": [f"arn:aws:iam::{B}:user/Carol", f"arn:aws:iam::{A}:user/Alice"]}, ALICE, ALLOW),
        ({"AWS": f"arn:aws:iam::{A}:user/alice"}, ALICE, NONE),
        ({"AWS": f"arn:aws:iam::{A}:role/ops/deploy"}, SESSION, ALLOW),  # a role ARN names its sessions
        ({"AWS": f"arn:aws:sts::{A}:assumed-role/deploy/run-1"}, SESSION, ALLOW),
        ({"AWS": f"arn:aws:sts::{A}:assumed-role/deploy/run-2"}, SESSION, NONE),
        ({"AWS": f"arn:aws:iam::{A}:user/*"}, ALICE, NONE),  # no wildcards inside a principal ARN
        ({"Service": "s3.amazonaws.com"}, S3_SERVICE, ALLOW),
        ({"Service": "s3.amazonaws.com"}, ALICE, NONE),
        ({"AWS": A}, S3_SERVICE, NONE),
        ({"Federated": "accounts.google.com"}, Principal("x", A, federated="accounts.google.com"), ALLOW),
    ],
)
def test_principal_element(element: Any, principal: Principal | None, expected: Decision) -> None:
    assert evaluate_policy(resource_policy(element), req("s3:GetObject", principal=principal)) is expected


def test_not_principal_is_refused_not_guessed() -> None:
    """AWS matches NotPrincipal against every principal of a session's chain (the session ARN, its role, the account:
    IAM User Guide, "AWS JSON policy elements: NotPrincipal"). A partial model excluded too much (a Deny naming only a
    role spared its sessions): refused loudly instead, credport's policies use none."""
    policy = doc(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"},
        {
            "Effect": "Deny",
            "NotPrincipal": {"AWS": [f"arn:aws:iam::{A}:user/Alice", A]},
            "Action": "s3:*",
            "Resource": "*",
        },
    )
    with pytest.raises(UnsupportedCondition, match="NotPrincipal"):
        evaluate_policy(policy, req("s3:GetObject", principal=ALICE))


def test_unsupported_principal_type_raises() -> None:
    with pytest.raises(UnsupportedCondition, match="CanonicalUser"):
        evaluate_policy(resource_policy({"CanonicalUser": "79a59df900b949e55d96a1e698fbace"}), req("s3:GetObject"))


# ---- authorize: identity and resource policies -----------------------------------------------------------------

OBJECT = "arn:aws:s3:::bucket/key"
READ = doc(allow("s3:GetObject", "arn:aws:s3:::bucket/*"))


def test_policy_evaluation_logic_single_account() -> None:
    # IAM User Guide, "Policy evaluation logic": deny by default, an allow in an identity OR resource policy, an
    # explicit deny anywhere overrides it.
    r = req("s3:GetObject", OBJECT)
    assert authorize(r, []) is NONE
    assert authorize(r, [READ]) is ALLOW
    assert authorize(r, [READ, doc(deny("s3:*"))]) is DENY
    assert authorize(r, [READ], resource_policy({"AWS": "*"}, effect="Deny")) is DENY
    assert authorize(r, [], resource_policy({"AWS": f"arn:aws:iam::{A}:user/Alice"})) is ALLOW


def test_a_resource_policy_naming_only_the_account_delegates_to_iam() -> None:
    # "AWS JSON policy elements: Principal": an account principal means the account's IAM policies decide.
    r = req("s3:GetObject", OBJECT)
    assert authorize(r, [], resource_policy({"AWS": A})) is NONE
    assert authorize(r, [], resource_policy({"AWS": f"arn:aws:iam::{A}:root"})) is NONE
    assert authorize(r, [READ], resource_policy({"AWS": A})) is ALLOW


def test_cross_account_needs_both() -> None:
    # IAM User Guide, "Cross-account policy evaluation logic": the identity policy in the requesting account AND the
    # resource policy in the trusting account must both allow.
    r = Request("s3:GetObject", OBJECT, BOB)
    granted = resource_policy({"AWS": B})
    assert authorize(r, [READ], granted, resource_account=A) is ALLOW
    assert authorize(r, [READ], None, resource_account=A) is NONE
    assert authorize(r, [], granted, resource_account=A) is NONE
    assert authorize(r, [], resource_policy({"AWS": BOB.arn}), resource_account=A) is NONE
    queue = f"arn:aws:sqs:us-east-1:{A}:q"  # the owning account read from the ARN
    assert authorize(Request("sqs:SendMessage", queue, BOB), [doc(allow("sqs:*"))]) is NONE


def test_root_user_is_denied_only_by_explicit_denies() -> None:
    # The template's TlsOnly bucket policy: Deny s3:* when aws:SecureTransport is false, for every principal.
    tls_only = resource_policy("*", "s3:*", "Deny", Condition={"Bool": {"aws:SecureTransport": "false"}})
    assert authorize(req("s3:PutObject", OBJECT, ROOT, aws__SecureTransport=True), [], tls_only) is ALLOW
    assert authorize(req("s3:PutObject", OBJECT, ROOT, aws__SecureTransport=False), [], tls_only) is DENY
    assert authorize(req("iam:CreateRole", f"arn:aws:iam::{A}:role/x", ROOT), []) is ALLOW
    assert authorize(req("s3:GetObject", OBJECT, ALICE, aws__SecureTransport=False), [READ], tls_only) is DENY


def test_anonymous_and_service_principals_need_the_resource_policy() -> None:
    # template.yaml S3EventsQueuePolicy: S3 may send to the queue for the transfer bucket of this account only.
    queue = f"arn:aws:sqs:us-east-1:{A}:credport-dev-s3-events"
    policy = doc(
        {
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue,
            "Condition": {
                "ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::credport-dev-transfer-{A}"},
                "StringEquals": {"aws:SourceAccount": A},
            },
        }
    )
    context = {"aws:SourceArn": f"arn:aws:s3:::credport-dev-transfer-{A}", "aws:SourceAccount": A}
    assert authorize(Request("sqs:SendMessage", queue, S3_SERVICE, context), [], policy) is ALLOW
    other = {**context, "aws:SourceArn": "arn:aws:s3:::someone-else"}
    assert authorize(Request("sqs:SendMessage", queue, S3_SERVICE, other), [], policy) is NONE
    assert authorize(Request("s3:GetObject", OBJECT, None), [], resource_policy("*")) is ALLOW
    assert authorize(Request("s3:GetObject", OBJECT, None), []) is NONE


def test_identity_policy_with_principal_and_resource_policy_without_raise() -> None:
    with pytest.raises(UnsupportedCondition, match="identity"):
        authorize(req("s3:GetObject"), [resource_policy("*")])
    with pytest.raises(UnsupportedCondition, match="resource"):
        authorize(req("s3:GetObject"), [], READ)


# ---- authorize: KMS key policies -------------------------------------------------------------------------------

KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# KMS Developer Guide, "Default key policy": the account root gets kms:*, which lets IAM policies grant access.
DEFAULT_KEY_POLICY = doc(
    {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
)
SIGN = doc(allow("kms:Sign", "arn:aws:kms:*:*:key/*"))


def test_default_key_policy_lets_iam_policies_decide() -> None:
    r = Request("kms:Sign", KEY, SESSION)
    assert authorize(r, [SIGN], DEFAULT_KEY_POLICY, key_policy=True) is ALLOW
    assert authorize(r, [], DEFAULT_KEY_POLICY, key_policy=True) is NONE
    assert authorize(Request("kms:Sign", KEY, ROOT), [], DEFAULT_KEY_POLICY, key_policy=True) is ALLOW


def test_a_key_policy_without_the_account_root_ignores_iam_policies() -> None:
    # KMS Developer Guide, "Key policies": "Unless the key policy explicitly allows it, you cannot use IAM policies
    # to allow access to a KMS key."
    only_deploy = doc({"Effect": "Allow", "Principal": {"AWS": SESSION.arn}, "Action": "kms:Sign", "Resource": "*"})
    assert authorize(Request("kms:Sign", KEY, SESSION), [], only_deploy, key_policy=True) is ALLOW
    assert authorize(Request("kms:Sign", KEY, ALICE), [SIGN], only_deploy, key_policy=True) is NONE
    assert authorize(Request("kms:Sign", KEY, ROOT), [], only_deploy, key_policy=True) is NONE
    assert authorize(Request("kms:Sign", KEY, SESSION), [doc(deny("kms:*"))], only_deploy, key_policy=True) is DENY


def test_cross_account_key_use_needs_key_policy_and_iam_policy() -> None:
    # KMS Developer Guide, "Allowing users in other accounts to use a KMS key".
    shared = doc(
        DEFAULT_KEY_POLICY["Statement"][0],
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:root"}, "Action": "kms:Sign", "Resource": "*"},
    )
    r = Request("kms:Sign", KEY, BOB)
    assert authorize(r, [SIGN], shared, key_policy=True) is ALLOW
    assert authorize(r, [], shared, key_policy=True) is NONE
    assert authorize(r, [SIGN], DEFAULT_KEY_POLICY, key_policy=True) is NONE


def test_key_policy_conditions_are_evaluated() -> None:
    tagged = doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": SESSION.arn},
            "Action": "kms:Sign",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/credport:prefix": "credport-dev"}},
        }
    )
    ok = Request("kms:Sign", KEY, SESSION, {"aws:ResourceTag/credport:prefix": "credport-dev"})
    assert authorize(ok, [], tagged, key_policy=True) is ALLOW
    assert authorize(Request("kms:Sign", KEY, SESSION), [], tagged, key_policy=True) is NONE


def test_key_policy_mode_needs_a_policy() -> None:
    with pytest.raises(ValueError, match="key_policy"):
        authorize(Request("kms:Sign", KEY, SESSION), [SIGN], key_policy=True)
