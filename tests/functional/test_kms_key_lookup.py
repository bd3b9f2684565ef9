"""The kms signer's key ring reads each role with one GetPublicKey of its alias: the key behind it that can sign and
its public half in one call (a cold container's first token makes three KMS calls before its Sign, not five), with
the same answers as a DescribeKey of each alias followed by a GetPublicKey of each key.

AWS refuses GetPublicKey for a disabled key or one pending deletion (DisabledException, KMSInvalidStateException:
KMS Developer Guide, "Key states of AWS KMS keys"); so does the embedded KMS (local/kms_sign.py), which these run on.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import AwsRejected, AwsServices, KeyService
from chalicelib.tokens.keyring import KeyRing, alias_name
from chalicelib.tokens.kms_keys import KmsKeyStore

PREFIX = "credport-dev"
KEY_SET = "es256"  # not the legacy algorithm's: its aliases are alias/<prefix>/signing/es256/<role>
CALLER = "arn:aws:sts::123456789012:assumed-role/credport-dev-api_handler/credport-dev"


class AwsLikeKms:
    """A KMS client that records each call, and denies GetPublicKey of the aliases in ``denied``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []
        self.denied: set[str] = set()  # aliases whose GetPublicKey AWS would deny (AccessDeniedException)

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self._client, name)

    def get_public_key(self, **kwargs: Any) -> Any:
        self.calls.append("get_public_key")
        if kwargs["KeyId"] in self.denied:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetPublicKey")
        return self._client.get_public_key(**kwargs)


@pytest.fixture
def kms(aws: AwsServices) -> AwsLikeKms:
    return AwsLikeKms(aws.factory.client("kms"))


def store_over(kms: AwsLikeKms, aws: AwsServices) -> KmsKeyStore:
    return KmsKeyStore(KeyService(kms), PREFIX, "ES256", tagged=aws.tagging, caller_arn=lambda: CALLER, key_set=KEY_SET)


def key_behind(aws: AwsServices, role: str, *, spec: str = "ECC_NIST_P256", usage: str = "SIGN_VERIFY") -> str:
    client = aws.factory.client("kms")
    arn = str(client.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["Arn"])
    client.create_alias(AliasName=alias_name(PREFIX, role, KEY_SET), TargetKeyId=arn)
    return arn


def same_key(reported: str | None, arn: str) -> bool:
    """AWS's GetPublicKey names the key by its ARN; moto's by its bare id."""
    return reported is not None and arn.endswith(reported.rsplit("/", 1)[-1])


def test_the_key_ring_reads_each_role_with_one_call_and_opens_its_keys_with_none(
    kms: AwsLikeKms, aws: AwsServices
) -> None:
    current, pending = key_behind(aws, "current"), key_behind(aws, "pending")  # no previous: a first rotation
    ring = KeyRing(store_over(kms, aws))
    key = ring.current()
    assert kms.calls == ["get_public_key"] * 3
    assert same_key(key.key_id, current)
    assert [k.role for k in ring.published()] == ["current", "pending"]
    assert same_key(ring.keys()["pending"].key_id, pending)
    assert kms.calls == ["get_public_key"] * 3  # the public halves came with the roles
    signature = key.sign(b"header.payload")
    assert len(signature) == 64  # ES256: r || s


def test_a_key_that_cannot_sign_counts_as_absent(kms: AwsLikeKms, aws: AwsServices) -> None:
    client = aws.factory.client("kms")
    current = key_behind(aws, "current")
    previous = key_behind(aws, "previous")
    client.disable_key(KeyId=previous.rsplit("/", 1)[1])
    pending = key_behind(aws, "pending", spec="RSA_2048", usage="ENCRYPT_DECRYPT")
    store = store_over(kms, aws)
    usable = store.roles(usable_only=True)
    assert usable["previous"] is None  # disabled: AWS refuses its GetPublicKey
    assert usable["pending"] is None  # not a signing key
    assert same_key(usable["current"], current)
    # The rotation's own view still names every key its aliases hold, as DescribeKey reports them.
    assert store.roles() == {"previous": previous, "current": current, "pending": pending}


def test_a_refusal_other_than_the_key_state_is_raised_not_taken_for_an_absent_key(
    kms: AwsLikeKms, aws: AwsServices
) -> None:
    key_behind(aws, "current")
    kms.denied.add(alias_name(PREFIX, "current", KEY_SET))
    with pytest.raises(AwsRejected) as refused:
        store_over(kms, aws).roles(usable_only=True)
    assert refused.value.aws_code == "AccessDeniedException"


def test_a_key_the_lookup_did_not_read_is_opened_with_its_own_call(kms: AwsLikeKms, aws: AwsServices) -> None:
    arn = key_behind(aws, "current")
    opened = store_over(kms, aws).open(arn)
    assert opened is not None
    assert kms.calls == ["get_public_key"]
