"""The key policy a new token-signing key is created with (chalicelib.tokens.kms_keys.signing_key_policy)."""

from __future__ import annotations

import pytest

from chalicelib.tokens.kms_keys import CREATOR_ONLY_ACTIONS, SIGNER_ACTIONS, SIGNING_KEY_FUNCTIONS, signing_key_policy
from local.iam.policy import Decision, Principal, Request, authorize

ACCOUNT = "123456789012"
PREFIX = "credport-dev"
ROLE_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/credport-dev-api_handler/credport-dev"
ROTATOR_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/credport-dev-rotate_signing_keys/credport-dev"
SIGNERS = "CreatorAndFunctionsSignAndRotate"
CREATOR = "CreatorAloneChangesKeyPolicy"


def _statements(caller: str) -> dict[str, dict[str, object]]:
    return {s["Sid"]: s for s in signing_key_policy(caller, PREFIX)["Statement"]}


def _decision(caller: str, role_arn: str, action: str = "kms:Sign", account: str = ACCOUNT) -> Decision:
    """What KMS decides for a session of ``role_arn`` that no IAM policy grants anything: the key policy alone (a
    role's sessions carry its ARN, path included, in aws:PrincipalArn; the account statement delegates to IAM)."""
    name = role_arn.rsplit("/", 1)[1]
    session = f"arn:aws:sts::{account}:assumed-role/{name}/s"
    context = {"aws:PrincipalArn": role_arn, "aws:PrincipalAccount": account}
    request = Request(action, f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k", Principal(role_arn, account, session), context)
    return authorize(request, [], signing_key_policy(caller, PREFIX), resource_account=ACCOUNT, key_policy=True)


def test_the_account_keeps_administering_the_key_as_with_the_default_policy() -> None:
    assert _statements(ROLE_SESSION)["AccountAdministers"] == {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def test_the_creator_and_every_function_that_uses_signing_keys_may_use_the_key_at_once() -> None:
    statements = _statements(f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice")
    assert list(statements) == ["AccountAdministers", SIGNERS, CREATOR]
    signers = statements[SIGNERS]
    assert signers["Principal"] == {"AWS": "*"}
    assert signers["Action"] == list(SIGNER_ACTIONS)
    assert signers["Condition"] == {
        "StringEquals": {"aws:PrincipalAccount": ACCOUNT},
        "ArnLike": {
            "aws:PrincipalArn": [
                f"arn:aws:iam::{ACCOUNT}:role/{role}"
                for name in ("ops", *(f"{PREFIX}-{f}" for f in SIGNING_KEY_FUNCTIONS))
                for role in (name, f"*/{name}")
            ]
        },
    }
    assert SIGNING_KEY_FUNCTIONS == ("api_handler", "rotate_signing_keys")
    assert not {"kms:*", "kms:PutKeyPolicy", "kms:CreateGrant", "kms:Decrypt", "kms:Encrypt"} & set(SIGNER_ACTIONS)


def test_only_the_creator_may_change_the_key_policy() -> None:
    # What KMS's lockout safety check asks of the principal calling CreateKey (credport never bypasses it), granted
    # to that principal alone: not to the functions' roles, the internet-facing API handler's among them.
    creator = _statements(f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice")[CREATOR]
    assert CREATOR_ONLY_ACTIONS == ("kms:PutKeyPolicy",)
    assert creator == {
        "Sid": CREATOR,
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": ["kms:PutKeyPolicy"],
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:PrincipalAccount": ACCOUNT},
            "ArnLike": {"aws:PrincipalArn": [f"arn:aws:iam::{ACCOUNT}:role/ops", f"arn:aws:iam::{ACCOUNT}:role/*/ops"]},
        },
    }


@pytest.mark.parametrize(
    ("caller", "role", "expected"),
    [
        (ROLE_SESSION, "credport-dev-api_handler", Decision.ALLOW),  # the bootstrap's creator: the lockout check
        (ROLE_SESSION, "team/credport-dev-api_handler", Decision.ALLOW),
        (ROLE_SESSION, "credport-dev-rotate_signing_keys", Decision.NONE),
        (ROTATOR_SESSION, "credport-dev-rotate_signing_keys", Decision.ALLOW),
        (ROTATOR_SESSION, "credport-dev-api_handler", Decision.NONE),  # the API handler never rewrites a rotated key
        (f"arn:aws:iam::{ACCOUNT}:user/ops/admin", "credport-dev-api_handler", Decision.NONE),
        (f"arn:aws:iam::{ACCOUNT}:user/ops/admin", "credport-dev-rotate_signing_keys", Decision.NONE),
    ],
)
def test_put_key_policy_is_allowed_by_the_key_policy_to_its_creator_alone(
    caller: str, role: str, expected: Decision
) -> None:
    assert _decision(caller, f"arn:aws:iam::{ACCOUNT}:role/{role}", "kms:PutKeyPolicy") is expected
    assert _decision(caller, f"arn:aws:iam::{ACCOUNT}:role/{role}", "kms:Sign") is Decision.ALLOW


@pytest.mark.parametrize(
    "role",
    [
        "credport-dev-api_handler",  # a session of the function that made it
        "credport-dev-rotate_signing_keys",  # made by the API handler, rotated by the schedule
        "team/credport-dev-rotate_signing_keys",  # any path
    ],
)
def test_the_signing_functions_roles_are_allowed_by_the_key_policy_alone(role: str) -> None:
    assert _decision(ROLE_SESSION, f"arn:aws:iam::{ACCOUNT}:role/{role}") is Decision.ALLOW


@pytest.mark.parametrize(
    ("role", "account"),
    [
        ("credport-dev-autoid-reader", ACCOUNT),  # a role auto-id serves, named under the prefix: never a signer
        ("credport-dev-s3_object_events", ACCOUNT),  # the deployment's other functions
        ("credport-dev-api_handler-x", ACCOUNT),
        ("credport-prod-api_handler", ACCOUNT),  # another deployment in the same account
        ("credport-dev-api_handler", "210987654321"),  # the same name in another account
    ],
)
def test_no_other_role_is_granted_by_the_key_policy(role: str, account: str) -> None:
    assert _decision(ROLE_SESSION, f"arn:aws:iam::{account}:role/{role}", account=account) is Decision.NONE


def test_a_user_is_granted_by_its_exact_arn_and_other_partitions_are_kept() -> None:
    user = f"arn:aws-us-gov:iam::{ACCOUNT}:user/ops/admin"
    statements = _statements(user)
    arns = statements[SIGNERS]["Condition"]["ArnLike"]["aws:PrincipalArn"]  # type: ignore[index]
    assert arns[0] == user
    assert statements[CREATOR]["Condition"]["ArnLike"]["aws:PrincipalArn"] == [user]  # type: ignore[index]
    assert all(a.startswith(f"arn:aws-us-gov:iam::{ACCOUNT}:") for a in arns)
    assert statements["AccountAdministers"]["Principal"] == {"AWS": f"arn:aws-us-gov:iam::{ACCOUNT}:root"}


def test_the_root_user_is_covered_by_the_account_statement() -> None:
    statements = _statements(f"arn:aws:iam::{ACCOUNT}:root")
    arns = statements[SIGNERS]["Condition"]["ArnLike"]  # type: ignore[index]
    assert f"arn:aws:iam::{ACCOUNT}:root" not in arns["aws:PrincipalArn"]
    assert CREATOR not in statements  # the root user may always change a key policy of its account


@pytest.mark.parametrize(
    "caller",
    ["", "not-an-arn", f"arn:aws:s3:::{ACCOUNT}", f"arn:aws:iam::{ACCOUNT}", "arn:aws:iam::12:user/x", "*"],
)
def test_anything_but_a_principal_arn_is_refused(caller: str) -> None:
    with pytest.raises(ValueError, match="not an IAM or STS principal ARN"):
        signing_key_policy(caller, PREFIX)
