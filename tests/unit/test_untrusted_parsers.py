"""Property-based tests on every parser of untrusted bytes: each raises only its documented error, never crashes.

Two kinds of input per parser: arbitrary input (bytes, text, JSON), and structured-but-mutated input (a valid
token, envelope, key, request or event with one part replaced, truncated, flipped or swapped for arbitrary
JSON), which gets past the first checks and reaches the deeper ones. A parser may also accept its input; then
the result must have the documented shape. ``EXAMPLES`` counts the examples each parser was given (printed at
the end of the module with ``-s``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib.autoid import MalformedRequest, Want, build_request, parse_request
from chalicelib.envelope import (
    EnvelopeError,
    RecipientKey,
    decrypt_direct,
    generate_recipient_key,
    open_envelope,
    private_key_from_pem,
    public_key_from_pem,
    seal,
    seal_direct,
)
from chalicelib.errors import InvalidToken
from chalicelib.events import KeyEventBus, MalformedKeyEvent, MalformedNotification, S3ObjectRouter, parse_notification
from chalicelib.events.s3_objects import S3ObjectEvent
from chalicelib.jose import MalformedToken, jwe_header, protected_header
from chalicelib.sessions.keys import SessionKey
from chalicelib.sessions.tokens import SESSION_AUDIENCE, SessionClaims, SessionTokens, sign
from chalicelib.tokens.algorithms import ALGORITHMS, public_jwk
from chalicelib.tokens.exceptions import TokenRejected
from chalicelib.tokens.verify import TokenVerifier
from tests.conftest import EVENTS_DIR

EXAMPLES: Counter[str] = Counter()
MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_800_000_000


@pytest.fixture(scope="module", autouse=True)
def report_examples() -> Iterator[None]:
    yield
    print("\nhypothesis examples per parser:")
    for name, count in sorted(EXAMPLES.items()):
        print(f"  {name:40} {count}")


# --- strategies -----------------------------------------------------------------------------------------------

# Every code point, lone surrogates included (hypothesis leaves category Cs out unless told), and the characters
# that broke parsers or AWS calls before, drawn often: surrogates (botocore cannot encode them), NUL and other
# controls, bidi overrides, non-characters, a byte order mark, astral characters.
HOSTILE_CHARS = st.sampled_from(
    [
        *("\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\x1b", "\x7f", "\x85", "\u202e", "\u2066", "\ufeff"),
        *("\ufffe", "\uffff", "\ufdd0", "\U0010ffff", "\U0001f511", "é", "\\", '"', "."),
    ]
)
ANY_CHAR = st.characters(exclude_categories=()) | HOSTILE_CHARS


def utext(max_size: int, *, min_size: int = 0) -> st.SearchStrategy[str]:
    """Arbitrary Unicode text, surrogates and other hostile characters included (not only what UTF-8 can hold)."""
    return st.text(ANY_CHAR, min_size=min_size, max_size=max_size)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and the infinities included: json.dumps writes them, json.loads reads them back
    | utext(max_size=40)
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=8) | st.dictionaries(utext(max_size=12), children, max_size=8),
    max_leaves=30,
)
JSON_OBJECT = st.dictionaries(utext(max_size=12), JSON, max_size=8)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# Deep nesting is what makes json.loads raise RecursionError instead of ValueError.
DEEP_JSON = st.sampled_from([nested(10), nested(5_000), nested(50_000), '{"a":' * 20_000 + "1" + "}" * 20_000])
# json.dumps spells a lone surrogate as an escape ("\ud800"), as an attacker's JSON would; with ensure_ascii off it
# writes the character itself, which reaches a parser as such in a str (a Lambda event the runtime decoded).
JSON_TEXT = JSON.map(json.dumps) | JSON.map(lambda v: json.dumps(v, ensure_ascii=False)) | DEEP_JSON | utext(300)
# The same as bytes: UTF-8 where it can be, and surrogates encoded anyway ("surrogatepass", not UTF-8 at all).
JSON_BYTES = JSON_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass")) | st.binary(max_size=300)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


SEGMENT = (
    utext(max_size=60)
    | st.binary(max_size=300).map(b64)
    | JSON.map(b64json)
    | DEEP_JSON.map(lambda text: b64(text.encode()))
    | st.just("")
)


@st.composite
def mutated_compact(draw: st.DrawFn, token: str) -> str:
    """A compact JOSE serialization with one part changed the way an attacker or a bad network would."""
    parts = token.split(".")
    index = draw(st.integers(0, len(parts) - 1))
    kind = draw(st.sampled_from(["replace", "flip", "truncate", "drop", "add", "swap", "whole"]))
    if kind == "replace":
        parts[index] = draw(SEGMENT)
    elif kind == "flip" and parts[index]:
        position = draw(st.integers(0, len(parts[index]) - 1))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.é\x00 \ud800\udfff"
        parts[index] = parts[index][:position] + draw(st.sampled_from(alphabet)) + parts[index][position + 1 :]
    elif kind == "truncate":
        parts[index] = parts[index][: draw(st.integers(0, max(0, len(parts[index]) - 1)))]
    elif kind == "drop":
        del parts[index]
    elif kind == "add":
        parts.insert(index, draw(SEGMENT))
    elif kind == "swap":
        other = draw(st.integers(0, len(parts) - 1))
        parts[index], parts[other] = parts[other], parts[index]
    else:
        return draw(utext(max_size=200))
    return ".".join(parts)


@st.composite
def mutated_document(draw: st.DrawFn, document: Any) -> Any:
    """A deep copy of a JSON document with one to three places replaced by arbitrary JSON, or removed."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(document))
        if not paths:
            return draw(JSON)
        path = draw(st.sampled_from(paths))
        if not path:
            return draw(JSON)
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return document


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def only(error: type[BaseException] | tuple[type[BaseException], ...], call: Callable[[], Any]) -> Any:
    """The call's result, or None when it raised ``error``; any other exception fails the test."""
    try:
        return call()
    except error:
        return None


