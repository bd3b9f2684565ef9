"""The embedded KMS signs as AWS KMS does (local.kms_sign, installed by the ``moto`` fixture and the local stack):
``MessageType=DIGEST`` signs the digest without hashing it again, a message over 4096 bytes and a digest of the wrong
length are refused, and Verify follows the same rules (KMS API Reference, "Sign" and "Verify")."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from local import kms_sign

MESSAGE = b"header.payload: the JWS signing input credport sends to KMS"


@dataclass(frozen=True)
class Spec:
    key_spec: str
    algorithm: str
    hash: type[hashes.HashAlgorithm]

    def digest(self, message: bytes) -> bytes:
        return hashlib.new(self.hash().name, message).digest()


SPECS = [
    Spec("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", hashes.SHA256),
    Spec("ECC_NIST_P256", "ECDSA_SHA_256", hashes.SHA256),
    Spec("ECC_NIST_P384", "ECDSA_SHA_384", hashes.SHA384),
]
PSS = Spec("RSA_2048", "RSASSA_PSS_SHA_256", hashes.SHA256)


@pytest.fixture
def kms(moto: None) -> Any:
    return boto3.client("kms")


@pytest.fixture
def stock_kms(kms: Any) -> Iterator[Any]:
    """A KMS client against moto as it ships (after the ``moto`` fixture installed the patch: taken off again)."""
    kms_sign.uninstall()
    try:
        yield kms
    finally:
        kms_sign.install()


def make_key(kms: Any, spec: Spec) -> str:
    key_id: str = kms.create_key(KeySpec=spec.key_spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    return key_id


def sign(kms: Any, key_id: str, spec: Spec, message: bytes, message_type: str) -> bytes:
    response = kms.sign(KeyId=key_id, Message=message, MessageType=message_type, SigningAlgorithm=spec.algorithm)
    return bytes(response["Signature"])


def kms_verify(kms: Any, key_id: str, spec: Spec, message: bytes, signature: bytes, message_type: str) -> bool:
    response = kms.verify(
        KeyId=key_id, Message=message, MessageType=message_type, Signature=signature, SigningAlgorithm=spec.algorithm
    )
    return bool(response["SignatureValid"])


def verifies(kms: Any, key_id: str, spec: Spec, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` verifies over ``message`` (hashed once) with the key's public key, outside KMS."""
    public: Any = serialization.load_der_public_key(bytes(kms.get_public_key(KeyId=key_id)["PublicKey"]))
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(spec.hash()))
        else:
            assert isinstance(public, rsa.RSAPublicKey)
            pad = (
                padding.PSS(mgf=padding.MGF1(spec.hash()), salt_length=padding.PSS.AUTO)
                if "PSS" in spec.algorithm
                else padding.PKCS1v15()
            )
            public.verify(signature, message, pad, spec.hash())
    except InvalidSignature:
        return False
    return True


def refusal(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


TOO_LONG = (
    "ValidationException",
    "1 validation error detected: Value at 'message' failed to satisfy constraint: "
    "Member must have length less than or equal to 4096",
)


@pytest.mark.parametrize("spec", [*SPECS, PSS], ids=lambda s: s.algorithm)
def test_a_digest_signature_verifies_over_the_original_message(kms: Any, spec: Spec) -> None:
    key_id = make_key(kms, spec)
    signature = sign(kms, key_id, spec, spec.digest(MESSAGE), "DIGEST")
    assert verifies(kms, key_id, spec, MESSAGE, signature)
    assert not verifies(kms, key_id, spec, spec.digest(MESSAGE), signature)  # not hashed twice


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.algorithm)
def test_raw_still_signs_the_message(kms: Any, spec: Spec) -> None:
    key_id = make_key(kms, spec)
    assert verifies(kms, key_id, spec, MESSAGE, sign(kms, key_id, spec, MESSAGE, "RAW"))
    default = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm=spec.algorithm)["Signature"]
    assert verifies(kms, key_id, spec, MESSAGE, bytes(default))  # no MessageType means RAW


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.algorithm)
def test_raw_takes_4096_bytes_and_refuses_4097(kms: Any, spec: Spec) -> None:
    key_id = make_key(kms, spec)
    assert verifies(kms, key_id, spec, b"m" * 4096, sign(kms, key_id, spec, b"m" * 4096, "RAW"))
    with pytest.raises(ClientError) as error:
        sign(kms, key_id, spec, b"m" * 4097, "RAW")
    assert refusal(error) == TOO_LONG
    with pytest.raises(ClientError) as error:
        kms_verify(kms, key_id, spec, b"m" * 4097, b"s" * 64, "RAW")
    assert refusal(error) == TOO_LONG


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.algorithm)
def test_a_digest_of_the_wrong_length_is_refused(kms: Any, spec: Spec) -> None:
    key_id = make_key(kms, spec)
    expected = ("ValidationException", f"Digest is invalid length for algorithm {spec.algorithm}.")
    other = hashlib.sha512 if spec.hash is not hashes.SHA512 else hashlib.sha256
    for wrong in (spec.digest(MESSAGE)[:-1], spec.digest(MESSAGE) + b"\0", other(MESSAGE).digest(), MESSAGE):
        with pytest.raises(ClientError) as error:
            sign(kms, key_id, spec, wrong, "DIGEST")
        assert refusal(error) == expected
        with pytest.raises(ClientError) as error:
            kms_verify(kms, key_id, spec, wrong, b"s" * 64, "DIGEST")
        assert refusal(error) == expected


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.algorithm)
def test_kms_verify_with_a_digest_agrees(kms: Any, spec: Spec) -> None:
    key_id = make_key(kms, spec)
    digest = spec.digest(MESSAGE)
    from_digest = sign(kms, key_id, spec, digest, "DIGEST")
    from_raw = sign(kms, key_id, spec, MESSAGE, "RAW")
    # AWS: "The message type does not need to be the same as the one used for signing."
    for signature in (from_digest, from_raw):
        assert kms_verify(kms, key_id, spec, digest, signature, "DIGEST")
        assert kms_verify(kms, key_id, spec, MESSAGE, signature, "RAW")
    assert not kms_verify(kms, key_id, spec, spec.digest(b"another message"), from_digest, "DIGEST")


