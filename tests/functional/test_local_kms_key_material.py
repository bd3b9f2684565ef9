"""The embedded KMS makes no RSA key for a symmetric KMS key until one is read (local.kms_key_material, installed by the
``moto`` fixture and the local stack), and answers everything as moto did: asymmetric keys sign from the start,
symmetric keys encrypt, and whatever moto answered for a symmetric key's public key it still answers."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.kms import utils as kms_utils

from local import kms_key_material

SYMMETRIC = ["SYMMETRIC_DEFAULT", "HMAC_256"]


@pytest.fixture
def kms(moto: None) -> Any:
    return boto3.client("kms")


@pytest.fixture
def generated() -> Iterator[mock.MagicMock]:
    """Every private key moto generates, by key spec."""
    with mock.patch.object(kms_utils, "generate_private_key", wraps=kms_utils.generate_private_key) as spy:
        yield spy


def usage(spec: str) -> str:
    return "GENERATE_VERIFY_MAC" if spec.startswith("HMAC") else "ENCRYPT_DECRYPT"


@pytest.mark.parametrize("spec", SYMMETRIC)
def test_a_symmetric_key_is_created_without_an_rsa_key_and_works(
    kms: Any, generated: mock.MagicMock, spec: str
) -> None:
    key_id = kms.create_key(KeySpec=spec, KeyUsage=usage(spec))["KeyMetadata"]["KeyId"]
    assert generated.call_count == 0
    if spec == "SYMMETRIC_DEFAULT":
        sealed = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"secret"
        assert len(kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]) == 32
    else:
        mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
        assert kms.verify_mac(KeyId=key_id, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    assert generated.call_count == 0


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P384"])
def test_an_asymmetric_key_has_its_material_from_the_start(kms: Any, generated: mock.MagicMock, spec: str) -> None:
    key_id = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    assert [c.args[0] for c in generated.call_args_list] == [spec]
    algorithm = "RSASSA_PKCS1_V1_5_SHA_256" if spec == "RSA_2048" else f"ECDSA_SHA_{spec[-3:]}"
    signature = kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm=algorithm)["Signature"]
    assert kms.verify(KeyId=key_id, Message=b"m", Signature=signature, SigningAlgorithm=algorithm)["SignatureValid"]
    assert generated.call_count == 1


def answer(kms: Any, key_id: str) -> tuple[str, Any]:
    try:
        response = kms.get_public_key(KeyId=key_id)
        return "ok", (sorted(response), len(response["PublicKey"]))  # its shape: each key's material differs
    except ClientError as refused:
        return "refused", refused.response["Error"]["Code"]


def test_reading_a_symmetric_keys_material_makes_it_once_and_moto_answers_as_it_did(
    kms: Any, generated: mock.MagicMock
) -> None:
    deferred = kms.create_key()["KeyMetadata"]["KeyId"]
    first = answer(kms, deferred)
    made = generated.call_count
    assert made == (1 if first[0] == "ok" else 0)  # moto 5.2.5 answers with the RSA key's public half
    assert answer(kms, deferred) == first
    assert generated.call_count == made  # made on first use, never again
    kms_key_material.uninstall()
    try:
        eager = kms.create_key()["KeyMetadata"]["KeyId"]
        assert [c.args[0] for c in generated.call_args_list][-1] == "SYMMETRIC_DEFAULT"  # moto as it ships
        assert answer(kms, eager) == first
    finally:
        kms_key_material.install()


def test_install_is_idempotent_and_uninstall_restores_moto() -> None:
    from moto.kms import models

    assert kms_key_material.installed()
    patched = models.generate_private_key
    kms_key_material.install()
    assert models.generate_private_key is patched
    kms_key_material.uninstall()
    try:
        assert not kms_key_material.installed()
        assert models.generate_private_key is kms_utils.generate_private_key
    finally:
        kms_key_material.install()
    assert models.generate_private_key is patched


def test_a_symmetric_key_copies_as_moto_copies_it(kms: Any, generated: mock.MagicMock) -> None:
    from moto.kms.models import kms_backends

    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    key = kms_backends["123456789012"]["us-east-1"].keys[key_id]
    assert copy.copy(key).private_key is key.private_key  # ReplicateKey's shallow copy shares the material
    assert generated.call_count == 0
    deep = copy.deepcopy(key)
    assert deep.private_key.public_key() == key.private_key.public_key()  # a deep copy holds the same material