# --- chalicelib.jose: the header checks every JWT and JWE goes through first ---------------------------------

JWT_HEADER = {"alg": "RS256", "typ": "JWT", "kid": "k" * 43}
SAMPLE_JWT = f"{b64json(JWT_HEADER)}.{b64json({'sub': 'x'})}.{b64(b'signature')}"
SAMPLE_JWE = f"{b64json({'alg': 'RSA-OAEP-256', 'enc': 'A256GCM', 'kid': 'k'})}.{b64(b'ek')}.{b64(b'iv')}.x.y"


def _check_header(header: Any, allowed: frozenset[str]) -> None:
    if header is not None:
        assert isinstance(header, dict)
        assert set(header) <= allowed


@MANY
@given(
    st.one_of(
        utext(max_size=400),
        mutated_compact(SAMPLE_JWT),
        mutated_compact(SAMPLE_JWE),
        mutated_document(JWT_HEADER).map(lambda h: f"{b64json(h)}.e30.c2ln"),
        JSON,
        st.binary(max_size=50),
    )
)
def test_jose_headers_only_raise_malformed_token(token: Any) -> None:
    EXAMPLES["jose.protected_header/jwe_header"] += 1
    from chalicelib.jose import JWE_HEADERS, JWS_HEADERS

    header = only(MalformedToken, lambda: protected_header(token, max_bytes=8192))
    _check_header(header, JWS_HEADERS)
    if header is not None:
        assert header["typ"] == "JWT"
    _check_header(only(MalformedToken, lambda: jwe_header(token, max_bytes=8192)), JWE_HEADERS)


# --- chalicelib.tokens.verify: the token service's JWTs -------------------------------------------------------

ISSUER = "https://issuer.example"
AUDIENCE = "sts.amazonaws.com"
RSA_SIGNER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_SIGNER = ec.generate_private_key(ec.SECP256R1())


