"""The private-key detector (chalicelib.transfer.key_material) against keys ``cryptography`` makes, in every format.

Each key type (RSA, EC P-256 and P-384, Ed25519, X25519, DSA) in each format it has: PEM (PKCS#8, encrypted
PKCS#8, traditional PKCS#1/SEC1/DSA, legacy encrypted), DER (the same), OpenSSH (armoured and raw
``openssh-key-v1``), PKCS#12 (with and without a password, with a certificate), JWK and JWKS, inside a PEM bundle
with certificates, and wrapped again (base64, hex, UTF-16/32, a JSON string). Hypothesis varies the armour (case,
spacing, CRLF, text around it, labels never seen) and the wrappings; arbitrary bytes never crash it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, OKPKey, RSAKey

from chalicelib.transfer.key_material import INSPECTION_LIMIT, PRIVATE, PUBLIC, UNPROVEN, classify, holds_private

E, F, P = serialization.Encoding, serialization.PrivateFormat, serialization.PublicFormat
NONE, PASSWORD = serialization.NoEncryption(), serialization.BestAvailableEncryption(b"correct horse")
KEYS: dict[str, Any] = {
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "x25519": x25519.X25519PrivateKey.generate(),
    "dsa": dsa.generate_private_key(2048),
    "dsa1024": dsa.generate_private_key(1024),  # noqa: S505 (the only DSA size OpenSSH's format takes)
}
TRADITIONAL = ("rsa", "p256", "p384", "dsa", "dsa1024")  # PKCS#1, SEC1, OpenSSL's DSA: no such format for the others
OPENSSH = ("rsa", "p256", "p384", "ed25519", "dsa1024")
PKCS12 = ("rsa", "p256", "p384", "ed25519", "dsa")  # X25519 is a key-agreement key: PKCS#12 cannot carry it


def _certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client-one")])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(x509.random_serial_number()).not_valid_before(now)
    return builder.not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())


CERT = _certificate(KEYS["rsa"])
CERT_PEM = CERT.public_bytes(E.PEM)


def _private(name: str, encoding: serialization.Encoding, fmt: serialization.PrivateFormat, password: bool) -> bytes:
    with warnings.catch_warnings():  # cryptography deprecates OpenSSH DSA keys: making one is the point
        warnings.simplefilter("ignore")
        return bytes(KEYS[name].private_bytes(encoding, fmt, PASSWORD if password else NONE))


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _openssh_encrypted(name: str) -> bytes:
    """A passphrase-protected OpenSSH key, built to the format (PROTOCOL.key): cryptography needs the bcrypt package
    to write one, and the detector needs only the structure (its ciphertext is random to anyone without it)."""
    with warnings.catch_warnings():  # DSA, as above
        warnings.simplefilter("ignore")
        public = base64.b64decode(KEYS[name].public_key().public_bytes(E.OpenSSH, P.OpenSSH).split()[1])
    kdf = _ssh_string(os.urandom(16)) + (16).to_bytes(4, "big")
    raw = b"openssh-key-v1\x00" + _ssh_string(b"aes256-ctr") + _ssh_string(b"bcrypt") + _ssh_string(kdf)
    raw += (1).to_bytes(4, "big") + _ssh_string(public) + _ssh_string(os.urandom(160))
    body = base64.b64encode(raw)
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return b"\n".join([b"-----BEGIN OPENSSH PRIVATE KEY-----", *lines, b"-----END OPENSSH PRIVATE KEY-----", b""])


def _jwk(name: str) -> dict[str, object]:
    pem = _private(name, E.PEM, F.PKCS8, False)
    if name == "rsa":
        return dict(RSAKey.import_key(pem).as_dict(private=True))
    if name.startswith("p"):
        return dict(ECKey.import_key(pem).as_dict(private=True))
    return dict(OKPKey.import_key(pem).as_dict(private=True))


def _vectors() -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name, key in KEYS.items():
        for password in (False, True):
            tag = "encrypted " if password else ""
            found[f"{name} PEM {tag}PKCS#8"] = _private(name, E.PEM, F.PKCS8, password)
            found[f"{name} DER {tag}PKCS#8"] = _private(name, E.DER, F.PKCS8, password)
            if name in TRADITIONAL:
                found[f"{name} PEM {tag}traditional"] = _private(name, E.PEM, F.TraditionalOpenSSL, password)
            if name in OPENSSH:
                found[f"{name} OpenSSH {tag}"] = (
                    _openssh_encrypted(name) if password else _private(name, E.PEM, F.OpenSSH, False)
                )
            if name in PKCS12:
                pfx = pkcs12.serialize_key_and_certificates(
                    b"client",
                    key,
                    None,
                    None,
                    PASSWORD if password else NONE,
                )
                found[f"{name} PKCS#12 {tag}"] = pfx
        if name in TRADITIONAL:
            found[f"{name} DER traditional"] = _private(name, E.DER, F.TraditionalOpenSSL, False)
        if name in OPENSSH:
            body = b"".join(_private(name, E.PEM, F.OpenSSH, False).splitlines()[1:-1])
            found[f"{name} raw openssh-key-v1"] = base64.b64decode(body)
        if not name.startswith("dsa"):  # JOSE has no DSA keys
            found[f"{name} JWK"] = json.dumps(_jwk(name)).encode()
            found[f"{name} JWKS"] = json.dumps(
                {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}, _jwk(name)]}
            ).encode()
        der = _private(name, E.DER, F.PKCS8, False)
        found[f"{name} base64 DER"] = base64.b64encode(der)
        found[f"{name} base64 DER, MIME lines"] = base64.encodebytes(der)
        found[f"{name} base64url DER"] = base64.urlsafe_b64encode(der).rstrip(b"=")
        found[f"{name} hex DER"] = der.hex().encode()
        pem = _private(name, E.PEM, F.PKCS8, False)
        found[f"{name} bundle: certificate then key"] = CERT_PEM + pem
        found[f"{name} bundle: key labelled CERTIFICATE"] = CERT_PEM + pem.replace(b"PRIVATE KEY", b"CERTIFICATE")
        found[f"{name} PEM in UTF-16"] = pem.decode().encode("utf-16")
        found[f"{name} PEM in UTF-16-LE, no BOM"] = pem.decode().encode("utf-16-le")
        found[f"{name} PEM in UTF-32-BE"] = pem.decode().encode("utf-32-be")
        found[f"{name} PEM in a JSON string"] = json.dumps({"private_key": pem.decode()}).encode()
    rsa_pem = _private("rsa", E.PEM, F.PKCS8, False)
    found["PKCS#12 with a certificate"] = pkcs12.serialize_key_and_certificates(
        b"client",
        KEYS["rsa"],
        CERT,
        None,
        PASSWORD,
    )
    found["oct JWK (any kty)"] = json.dumps({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}).encode()
    found["JWK of an unknown kty"] = json.dumps({"kty": "PQC", "d": "AAAA", "x": "BBBB"}).encode()
    found["RSA JWK with oth"] = json.dumps({"kty": "RSA", "n": "AQAB", "e": "AQAB", "oth": []}).encode()
    found["PGP secret key block"] = (
        b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF...\n-----END PGP PRIVATE KEY BLOCK-----\n"
    )
    found["PuTTY key"] = b"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\nAAAA\n"
    found["base64 of a PEM"] = base64.b64encode(rsa_pem)
    return found


VECTORS = _vectors()


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_every_private_key_format_is_caught(name: str) -> None:
    assert classify(VECTORS[name]) == PRIVATE


def _public_vectors() -> dict[str, bytes]:
    found = {
        f"{name} SubjectPublicKeyInfo PEM": KEYS[name].public_key().public_bytes(E.PEM, P.SubjectPublicKeyInfo)
        for name in KEYS
    }
    found["rsa PKCS#1 PEM"] = KEYS["rsa"].public_key().public_bytes(E.PEM, P.PKCS1)
    found["certificate"] = CERT_PEM
    found["certificate chain and a key, CRLF"] = (CERT_PEM + CERT_PEM + found["rsa SubjectPublicKeyInfo PEM"]).replace(
        b"\n", b"\r\n"
    )
    return found


PUBLIC_VECTORS = _public_vectors()


@pytest.mark.parametrize("name", sorted(PUBLIC_VECTORS))
def test_public_keys_and_certificates_are_provably_public(name: str) -> None:
    assert classify(PUBLIC_VECTORS[name]) == PUBLIC


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("DER public key", KEYS["p256"].public_key().public_bytes(E.DER, P.SubjectPublicKeyInfo)),
        ("OpenSSH public key", KEYS["ed25519"].public_key().public_bytes(E.OpenSSH, P.OpenSSH)),
        ("public JWK", json.dumps(RSAKey.import_key(PUBLIC_VECTORS["rsa PKCS#1 PEM"]).as_dict()).encode()),
        ("raw 32 bytes (an X25519 private key, or noise)", KEYS["x25519"].private_bytes(E.Raw, F.Raw, NONE)),
        ("text around a public key", b"my key:\n" + PUBLIC_VECTORS["rsa SubjectPublicKeyInfo PEM"]),
        ("a mislabelled public key", PUBLIC_VECTORS["rsa SubjectPublicKeyInfo PEM"].replace(b"PUBLIC", b"PUBLIK")),
        ("empty", b""),
    ],
)
def test_anything_else_is_unproven_never_public(name: str, data: bytes) -> None:
    """Not recognised as private is no proof of harmlessness: only the PEM public forms are PUBLIC."""
    assert classify(data) == UNPROVEN


# --- hypothesis: armour, label and wrapping variations --------------------------------------------------------------

PEM_PRIVATE = {
    name: data for name, data in VECTORS.items() if data.startswith(b"-----BEGIN") and b"PRIVATE" in data[:40]
}


def _relabel(pem: bytes, label: bytes) -> bytes:
    lines = pem.splitlines()
    return b"\n".join(
        [f"-----BEGIN {label.decode()}-----".encode(), *lines[1:-1], f"-----END {label.decode()}-----".encode()]
    )


ARMOUR: dict[str, Callable[[bytes, str], bytes]] = {
    "lowercase": lambda pem, _: pem.lower(),
    "CRLF": lambda pem, _: pem.replace(b"\n", b"\r\n"),
    "leading junk": lambda pem, junk: junk.encode("utf-8", "replace") + b"\n" + pem,
    "trailing junk": lambda pem, junk: pem + b"\n" + junk.encode("utf-8", "replace"),
    "spaces in the label": lambda pem, _: pem.replace(b" PRIVATE", b" \t PRIVATE").replace(b"BEGIN ", b"BEGIN   "),
    "unknown label": lambda pem, junk: _relabel(pem, b"X" + junk.encode("ascii", "ignore")[:8].upper() + b" PRIVATE"),
    "indented": lambda pem, _: b"\n".join(b"    " + line for line in pem.splitlines()),
}


def _as_text(data: bytes) -> str:
    """Text as itself, binary as base64: how a key goes into a JSON document."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode()


