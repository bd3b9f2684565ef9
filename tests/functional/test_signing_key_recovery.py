"""A signing key whose creation a crash left unjournaled is found again by its tags, and adopted only if it is one
this deployment made: credport's tags can be copied by any principal allowed kms:CreateKey and kms:TagResource."""

from __future__ import annotations

import json

import pytest

from chalicelib.aws import AwsServices
from chalicelib.tokens.kms_keys import KmsKeyStore, signing_key_policy
from local.provision import Provisioned
from tests.conftest import ACCOUNT_ID

PREFIX = "credport-dev"
API = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{PREFIX}-api_handler/{PREFIX}"
SCHEDULE = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{PREFIX}-rotate_signing_keys/{PREFIX}-rotate_signing_keys"
TAGS = {"credport:prefix": PREFIX, "credport:purpose": "token-signing"}


@pytest.fixture
def store(provisioned: Provisioned, aws: AwsServices) -> KmsKeyStore:
    return KmsKeyStore(aws.kms, PREFIX, "RS256", tagged=aws.tagging, caller_arn=lambda: API)


def _orphan(aws: AwsServices, label: str, *, policy: dict[str, object] | None, spec: str = "RSA_2048") -> str:
    """A key as a crashed run (or someone else) left it: credport's tags for ``label``, and ``policy``."""
    kms = aws.factory.client("kms")
    args = {"Policy": json.dumps(policy)} if policy is not None else {}
    tags = [{"TagKey": k, "TagValue": v} for k, v in {**TAGS, "credport:label": label}.items()]
    made = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY", Tags=tags, **args)
    return str(made["KeyMetadata"]["Arn"])


def test_a_key_another_function_of_the_deployment_made_is_adopted(store: KmsKeyStore, aws: AwsServices) -> None:
    orphan = _orphan(aws, "run-1/pending", policy=signing_key_policy(SCHEDULE, PREFIX))
    assert store.create("run-1/pending") == orphan


@pytest.mark.parametrize(
    "planted",
    [
        {"policy": None},  # AWS's default key policy: not what credport writes
        {"policy": signing_key_policy(f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/intruder/s", PREFIX)},
        {"policy": signing_key_policy(API, PREFIX), "spec": "ECC_NIST_P256"},  # another algorithm
    ],
)
def test_a_key_that_only_carries_the_tags_is_not_adopted(
    store: KmsKeyStore, aws: AwsServices, planted: dict[str, object]
) -> None:
    fake = _orphan(aws, "run-2/pending", **planted)  # type: ignore[arg-type]
    made = store.create("run-2/pending")
    assert made != fake
    policy = json.loads(aws.factory.client("kms").get_key_policy(KeyId=made, PolicyName="default")["Policy"])
    assert policy == signing_key_policy(API, PREFIX)


def test_a_disabled_key_is_not_adopted(store: KmsKeyStore, aws: AwsServices) -> None:
    orphan = _orphan(aws, "run-3/current", policy=signing_key_policy(API, PREFIX))
    aws.factory.client("kms").disable_key(KeyId=orphan.rsplit("/", 1)[1])
    assert store.create("run-3/current") != orphan