def _der(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


RSA_JWK = public_jwk(_der(RSA_SIGNER), ALGORITHMS["RS256"])
EC_JWK = public_jwk(_der(EC_SIGNER), ALGORITHMS["ES256"])
JWKS = {"keys": [RSA_JWK, EC_JWK]}
CLAIMS = {
    "iss": ISSUER,
    "sub": "arn:aws:iam::123456789012:role/app",
    "aud": AUDIENCE,
    "iat": NOW,
    "nbf": NOW,
    "exp": NOW + 900,
    "jti": "jti-1",
}


def _jws_signature(alg: str, signing_input: bytes) -> bytes:
    if alg == "ES256":
        r, s = decode_dss_signature(EC_SIGNER.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return RSA_SIGNER.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def mint(header: Any, claims: Any, alg: str = "RS256") -> str:
    """A compact JWS with exactly this header and payload, genuinely signed by a key in the JWKS."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64(_jws_signature(alg, signing_input.encode()))}"


def valid_token(alg: str = "RS256") -> str:
    kid = RSA_JWK["kid"] if alg == "RS256" else EC_JWK["kid"]
    return mint({"alg": alg, "typ": "JWT", "kid": kid}, CLAIMS, alg)


VERIFIER = TokenVerifier(JWKS, issuer=ISSUER, audiences=[AUDIENCE], now=lambda: NOW)


def test_the_token_fixtures_are_valid() -> None:
    for alg in ("RS256", "ES256"):
        assert VERIFIER.verify(valid_token(alg))["sub"] == CLAIMS["sub"]


def _verified(token: Any, verifier: TokenVerifier = VERIFIER) -> None:
    claims = only(TokenRejected, lambda: verifier.verify(token))
    if claims is not None:  # accepted: then it is a genuine, current token of ours
        assert claims["iss"] == ISSUER
        assert claims["aud"] == AUDIENCE
        assert all(type(claims[name]) is int for name in ("iat", "nbf", "exp"))


@MANY
@given(
    st.one_of(utext(max_size=600), JSON, mutated_compact(valid_token("RS256")), mutated_compact(valid_token("ES256")))
)
def test_token_verifier_only_raises_token_rejected(token: Any) -> None:
    EXAMPLES["TokenVerifier.verify (arbitrary, mutated)"] += 1
    _verified(token)


@MANY
@given(st.sampled_from(["RS256", "ES256"]), mutated_document(CLAIMS), st.data())
def test_genuinely_signed_tokens_with_arbitrary_claims_or_headers(alg: str, claims: Any, data: st.DataObject) -> None:
    """Signed with a key in the JWKS, so the claim checks (not the signature) decide."""
    EXAMPLES["TokenVerifier.verify (signed, mutated claims/header)"] += 1
    header: Any = {"alg": alg, "typ": "JWT", "kid": RSA_JWK["kid"] if alg == "RS256" else EC_JWK["kid"]}
    if data.draw(st.booleans()):
        header = data.draw(mutated_document(header))
    _verified(mint(header, claims, alg))


@SOME
@given(st.sampled_from([RSA_JWK, EC_JWK]), st.data())
def test_token_verifier_survives_a_hostile_jwks(jwk: dict[str, Any], data: st.DataObject) -> None:
    """The JWKS comes over the network too (the client's ``credport verify``): its entries are checked."""
    EXAMPLES["TokenVerifier.verify (mutated JWKS)"] += 1
    hostile = data.draw(mutated_document(jwk))
    if isinstance(hostile, dict):
        hostile["kid"] = jwk["kid"]  # so the token finds it
    verifier = TokenVerifier({"keys": [hostile]}, issuer=ISSUER, now=lambda: NOW)
    _verified(valid_token("RS256" if jwk is RSA_JWK else "ES256"), verifier)


# --- chalicelib.sessions.tokens: session bearer tokens --------------------------------------------------------

SESSION_KID = "6b1a2f0c-0a4d-4b49-8b3d-2f1f3c1f0e11"
SESSION_KEY = SessionKey(SESSION_KID, "AWSCURRENT", 0.0, os.urandom(32))


class OneKey:
    signing_lag = 300.0

    def current(self) -> SessionKey:
        return SESSION_KEY

    def find(self, kid: str) -> SessionKey | None:
        return SESSION_KEY if kid == SESSION_KID else None


SESSIONS = SessionTokens(OneKey(), issuer=ISSUER, token_ttl=420, refresh_window=300, clock=lambda: NOW)
SESSION_CLAIMS = {
    "iss": ISSUER,
    "sub": "arn:aws:iam::123456789012:role/app",
    "aud": SESSION_AUDIENCE,
    "iat": NOW,
    "exp": NOW + 420,
    "sid": "session-1",
    "sess_exp": NOW + 7200,
    "jti": "8Yh0y3pQ1m2lq5x8ZkR4aA",
}
SESSION_HEADER = {"alg": "HS256", "typ": "JWT", "kid": SESSION_KID}


def hs256(header: Any, claims: Any) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64(hmac.new(SESSION_KEY.secret, signing_input.encode(), hashlib.sha256).digest())}"


def test_the_session_fixtures_are_valid() -> None:
    assert SESSIONS.verify(sign(SESSION_KEY, SESSION_CLAIMS)).session_id == "session-1"
    assert SESSIONS.verify(hs256(SESSION_HEADER, SESSION_CLAIMS)).session_id == "session-1"


def _session_verified(token: Any) -> None:
    for grace in (0, 300):
        claims = only(InvalidToken, lambda grace=grace: SESSIONS.verify(token, expired_grace=grace))
        if claims is not None:
            assert isinstance(claims, SessionClaims)
            assert isinstance(claims.subject, str)
            assert claims.subject
            assert isinstance(claims.session_id, str)
            assert claims.session_id
            assert all(type(v) is int for v in (claims.issued_at, claims.expires_at, claims.session_ends_at))


@MANY
@given(st.one_of(utext(max_size=600), JSON, mutated_compact(hs256(SESSION_HEADER, SESSION_CLAIMS))))
def test_session_tokens_only_raise_invalid_token(token: Any) -> None:
    EXAMPLES["SessionTokens.verify (arbitrary, mutated)"] += 1
    _session_verified(token)


@MANY
@given(mutated_document(SESSION_CLAIMS), st.booleans(), st.data())
def test_genuinely_signed_session_tokens_with_arbitrary_claims(
    claims: Any, mutate_header: bool, data: st.DataObject
) -> None:
    EXAMPLES["SessionTokens.verify (signed, mutated claims/header)"] += 1
    header = data.draw(mutated_document(SESSION_HEADER)) if mutate_header else SESSION_HEADER
    _session_verified(hs256(header, claims))


# --- chalicelib.envelope: JWE envelopes and PEM keys ----------------------------------------------------------

RECIPIENT = generate_recipient_key(2048)
KEYS = {RECIPIENT.kid: RECIPIENT}
SEALED = seal(RECIPIENT, b'{"secret_name": "credport-dev/imported/x", "value": "v"}')
DIRECT_KEY = os.urandom(32)
SEALED_DIRECT = seal_direct(DIRECT_KEY, b'{"v": 2}')
RSA_HEADER = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": RECIPIENT.kid}
DIRECT_HEADER = {"alg": "dir", "enc": "A256GCM"}


def test_the_envelope_fixtures_open() -> None:
    assert open_envelope(SEALED, KEYS).kid == RECIPIENT.kid
    assert decrypt_direct(SEALED_DIRECT, DIRECT_KEY) == b'{"v": 2}'


def with_header(envelope: str, header: Any) -> str:
    return ".".join([b64json(header), *envelope.split(".")[1:]])


@MANY
@given(
    st.one_of(
        utext(max_size=600),
        JSON,
        mutated_compact(SEALED),
        mutated_document(RSA_HEADER).map(lambda h: with_header(SEALED, h)),
        # the right header over another envelope's parts, and the parts of this one reshuffled
        st.just(with_header(SEALED_DIRECT, RSA_HEADER)),
    )
)
def test_open_envelope_only_raises_envelope_error(envelope: Any) -> None:
    EXAMPLES["envelope.open_envelope"] += 1
    opened = only(EnvelopeError, lambda: open_envelope(envelope, KEYS))
    if opened is not None:
        assert opened.kid == RECIPIENT.kid
        assert isinstance(opened.plaintext, bytes)


@MANY
@given(
    st.one_of(
        utext(max_size=600),
        JSON,
        mutated_compact(SEALED_DIRECT),
        mutated_document(DIRECT_HEADER).map(lambda h: with_header(SEALED_DIRECT, h)),
        st.just(with_header(SEALED, DIRECT_HEADER)),
    ),
    st.sampled_from([DIRECT_KEY, os.urandom(32), b"", os.urandom(16)]),
)
def test_decrypt_direct_only_raises_envelope_error(envelope: Any, key: bytes) -> None:
    EXAMPLES["envelope.decrypt_direct"] += 1
    assert isinstance(only(EnvelopeError, lambda: decrypt_direct(envelope, key)), (bytes, type(None)))


def _pem(key: Any, *, private: bool, fmt: Any = None) -> bytes:
    if private:
        return bytes(
            key.private_bytes(
                serialization.Encoding.PEM, fmt or serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, fmt or serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


SMALL_RSA = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (refused: too small)
OTHER_KEYS = [
    ec.generate_private_key(ec.SECP256R1()),
    ec.generate_private_key(ec.SECP384R1()),
    ed25519.Ed25519PrivateKey.generate(),
    x25519.X25519PrivateKey.generate(),
    dsa.generate_private_key(key_size=1024),  # noqa: S505 (not RSA: refused)
    SMALL_RSA,
]
PUBLIC_PEMS = [
    _pem(RSA_SIGNER, private=False),
    _pem(RSA_SIGNER, private=False, fmt=serialization.PublicFormat.PKCS1),
    *(_pem(k, private=False) for k in OTHER_KEYS),
]
PRIVATE_PEMS = [
    _pem(RSA_SIGNER, private=True),
    _pem(RSA_SIGNER, private=True, fmt=serialization.PrivateFormat.TraditionalOpenSSL),
    *(_pem(k, private=True) for k in OTHER_KEYS),
    RSA_SIGNER.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    ),
    RSA_SIGNER.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ),
    RSA_SIGNER.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    RSA_SIGNER.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ),
]
LABELS = [b"PUBLIC KEY", b"RSA PUBLIC KEY", b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"CERTIFICATE"]


def armor(label: bytes, der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"


def unarmor(pem: bytes) -> tuple[bytes, bytes] | None:
    lines = pem.strip().splitlines()
    if len(lines) < 3 or not lines[0].startswith(b"-----BEGIN "):
        return None
    return lines[0][11:-5], base64.b64decode(b"".join(lines[1:-1]))


@st.composite
def mutated_pem(draw: st.DrawFn, pems: list[bytes]) -> bytes:
    """A real key with its DER mutated (bytes replaced, inserted, cut) and armored again, maybe relabelled."""
    pem = draw(st.sampled_from(pems))
    parsed = unarmor(pem)
    if parsed is None or draw(st.integers(0, 5)) == 0:  # OpenSSH and DER keys: mutate the bytes as they are
        data = bytearray(pem)
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] = draw(st.integers(0, 255))
        return bytes(data)
    label, der = parsed
    data = bytearray(der)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["byte", "insert", "cut", "truncate"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "byte" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "cut":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            del data[position:]
    if draw(st.booleans()):
        label = draw(st.sampled_from(LABELS))
    return armor(label, bytes(data))


RSA_OID = bytes.fromhex("2a864886f70d010101")


def unknown_algorithm(pem: bytes) -> bytes:
    """The key with its algorithm OID broken: cryptography raised UnsupportedAlgorithm (not a ValueError)."""
    parsed = unarmor(pem)
    assert parsed is not None
    return armor(parsed[0], parsed[1].replace(RSA_OID, b"\0" + RSA_OID[1:]))


PEM_INPUT = st.one_of(
    st.binary(max_size=600),
    st.sampled_from(LABELS).flatmap(lambda label: st.binary(max_size=400).map(lambda der: armor(label, der))),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.just(json.dumps(RECIPIENT.public_jwk()).encode()),
    st.sampled_from(PUBLIC_PEMS + PRIVATE_PEMS),
)


@MANY
@given(st.one_of(PEM_INPUT, mutated_pem(PUBLIC_PEMS), mutated_pem(PRIVATE_PEMS)))
@example(unknown_algorithm(PUBLIC_PEMS[0]))
def test_public_key_from_pem_only_raises_envelope_error(pem: bytes) -> None:
    EXAMPLES["envelope.public_key_from_pem"] += 1
    key = only(EnvelopeError, lambda: public_key_from_pem(pem))
    if key is not None:
        assert isinstance(key, RecipientKey)
        assert key.private is None
        assert key.public.raw_value.key_size >= 2048


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # the 1024-bit key among the inputs
@MANY
@given(st.one_of(PEM_INPUT, mutated_pem(PRIVATE_PEMS), mutated_pem(PUBLIC_PEMS)))
@example(unknown_algorithm(PRIVATE_PEMS[0]))
def test_private_key_from_pem_only_raises_envelope_error(pem: bytes) -> None:
    EXAMPLES["envelope.private_key_from_pem"] += 1
    key = only(EnvelopeError, lambda: private_key_from_pem(pem))
    if key is not None:
        assert isinstance(key, RecipientKey)
        assert key.private is not None
        assert key.private.is_private


# --- chalicelib.autoid.protocol: the decrypted auto-id request ------------------------------------------------
# (arbitrary bytes and arbitrary JSON are fuzzed in test_autoid_protocol.py; here: a genuine request, mutated)

AUTOID_DOCUMENT, _ = build_request("client-one", 1, os.urandom(1024 * 1024), Want(secret_id="credport-dev/autoid/db"))


@MANY
@given(
    st.one_of(
        mutated_document(AUTOID_DOCUMENT).map(lambda document: json.dumps(document).encode()),
        mutated_document(AUTOID_DOCUMENT).map(
            lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ),
        JSON_BYTES,
    )
)
@example(json.dumps({**AUTOID_DOCUMENT, "client_id": "client-one\ud800"}).encode())
@example(json.dumps({**AUTOID_DOCUMENT, "want": {"secret_id": "credport-dev/autoid/\udfff"}}).encode())
def test_autoid_parse_request_on_mutated_genuine_requests(plaintext: bytes) -> None:
    EXAMPLES["autoid.parse_request (mutated, unicode)"] += 1
    request = only(MalformedRequest, lambda: parse_request(plaintext))
    if request is not None:
        assert request.client_id.isascii()
        assert all(text is None or text.isascii() for text in (request.want.secret_id, request.want.role_arn))
        assert len(request.intervals) == 16
        assert (len(request.nonce), len(request.proof), len(request.response_key)) == (16, 32, 32)
        assert (request.want.secret_id is None) != (request.want.role_arn is None)


# --- chalicelib.events.s3_objects: S3 notifications (the SQS message bodies) ----------------------------------

S3_NOTIFICATION = json.loads((EVENTS_DIR / "s3_object_created.json").read_text())
S3_TEST_EVENT = json.loads((EVENTS_DIR / "s3_test_event.json").read_text())


def _checked_events(body: str) -> list[S3ObjectEvent] | None:
    parsed = only(MalformedNotification, lambda: parse_notification(body))
    for event in parsed or ():
        # The types the router and the handlers rely on.
        assert isinstance(event.event_name, str)
        assert isinstance(event.bucket, str)
        assert isinstance(event.key, str)
        event.key.encode("utf-8")  # what every S3 call will do with it
        assert type(event.size) is int
        assert isinstance(event.etag, str)
        assert event.version_id is None or isinstance(event.version_id, str)
        assert isinstance(event.sequencer, str)
    return parsed


def _dispatched(events: list[S3ObjectEvent] | None) -> None:
    router = S3ObjectRouter()
    seen: list[S3ObjectEvent] = []
    router.register("inbox/", seen.append)
    router.dispatch(events or [])


@MANY
@given(
    st.one_of(
        JSON_TEXT,
        mutated_document(S3_NOTIFICATION).map(json.dumps),
        mutated_document(S3_TEST_EVENT).map(json.dumps),
        st.lists(mutated_document(S3_NOTIFICATION["Records"][0]), min_size=1, max_size=3).map(
            lambda records: json.dumps({"Records": records})
        ),
    )
)
@example(nested(50_000))
@example(json.dumps({"Records": [{**S3_NOTIFICATION["Records"][0], "eventName": None}]}))
@example(json.dumps(S3_NOTIFICATION).replace('"size": 1024', '"size": Infinity'))
@example(json.dumps(S3_NOTIFICATION).replace("inbox/team+a", "inbox/\\ud800"))
def test_s3_notifications_only_raise_malformed_notification(body: str) -> None:
    EXAMPLES["events.parse_notification (+ router.dispatch)"] += 1
    _dispatched(_checked_events(body))


# --- chalicelib.events.key_events: SNS key events --------------------------------------------------------------

SNS_MESSAGE = json.loads(json.loads((EVENTS_DIR / "sns_key_event.json").read_text())["Records"][0]["Sns"]["Message"])


@MANY
@given(
    st.one_of(
        JSON_TEXT,
        mutated_document(SNS_MESSAGE).map(json.dumps),
        st.integers(256 * 1024 - 40, 256 * 1024).map(
            lambda n: json.dumps({"type": "session-key-rotated", "pad": "x" * n})
        ),
    )
)
@example(nested(50_000))
def test_key_events_only_raise_malformed_key_event(message: str) -> None:
    EXAMPLES["events.KeyEventBus.deliver"] += 1
    bus = KeyEventBus()
    seen: list[Any] = []
    bus.subscribe("session-key-rotated", seen.append)
    delivered = only(MalformedKeyEvent, lambda: bus.deliver(message))
    assert delivered in (None, 0, 1)
    assert all(isinstance(event, dict) and event["type"] == "session-key-rotated" for event in seen)
