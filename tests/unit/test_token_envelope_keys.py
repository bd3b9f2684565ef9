"""Envelope signing keys: what is generated, what is accepted as a key, and what an error may say."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from chalicelib.aws.secrets import SecretVersion
from chalicelib.tokens.algorithms import algorithm
from chalicelib.tokens.envelope_keys import EnvelopeKeyStore, InvalidSigningKey, generate_private_pem, load_private_pem

PREFIX = "credport-dev"
KEY_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:credport-dev/token-signing/r1/current-AbCdEf"


def pkcs8(key: Any, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    pem: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return pem.decode()


@pytest.mark.parametrize(
    ("alg", "kind", "size"),
    [
        ("RS256", rsa.RSAPrivateKey, 2048),
        ("ES256", ec.EllipticCurvePrivateKey, 256),
        ("ES384", ec.EllipticCurvePrivateKey, 384),
    ],
)
def test_generated_keys_are_pkcs8_of_the_algorithms_type(alg: str, kind: type, size: int) -> None:
    pem = generate_private_pem(algorithm(alg))
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    loaded_alg, key = load_private_pem(pem)
    assert loaded_alg.jose == alg
    assert isinstance(key, kind)
    assert key.key_size == size
    assert generate_private_pem(algorithm(alg)) != pem


REFUSED = {
    "rsa-1024": lambda: pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 (refused)
    "p-521": lambda: pkcs8(ec.generate_private_key(ec.SECP521R1())),  # ES512: not an algorithm credport signs with
    "secp256k1": lambda: pkcs8(ec.generate_private_key(ec.SECP256K1())),  # ES256K: neither
    "ed25519": lambda: pkcs8(ed25519.Ed25519PrivateKey.generate()),
    "password-protected": lambda: pkcs8(ec.generate_private_key(ec.SECP256R1()), b"pw"),
    "public key": lambda: (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    ),
    "half a key": lambda: generate_private_pem(algorithm("RS256"))[:900],
    "placeholder": lambda: '{"placeholder": true}',
    "empty": lambda: "",
}


@pytest.mark.parametrize("make", REFUSED.values(), ids=REFUSED.keys())
def test_anything_but_an_rs256_es256_or_es384_private_key_is_refused_without_quoting_it(make: Any) -> None:
    material = make()
    with pytest.raises(InvalidSigningKey) as caught:
        load_private_pem(material)
    assert str(caught.value) == "the signing-key secret does not hold an RS256, ES256 or ES384 private key"
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__  # the parser's error stays behind


class OneSecret:
    """A SecretStore holding one value under KEY_ID."""

    def __init__(self, value: str) -> None:
        self.value = value

    def get_value(self, secret_id: str, *, stage: str | None = None) -> SecretVersion:
        assert (secret_id, stage) == (KEY_ID, "AWSCURRENT")
        return SecretVersion(KEY_ID, "n", "v1", ("AWSCURRENT",), datetime.now(UTC), self.value)


def store_of(alg: str, pem: str) -> EnvelopeKeyStore:
    """The key set of ``alg`` whose one secret holds ``pem``."""
    return EnvelopeKeyStore(
        OneSecret(pem),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        prefix=PREFIX,
        algorithm_name=alg,
        data_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
    )


@pytest.mark.parametrize("alg", ["RS256", "ES256", "ES384"])
def test_an_opened_key_signs_what_joserfc_verifies_and_never_shows_its_private_half(alg: str) -> None:
    pem = generate_private_pem(algorithm(alg))
    store = store_of(alg, pem)
    key = store.open(KEY_ID)
    assert key is not None
    private = RSAKey.import_key(pem) if alg == "RS256" else ECKey.import_key(pem)
    assert (key.alg.jose, key.kid, key.key_id) == (alg, private.thumbprint(), KEY_ID)
    assert key.jwk == {**private.as_dict(private=False), "kid": private.thumbprint(), "use": "sig", "alg": alg}
    signing_input = key.header + b".eyJzdWIiOiJ4In0"
    token = (signing_input + b"." + base64.urlsafe_b64encode(key.sign(signing_input)).rstrip(b"=")).decode()
    assert jwt.decode(token, private, algorithms=[alg]).claims == {"sub": "x"}
    for member in ("d", "p", "q"):
        secret_part = private.as_dict(private=True).get(member)
        if secret_part:
            assert str(secret_part) not in repr(key)
    assert "PRIVATE" not in repr(key)


@pytest.mark.parametrize(("store_alg", "key_alg"), [("RS256", "ES256"), ("ES384", "ES256"), ("ES256", "RS256")])
def test_a_key_of_another_algorithm_is_not_opened(store_alg: str, key_alg: str) -> None:
    """Each algorithm has its own key set: a key ring signs with its own algorithm's keys only (a request's ``alg``
    names the key ring), so a role naming another algorithm's key holds no usable key."""
    assert store_of(store_alg, generate_private_pem(algorithm(key_alg))).open(KEY_ID) is None


def test_a_role_naming_a_secret_outside_the_signing_keys_is_not_opened() -> None:
    outside = KEY_ID.replace("token-signing", "imported")
    store = EnvelopeKeyStore(
        OneSecret(""),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        prefix=PREFIX,
        algorithm_name="ES256",
        data_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
    )
    assert store.open(outside) is None
