"""The key policy a new token-signing key is created with (chalicelib.tokens.kms_keys.signing_key_policy)."""

from __future__ import annotations

import pytest

from chalicelib.tokens.kms_keys import CREATOR_ACTIONS, signing_key_policy

ACCOUNT = "123456789012"


def _statements(caller: str) -> dict[str, dict[str, object]]:
    return {s["Sid"]: s for s in signing_key_policy(caller)["Statement"]}


def test_the_account_keeps_administering_the_key_as_with_the_default_policy() -> None:
    root = _statements(f"arn:aws:sts::{ACCOUNT}:assumed-role/credport-dev/credport-dev")["AccountAdministers"]
    assert root == {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def test_a_role_session_is_granted_by_its_role_whatever_the_roles_path() -> None:
    creator = _statements(f"arn:aws:sts::{ACCOUNT}:assumed-role/credport-dev/credport-dev")["CreatorSignsAndRotates"]
    assert creator["Principal"] == {"AWS": "*"}
    assert creator["Condition"] == {
        "StringEquals": {"aws:PrincipalAccount": ACCOUNT},
        "ArnLike": {
            "aws:PrincipalArn": [
                f"arn:aws:iam::{ACCOUNT}:role/credport-dev",
                f"arn:aws:iam::{ACCOUNT}:role/*/credport-dev",
            ]
        },
    }
    assert creator["Action"] == list(CREATOR_ACTIONS)
    # What KMS's lockout safety check needs (credport never bypasses it), and nothing administrative beyond it.
    assert "kms:PutKeyPolicy" in CREATOR_ACTIONS
    assert not {"kms:*", "kms:CreateGrant", "kms:Decrypt", "kms:Encrypt"} & set(CREATOR_ACTIONS)


def test_a_user_is_granted_by_its_exact_arn_and_other_partitions_are_kept() -> None:
    user = f"arn:aws-us-gov:iam::{ACCOUNT}:user/ops/admin"
    statements = _statements(user)
    assert statements["CreatorSignsAndRotates"]["Condition"]["ArnLike"] == {"aws:PrincipalArn": [user]}  # type: ignore[index]
    assert statements["AccountAdministers"]["Principal"] == {"AWS": f"arn:aws-us-gov:iam::{ACCOUNT}:root"}


def test_the_root_user_needs_no_statement_of_its_own() -> None:
    assert set(_statements(f"arn:aws:iam::{ACCOUNT}:root")) == {"AccountAdministers"}


@pytest.mark.parametrize(
    "caller",
    ["", "not-an-arn", f"arn:aws:s3:::{ACCOUNT}", f"arn:aws:iam::{ACCOUNT}", "arn:aws:iam::12:user/x", "*"],
)
def test_anything_but_a_principal_arn_is_refused(caller: str) -> None:
    with pytest.raises(ValueError, match="not an IAM or STS principal ARN"):
        signing_key_policy(caller)