WRAPPING: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda data: data,
    "base64": base64.b64encode,
    "base64 lines": base64.encodebytes,
    "hex": lambda data: data.hex().encode(),
    "UTF-16": lambda data: data.decode("latin-1").encode("utf-16"),
    "UTF-32-LE": lambda data: data.decode("latin-1").encode("utf-32-le"),
    "JSON string": lambda data: json.dumps({"key": _as_text(data)}).encode(),
}


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(PEM_PRIVATE)),
    st.lists(st.sampled_from(sorted(ARMOUR)), max_size=3),
    st.sampled_from(sorted(WRAPPING)),
    st.text(alphabet=st.characters(exclude_characters="-"), max_size=40),
)
def test_armour_and_wrapping_variations_are_caught(name: str, armour: list[str], wrapping: str, junk: str) -> None:
    data = PEM_PRIVATE[name]
    for variation in armour:
        data = ARMOUR[variation](data, junk)
    assert classify(WRAPPING[wrapping](data)) == PRIVATE


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(VECTORS)), st.sampled_from(sorted(WRAPPING)))
def test_every_format_is_caught_in_every_wrapping(name: str, wrapping: str) -> None:
    assert holds_private(WRAPPING[wrapping](VECTORS[name]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096) | st.text(max_size=2048).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_arbitrary_input_gets_an_answer(data: bytes) -> None:
    assert classify(data) in (PRIVATE, PUBLIC, UNPROVEN)


def test_the_work_is_bounded_at_the_inspection_limit() -> None:
    nested = b"0\x80" * (INSPECTION_LIMIT // 2)  # indefinite-length nesting as deep as the bytes allow
    json_strings = json.dumps(["A" * 64] * (INSPECTION_LIMIT // 70)).encode()
    armour = b"-----BEGIN X-----\n" * (INSPECTION_LIMIT // 18)  # blocks that never end
    dashes = b"---BEGIN " * (INSPECTION_LIMIT // 9)
    lengths = base64.b64encode(b"\x30\x82" * (INSPECTION_LIMIT // 3))[:INSPECTION_LIMIT]
    for data in (nested, json_strings, lengths, armour, dashes):
        started = time.monotonic()
        assert classify(data) == UNPROVEN
        assert time.monotonic() - started < 5