def test_an_unknown_message_type_is_refused(kms: Any) -> None:
    spec = SPECS[0]
    key_id = make_key(kms, spec)
    with pytest.raises(ClientError) as error:
        sign(kms, key_id, spec, MESSAGE, "HASHED")
    assert refusal(error) == (
        "ValidationException",
        "1 validation error detected: Value 'HASHED' at 'messageType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]",
    )
    with pytest.raises(ClientError) as error:
        kms_verify(kms, key_id, spec, MESSAGE, b"s" * 64, "HASHED")
    assert "at 'messageType' failed" in refusal(error)[1]
    with pytest.raises(ClientError) as error:
        sign(kms, key_id, spec, spec.digest(MESSAGE), "EXTERNAL_MU")
    assert refusal(error)[0] == "ValidationException"
    assert "EXTERNAL_MU is only valid with ML-DSA keys" in refusal(error)[1]


def test_concurrent_raw_and_digest_requests_stay_apart(kms: Any) -> None:
    """DIGEST mode is per request (a context variable), so the threaded server's other requests still hash."""
    spec = SPECS[1]
    key_id = make_key(kms, spec)

    def one(i: int) -> bool:
        message = b"message %d" % i
        if i % 2:
            return verifies(kms, key_id, spec, message, sign(kms, key_id, spec, spec.digest(message), "DIGEST"))
        return verifies(kms, key_id, spec, message, sign(kms, key_id, spec, message, "RAW"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(one, range(40)))


def test_install_is_idempotent(moto: None) -> None:
    from moto.kms.responses import KmsResponse

    assert kms_sign.installed()
    patched = KmsResponse.sign
    kms_sign.install()
    assert KmsResponse.sign is patched


def test_uninstall_gives_moto_back_its_stock_behaviour(stock_kms: Any) -> None:
    from moto.kms.responses import KmsResponse

    kms = stock_kms
    assert not kms_sign.installed()
    assert KmsResponse.sign.__module__ == KmsResponse.verify.__module__ == "moto.kms.responses"
    from moto.kms import utils

    assert utils.RSAPrivateKey._RSAPrivateKey__padding_and_hash_algorithm.__module__ == "moto.kms.utils"  # type: ignore[attr-defined]
    assert utils.ECDSAPrivateKey._ECDSAPrivateKey__hash_algorithm.__module__ == "moto.kms.utils"  # type: ignore[attr-defined]
    spec = SPECS[0]
    key_id = make_key(kms, spec)
    signature = sign(kms, key_id, spec, spec.digest(MESSAGE), "DIGEST")
    assert not verifies(kms, key_id, spec, MESSAGE, signature)  # moto hashes the digest again
    assert verifies(kms, key_id, spec, spec.digest(MESSAGE), signature)
    assert verifies(kms, key_id, spec, b"m" * 4097, sign(kms, key_id, spec, b"m" * 4097, "RAW"))  # no limit


def refusal_code(call: Any) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    return str(refused.value.response["Error"]["Code"])


def test_a_key_that_is_not_enabled_signs_nothing_and_shows_no_public_key(kms: Any) -> None:
    """KMS Developer Guide, "Key states of AWS KMS keys": a disabled key, or one pending deletion, is not usable in
    cryptographic operations nor for GetPublicKey. Through an alias too, as credport's key ring reads it."""
    spec = SPECS[0]
    key_id = make_key(kms, spec)
    kms.create_alias(AliasName="alias/state-test", TargetKeyId=key_id)
    signature = sign(kms, key_id, spec, b"m", "RAW")
    kms.disable_key(KeyId=key_id)
    for target in (key_id, "alias/state-test"):
        assert refusal_code(lambda t=target: kms.get_public_key(KeyId=t)) == "DisabledException"
        assert refusal_code(lambda t=target: sign(kms, t, spec, b"m", "RAW")) == "DisabledException"
    assert refusal_code(lambda: kms_verify(kms, key_id, spec, b"m", signature, "RAW")) == "DisabledException"
    kms.enable_key(KeyId=key_id)
    assert kms.get_public_key(KeyId="alias/state-test")["KeyId"].endswith(key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert refusal_code(lambda: kms.get_public_key(KeyId="alias/state-test")) == "KMSInvalidStateException"
    assert refusal_code(lambda: sign(kms, key_id, spec, b"m", "RAW")) == "KMSInvalidStateException"
    assert refusal_code(lambda: kms.get_public_key(KeyId="alias/no-such-key")) == "NotFoundException"  # moto answers
