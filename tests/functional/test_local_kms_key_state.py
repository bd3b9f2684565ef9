"""The embedded KMS refuses every cryptographic operation with a key that is not Enabled, as AWS KMS does
(local.kms_key_state, installed by the ``moto`` fixture and the local stack; KMS Developer Guide, "Key states of AWS
KMS keys"): DisabledException for a disabled key, KMSInvalidStateException for one pending deletion, through an
alias too, and the same key works again once enabled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local import kms_key_state

CONTEXT = {"purpose": "key-state-test"}


@pytest.fixture
def kms(moto: None) -> Any:
    return boto3.client("kms")


def refusal(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except ClientError as refused:
        return str(refused.response["Error"]["Code"])
    return None


def operations(kms: Any, target: str, other: str, sealed: bytes) -> dict[str, Callable[[], Any]]:
    """Each cryptographic operation with ``target`` (a symmetric key, or its alias); ``other`` is an enabled key."""
    return {
        "Encrypt": lambda: kms.encrypt(KeyId=target, Plaintext=b"p", EncryptionContext=CONTEXT),
        "GenerateDataKey": lambda: kms.generate_data_key(KeyId=target, KeySpec="AES_256"),
        "GenerateDataKeyWithoutPlaintext": lambda: kms.generate_data_key_without_plaintext(
            KeyId=target, KeySpec="AES_256"
        ),
        "Decrypt (KeyId named)": lambda: kms.decrypt(CiphertextBlob=sealed, KeyId=target, EncryptionContext=CONTEXT),
        "Decrypt (key from the ciphertext)": lambda: kms.decrypt(CiphertextBlob=sealed, EncryptionContext=CONTEXT),
        "ReEncrypt (to it)": lambda: kms.re_encrypt(
            CiphertextBlob=kms.encrypt(KeyId=other, Plaintext=b"p")["CiphertextBlob"], DestinationKeyId=target
        ),
        "ReEncrypt (from it)": lambda: kms.re_encrypt(
            CiphertextBlob=sealed, SourceEncryptionContext=CONTEXT, DestinationKeyId=other
        ),
    }


@pytest.mark.parametrize("by_alias", [False, True], ids=["key id", "alias"])
def test_a_symmetric_key_that_is_not_enabled_refuses_every_operation(kms: Any, by_alias: bool) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/state", TargetKeyId=key_id)
    target = "alias/state" if by_alias else key_id
    sealed = kms.encrypt(KeyId=key_id, Plaintext=b"p", EncryptionContext=CONTEXT)["CiphertextBlob"]
    calls = operations(kms, target, other, sealed)
    assert {name: refusal(call) for name, call in calls.items()} == dict.fromkeys(calls)  # all work while Enabled
    kms.disable_key(KeyId=key_id)
    assert {name: refusal(call) for name, call in calls.items()} == dict.fromkeys(calls, "DisabledException")
    kms.enable_key(KeyId=key_id)
    assert {name: refusal(call) for name, call in calls.items()} == dict.fromkeys(calls)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert {name: refusal(call) for name, call in calls.items()} == dict.fromkeys(calls, "KMSInvalidStateException")


def test_a_refused_keys_ciphertext_says_nothing_about_its_context(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    sealed = kms.encrypt(KeyId=key_id, Plaintext=b"p", EncryptionContext=CONTEXT)["CiphertextBlob"]
    kms.disable_key(KeyId=key_id)
    for context in (CONTEXT, {"purpose": "another"}, {}):  # the right one, a wrong one, none: the same refusal
        assert refusal(lambda c=context: kms.decrypt(CiphertextBlob=sealed, EncryptionContext=c)) == "DisabledException"
    assert refusal(lambda: kms.decrypt(CiphertextBlob=b"not a ciphertext")) == "InvalidCiphertextException"  # moto's


def test_re_encrypt_checks_the_source_key_it_names(kms: Any) -> None:
    enabled, disabled = (kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(2))
    sealed = kms.encrypt(KeyId=enabled, Plaintext=b"p")["CiphertextBlob"]
    kms.disable_key(KeyId=disabled)
    assert refusal(lambda: kms.re_encrypt(CiphertextBlob=sealed, SourceKeyId=disabled, DestinationKeyId=enabled)) == (
        "DisabledException"
    )
    assert refusal(lambda: kms.re_encrypt(CiphertextBlob=sealed, DestinationKeyId=enabled)) is None


def test_the_refusal_is_http_409_as_aws_answers_it(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    with pytest.raises(ClientError) as refused:
        kms.encrypt(KeyId=key_id, Plaintext=b"p")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_a_mac_key_that_is_not_enabled_makes_and_checks_no_mac(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    kms.disable_key(KeyId=key_id)
    assert refusal(lambda: kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")) == (
        "DisabledException"
    )
    assert refusal(lambda: kms.verify_mac(KeyId=key_id, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")) == (
        "DisabledException"
    )


def test_an_unknown_key_is_still_moto_s_own_answer(kms: Any) -> None:
    assert refusal(lambda: kms.encrypt(KeyId="alias/no-such-key", Plaintext=b"p")) == "NotFoundException"


def test_uninstalled_moto_answers_as_it_ships_and_install_is_idempotent(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    kms_key_state.install()
    assert refusal(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"p")) == "DisabledException"
    kms_key_state.uninstall()
    try:
        assert not kms_key_state.installed()
        assert refusal(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"p")) is None  # moto 5.2.5 checks no state
    finally:
        kms_key_state.install()
    assert refusal(lambda: kms.encrypt(KeyId=key_id, Plaintext=b"p")) == "DisabledException"
