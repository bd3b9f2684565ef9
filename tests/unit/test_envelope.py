"""Envelopes: compact JWE to an RSA key or under a shared key; strict PEM; interop with jwcrypto."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.jwk import RSAKey
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk

import chalicelib.envelope as envelope_module
from chalicelib.envelope import (
    EnvelopeError,
    PrivateKeyMaterial,
    RecipientKey,
    decrypt_direct,
    generate_recipient_key,
    open_envelope,
    private_key_from_pem,
    public_key_from_pem,
    seal,
    seal_direct,
)
from chalicelib.jose import JWE_HEADERS

KEY = generate_recipient_key(2048)
OTHER = generate_recipient_key(2048)
KEYS = {KEY.kid: KEY}


def segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def reason_of(envelope: object, keys: dict[str, RecipientKey] = KEYS) -> str:
    with pytest.raises(EnvelopeError) as refused:
        open_envelope(envelope, keys)
    return refused.value.reason


@pytest.mark.parametrize("size", [0, 1, 470, 64 * 1024])
def test_seal_and_open_round_trip(size: int) -> None:
    plaintext = os.urandom(size)
    envelope = seal(KEY, plaintext)
    opened = open_envelope(envelope, KEYS)
    assert (opened.kid, opened.plaintext) == (KEY.kid, plaintext)
    header = json.loads(base64.urlsafe_b64decode(envelope.split(".")[0] + "=="))
    assert header == {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KEY.kid}
    assert KEY.kid == RSAKey.import_key(KEY.public_pem()).thumbprint()


def test_a_4096_bit_key_works() -> None:
    big = generate_recipient_key()
    assert open_envelope(seal(big, b"x"), {big.kid: big}).plaintext == b"x"


def test_the_private_half_survives_pem_storage() -> None:
    assert KEY.private is not None
    restored = private_key_from_pem(KEY.private.as_pem(private=True))
    assert restored.kid == KEY.kid
    assert open_envelope(seal(KEY, b"kept"), {restored.kid: restored}).plaintext == b"kept"
    with pytest.raises(EnvelopeError):
        private_key_from_pem(KEY.public_pem())


def test_the_key_is_chosen_by_kid() -> None:
    both = {KEY.kid: KEY, OTHER.kid: OTHER}
    assert open_envelope(seal(OTHER, b"o"), both).kid == OTHER.kid
    assert reason_of(seal(OTHER, b"o")) == "unknown_key"
    public_only = {KEY.kid: RecipientKey(kid=KEY.kid, public=KEY.public)}
    assert reason_of(seal(KEY, b"x"), public_only) == "unknown_key"


def _seal_with(header: dict[str, Any], algorithms: list[str]) -> str:
    return str(jwe.encrypt_compact(header, b"secret", KEY.public, algorithms=algorithms))


@pytest.mark.parametrize(
    ("header", "algorithms", "reason"),
    [
        ({"alg": "RSA-OAEP", "enc": "A256GCM"}, ["RSA-OAEP", "A256GCM"], "algorithm"),
        ({"alg": "RSA1_5", "enc": "A256GCM"}, ["RSA1_5", "A256GCM"], "algorithm"),
        ({"alg": "RSA-OAEP-256", "enc": "A128GCM"}, ["RSA-OAEP-256", "A128GCM"], "algorithm"),
        ({"alg": "RSA-OAEP-256", "enc": "A256CBC-HS512"}, ["RSA-OAEP-256", "A256CBC-HS512"], "algorithm"),
        (
            {"alg": "RSA-OAEP-256", "enc": "A256GCM", "zip": "DEF"},
            ["RSA-OAEP-256", "A256GCM", "DEF"],
            "forbidden_header",
        ),
    ],
)
def test_only_the_allowed_algorithms_open(header: dict[str, Any], algorithms: list[str], reason: str) -> None:
    assert reason_of(_seal_with({**header, "kid": KEY.kid}, algorithms)) == reason


@pytest.mark.parametrize(
    "extra",
    [{"jku": "https://evil/jwks"}, {"jwk": {"kty": "RSA"}}, {"x5u": "https://e"}, {"x5c": ["MII"]}, {"crit": ["exp"]}],
)
def test_headers_that_choose_keys_or_extend_rules_are_refused(extra: dict[str, Any]) -> None:
    header, rest = seal(KEY, b"x").split(".", 1)
    forged = segment({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KEY.kid, **extra})
    assert reason_of(f"{forged}.{rest}") == "forbidden_header"
    assert header


# Registered members credport never writes in an envelope: refused by name before any key or decryption.
NOT_OURS = ["zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c", "x5t", "x5t#S256", "b64", "url", "nonce", ""]


@pytest.mark.parametrize("name", NOT_OURS)
def test_a_registered_header_credport_never_writes_is_refused(name: str) -> None:
    rest = seal(KEY, b"x").split(".", 1)[1]
    forged = segment({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KEY.kid, name: "x"})
    assert reason_of(f"{forged}.{rest}") == "forbidden_header"


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(max_size=24).filter(lambda name: name not in JWE_HEADERS),
    value=st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=16), st.lists(st.integers(), max_size=3)),
)
def test_any_header_member_outside_the_allow_list_is_refused(name: str, value: Any) -> None:
    """Deny by structure: a member nobody has invented yet is refused like ``jku``, before any key is looked up."""
    forged = segment({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KEY.kid, name: value})
    assert reason_of(f"{forged}.e.i.c.t") == "forbidden_header"
    assert reason_of(f"{forged}.e.i.c.t", {}) == "forbidden_header"  # whether or not the kid names a key we hold


def test_every_allowed_header_member_still_opens() -> None:
    """The allow-list is what seal writes, cty included, and typ (which other senders' libraries add); a dir
    envelope has alg and enc only."""
    envelope = seal(KEY, b"typed", content_type="application/json")
    assert set(json.loads(base64.urlsafe_b64decode(envelope.split(".")[0] + "=="))) == JWE_HEADERS - {"typ"}
    assert open_envelope(envelope, KEYS).plaintext == b"typed"
    public = jwcrypto_jwk.JWK.from_json(json.dumps(KEY.public_jwk()))
    typed = jwcrypto_jwe.JWE(
        b"typed by another library",
        json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KEY.kid, "typ": "JWE", "cty": "text/plain"}),
    )
    typed.add_recipient(public)
    assert open_envelope(typed.serialize(compact=True), KEYS).plaintext == b"typed by another library"
    key = os.urandom(32)
    direct = seal_direct(key, b"direct")
    assert set(json.loads(base64.urlsafe_b64decode(direct.split(".")[0] + "=="))) == {"alg", "enc"}
    assert decrypt_direct(direct, key) == b"direct"


@pytest.mark.parametrize("part", [1, 2, 3, 4])
def test_any_tampered_part_fails_to_decrypt(part: int) -> None:
    parts = seal(KEY, b"the secret value").split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[part] + "=" * (-len(parts[part]) % 4)))
    raw[len(raw) // 2] ^= 1
    parts[part] = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert reason_of(".".join(parts)) == "decryption_failed"


def test_a_changed_protected_header_fails_to_decrypt() -> None:
    parts = seal(KEY, b"x").split(".")
    parts[0] = segment({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KEY.kid, "cty": "text"})
    assert reason_of(".".join(parts)) == "decryption_failed"  # the header is the AEAD's associated data


@pytest.mark.parametrize("value", [None, 42, b"a.b.c.d.e", "", "a.b.c", "a.b.c.d.e.f", "!!.b.c.d.e", "x" * 300_000])
def test_things_that_are_not_envelopes(value: object) -> None:
    assert reason_of(value) == "not_jwe"


def test_interop_jwcrypto_seals_we_open() -> None:
    public = jwcrypto_jwk.JWK.from_json(json.dumps(KEY.public_jwk()))
    token = jwcrypto_jwe.JWE(b"from jwcrypto", json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": KEY.kid}))
    token.add_recipient(public)
    assert open_envelope(token.serialize(compact=True), KEYS).plaintext == b"from jwcrypto"


def test_interop_we_seal_jwcrypto_opens() -> None:
    assert KEY.private is not None
    private = jwcrypto_jwk.JWK.from_pem(KEY.private.as_pem(private=True))
    token = jwcrypto_jwe.JWE()
    token.deserialize(seal(KEY, b"to jwcrypto"), key=private)
    assert token.payload == b"to jwcrypto"


def _pem(key: Any, private: bool = False, fmt: Any = None) -> bytes:
    if private:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM, fmt or serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return bytes(key.public_bytes(serialization.Encoding.PEM, fmt or serialization.PublicFormat.SubjectPublicKeyInfo))


RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_public_keys_in_both_pem_forms_are_read() -> None:
    spki = public_key_from_pem(_pem(RSA_2048.public_key()))
    pkcs1 = public_key_from_pem(_pem(RSA_2048.public_key(), fmt=serialization.PublicFormat.PKCS1))
    assert spki.kid == pkcs1.kid
    assert b"BEGIN RSA PUBLIC KEY" in _pem(RSA_2048.public_key(), fmt=serialization.PublicFormat.PKCS1)


@pytest.mark.parametrize(
    "pem",
    [
        _pem(RSA_2048, private=True),
        _pem(RSA_2048, private=True, fmt=serialization.PrivateFormat.TraditionalOpenSSL),
        _pem(RSA_2048, private=True, fmt=serialization.PrivateFormat.OpenSSH),
        bytes(
            RSA_2048.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pw"),
            )
        ),
        _pem(RSA_2048, private=True) + _pem(RSA_2048.public_key()),  # a bundle with the private key inside
    ],
    ids=["pkcs8", "pkcs1", "openssh", "encrypted", "bundle"],
)
def test_a_private_key_is_recognised_as_such(pem: bytes) -> None:
    with pytest.raises(PrivateKeyMaterial):
        public_key_from_pem(pem)


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        # A deliberately weak key: the point is that it is refused.
        (_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()), "key_too_small"),  # noqa: S505
        (_pem(ec.generate_private_key(ec.SECP256R1()).public_key()), "not_rsa"),
        (b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", "not_a_public_key"),
        (b"", "not_a_public_key"),
        (b"A" * 20_000, "too_large"),
    ],
)
def test_bad_public_keys_are_refused_with_a_reason(pem: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as refused:
        public_key_from_pem(pem)
    assert refused.value.reason == reason


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_keys_made_by_the_openssl_command(tmp_path: Path) -> None:
    private, public = tmp_path / "client-one-private.pem", tmp_path / "client-one-public.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True)
    subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-out", str(public)], check=True, capture_output=True
    )
    recipient = public_key_from_pem(public.read_bytes())
    with pytest.raises(PrivateKeyMaterial):
        public_key_from_pem(private.read_bytes())
    opener = private_key_from_pem(private.read_bytes())
    assert open_envelope(seal(recipient, b"hi"), {opener.kid: opener}).plaintext == b"hi"


@pytest.mark.parametrize("size", [0, 64 * 1024])
def test_direct_envelopes_round_trip(size: int) -> None:
    key, plaintext = os.urandom(32), os.urandom(size)
    assert decrypt_direct(seal_direct(key, plaintext), key) == plaintext


def test_direct_envelopes() -> None:
    key = os.urandom(32)
    envelope = seal_direct(key, b"credentials")
    assert decrypt_direct(envelope, key) == b"credentials"
    for wrong, reason in ((os.urandom(32), "decryption_failed"), (key[:16], "algorithm")):
        with pytest.raises(EnvelopeError) as refused:
            decrypt_direct(envelope, wrong)
        assert refused.value.reason == reason
    with pytest.raises(EnvelopeError):
        decrypt_direct(seal(KEY, b"x"), key)  # an RSA envelope is not a direct one
    with pytest.raises(ValueError, match="32 bytes"):
        seal_direct(os.urandom(16), b"x")


# seal_direct writes its envelopes itself (around cryptography's AESGCM); joserfc and jwcrypto must read them, and
# given the same IV it must write exactly what joserfc's encrypt_compact writes.
@settings(max_examples=80, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), iv=st.binary(min_size=12, max_size=12), plaintext=st.binary())
def test_a_direct_envelope_is_byte_for_byte_what_joserfc_writes(key: bytes, iv: bytes, plaintext: bytes) -> None:
    from joserfc._rfc7518.jwe_encs import GCMEncModel
    from joserfc.jwk import OctKey

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(envelope_module.os, "urandom", lambda size: iv[:size])
        ours = seal_direct(key, plaintext)
        patch.setattr(GCMEncModel, "generate_iv", lambda self: iv)
        registry = jwe.JWERegistry(algorithms=["dir", "A256GCM"])
        registry.max_ciphertext_length = len(plaintext) * 2 + 64
        theirs = jwe.encrypt_compact(
            {"alg": "dir", "enc": "A256GCM"}, plaintext, OctKey.import_key(key), registry=registry
        )
    assert ours == theirs
    assert jwe.decrypt_compact(ours, OctKey.import_key(key), registry=registry).plaintext == plaintext


def test_a_direct_envelope_has_a_fresh_iv_and_jwcrypto_opens_it() -> None:
    key = os.urandom(32)
    envelopes = [seal_direct(key, b"same plaintext") for _ in range(64)]
    ivs = {envelope.split(".")[2] for envelope in envelopes}
    assert len(ivs) == len(envelopes)
    for envelope in envelopes[:4]:
        header, encrypted_key, iv, _ciphertext, tag = envelope.split(".")
        assert encrypted_key == ""  # dir: no key is carried
        assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "dir", "enc": "A256GCM"}
        assert len(base64.urlsafe_b64decode(iv + "==")) == 12
        assert len(base64.urlsafe_b64decode(tag + "==")) == 16
        token = jwcrypto_jwe.JWE()
        token.deserialize(envelope, key=jwcrypto_jwk.JWK(kty="oct", k=segment_bytes(key)))
        assert token.payload == b"same plaintext"


def segment_bytes(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def test_the_direct_header_is_joserfcs_encoding_of_dir_a256gcm() -> None:
    from joserfc.util import json_b64encode

    assert json_b64encode({"alg": "dir", "enc": "A256GCM"}) == envelope_module._DIRECT_HEADER
