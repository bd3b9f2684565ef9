"""Session tokens read without joserfc's ``jwt.decode`` (chalicelib/sessions/compact.py): the same answers as
``jwt.decode`` on every token, each refusal under the same check; the signature compared in constant time against
its one canonical encoding; and the remembered header segments, which spare a header's decoding and nothing else.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jws import JWSRegistry

from chalicelib.jose import MalformedToken, TokenCheck, compact_segments, decode_check, jws_header, protected_header
from chalicelib.sessions import tokens as tokens_module
from chalicelib.sessions.compact import (
    MAX_HEADER_CHARS,
    check_signature,
    claims_of,
    payload_of,
    segments,
    signature_of,
)
from chalicelib.sessions.exceptions import SessionTokenRejected
from chalicelib.sessions.keys import SessionKey
from chalicelib.sessions.tokens import HEADERS_REMEMBERED, MAX_TOKEN_BYTES, SessionTokens, sign
from tests.unit.test_session_tokens import (
    REFRESH,
    STORE_TTL,
    TTL,
    Clock,
    FakeSecrets,
    SpyKeys,
    assert_rejected,
    b64,
    claims,
    forge,
    hmac_signer,
    make_store,
    make_tokens,
    window,
)

T0 = 1_800_000_000
KEY = SessionKey("0b9d3f52-5a4e-4c8e-9f39-7f1d6f6a4a11", "AWSCURRENT", 0.0, bytes(range(32)))
TOKEN = sign(KEY, claims())
HEADER, PAYLOAD, SIGNATURE = TOKEN.split(".")
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def ours(token: object) -> TokenCheck | None:
    """What the session verifier's compact reading answers (None: the signature holds and the claims are JSON)."""
    try:
        header, payload, signature = segments(token, max_bytes=MAX_TOKEN_BYTES)
        raw = payload_of(payload)
        check_signature(KEY, header, payload, signature)
        claims_of(raw)
    except SessionTokenRejected as rejected:
        return rejected.check
    return None


def joserfcs(token: object) -> TokenCheck | None:
    """What ``jwt.decode`` answered in its place, with the check the verifier logged for it."""
    try:
        jwt.decode(token, OctKey.import_key(KEY.secret), registry=JWSRegistry(algorithms=["HS256"]))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as error:
        return decode_check(error)
    return None


def test_a_token_joserfc_signed_reads_as_joserfc_reads_it() -> None:
    assert ours(TOKEN) is joserfcs(TOKEN) is None
    assert signature_of(KEY, f"{HEADER}.{PAYLOAD}".encode()) == SIGNATURE
    assert claims_of(payload_of(PAYLOAD)) == jwt.decode(TOKEN, OctKey.import_key(KEY.secret)).claims


@settings(max_examples=400, deadline=None)
@given(
    segment=st.sampled_from([1, 2]),
    edit=st.sampled_from(["replace", "insert", "delete", "truncate"]),
    where=st.integers(min_value=0, max_value=10_000),
    char=st.one_of(st.sampled_from(B64URL), st.sampled_from(["=", "+", "/", " ", "\n", ".", "é", "\x00"])),
)
def test_any_edit_of_payload_or_signature_gets_joserfcs_answer_under_the_same_check(
    segment: int, edit: str, where: int, char: str
) -> None:
    parts = TOKEN.split(".")
    text = parts[segment]
    at = where % (len(text) + 1)
    parts[segment] = {
        "replace": text[:at] + char + text[at + 1 :],
        "insert": text[:at] + char + text[at:],
        "delete": text[:at] + text[at + 1 :],
        "truncate": text[:at],
    }[edit]
    edited = ".".join(parts)
    assert ours(edited) == joserfcs(edited)
    if edited != TOKEN:
        assert ours(edited) in ("shape", "signature")


@pytest.mark.parametrize(
    ("payload", "check"),
    [
        (b64(b"[1, 2]"), "shape"),  # signed, but not an object
        (b64(b"{"), "shape"),
        (b64('{"sub": "\u00e9"}'.encode("utf-16")), "shape"),  # JSON, but not UTF-8
        ("", "shape"),
    ],
)
def test_a_signed_payload_that_is_no_json_object_is_the_tokens_shape(payload: str, check: TokenCheck) -> None:
    signature = b64(hmac_signer(KEY.secret)(f"{HEADER}.{payload}".encode()))
    assert ours(f"{HEADER}.{payload}.{signature}") == check


def test_only_the_canonical_signature_matches() -> None:
    # The last character carries 4 unused bits: "...A" and "...B" decode alike with a lenient decoder.
    last = SIGNATURE[-1]
    sibling = B64URL[B64URL.index(last) ^ 1]
    for variant in (SIGNATURE[:-1] + sibling, SIGNATURE + "=", SIGNATURE.replace("-", "+").replace("_", "/")):
        if variant != SIGNATURE:
            with pytest.raises(SessionTokenRejected) as refused:
                check_signature(KEY, HEADER, PAYLOAD, variant)
            assert refused.value.check == "signature"


def test_the_hmac_is_keyed_once_per_key_and_never_consumed() -> None:
    key = SessionKey(KEY.version_id, KEY.stage, KEY.created_at, KEY.secret)
    template = key.hmac_sha256
    assert signature_of(key, b"a.b") == signature_of(key, b"a.b")  # a copy is updated, never the template
    assert key.hmac_sha256 is template
    assert "secret" not in repr(key)
    assert KEY.secret.hex() not in repr(key)


# --- chalicelib.jose: the segments and the header policy, apart --------------------------------------------------


def test_protected_header_is_the_policy_over_the_first_segment() -> None:
    assert protected_header(TOKEN, max_bytes=MAX_TOKEN_BYTES) == jws_header(HEADER) == json.loads(payload_of(HEADER))
    assert compact_segments(TOKEN, max_bytes=MAX_TOKEN_BYTES, dots=2) == [HEADER, PAYLOAD, SIGNATURE]


@pytest.mark.parametrize("bad", [None, 42, b"a.b.c", "a.b", "a.b.c.d", "x" * (MAX_TOKEN_BYTES - 1) + ".."])
def test_compact_segments_refuses_anything_but_a_bounded_str_with_the_dots(bad: Any) -> None:
    with pytest.raises(MalformedToken) as refused:
        compact_segments(bad, max_bytes=MAX_TOKEN_BYTES, dots=2)
    assert refused.value.check == "shape"


# --- the verifier: remembered header segments ---------------------------------------------------------------------


class HeaderReads:
    """Counts the verifier's header decodings (chalicelib.jose.jws_header as tokens.py calls it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = jws_header

        def counted(segment: str) -> dict[str, Any]:
            self.count += 1
            return real(segment)

        monkeypatch.setattr(tokens_module, "jws_header", counted)


@pytest.fixture
def setup() -> tuple[FakeSecrets, Clock, SpyKeys, SessionTokens, str]:
    backend, clock = FakeSecrets(), Clock(T0)
    key_a = backend.rotate(T0 - 86_400)
    keys = SpyKeys(make_store(backend, clock))
    return backend, clock, keys, make_tokens(keys, clock), key_a


def test_a_header_segment_is_decoded_once_its_kid_looked_up_every_time(
    setup: tuple[FakeSecrets, Clock, SpyKeys, SessionTokens, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, keys, tokens, key_a = setup
    reads = HeaderReads(monkeypatch)
    first, _, _ = tokens.issue("user-1", "sess-1", T0 + 3600)
    second, _, _ = tokens.issue("user-2", "sess-2", T0 + 3600)
    for token in (first, second, first):
        tokens.verify(token)
    assert reads.count == 1
    assert keys.finds == [key_a] * 3


def test_a_refused_token_teaches_the_verifier_nothing(
    setup: tuple[FakeSecrets, Clock, SpyKeys, SessionTokens, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, _, _, tokens, key_a = setup
    reads = HeaderReads(monkeypatch)
    header = {"alg": "HS256", "typ": "JWT", "kid": key_a}
    forged = forge(header, claims(), hmac_signer(b"not the key" * 4))
    for _ in range(3):
        assert_rejected(tokens, forged, check="signature")
    assert reads.count == 3
    assert tokens.verify(forge(header, claims(), hmac_signer(backend.secrets[key_a]))).subject == "user-1"
    assert reads.count == 4


def test_a_remembered_header_still_gets_every_other_check(
    setup: tuple[FakeSecrets, Clock, SpyKeys, SessionTokens, str],
) -> None:
    backend, clock, _, tokens, key_a = setup
    token, _, _ = tokens.issue("user-1", "sess-1", T0 + 3600)
    tokens.verify(token)  # its header segment is remembered from here on
    header, payload, signature = token.split(".")
    tampered = b64(json.dumps({**json.loads(payload_of(payload)), "sub": "admin"}).encode())
    assert_rejected(tokens, f"{header}.{tampered}.{signature}", check="signature")
    assert_rejected(tokens, f"{header}.{payload}.{signature[:-1]}", check="signature")
    clock.now = T0 + TTL + 6
    assert_rejected(tokens, token, check="exp")
    assert tokens.verify(token, expired_grace=REFRESH).subject == "user-1"
    # Its key rotated out, then retired: refused though its header was read long ago (the key check comes first).
    backend.rotate(T0)
    clock.now = T0 + window(STORE_TTL) + 1
    assert_rejected(tokens, token, check="key", expired_grace=REFRESH)
    assert backend.stages["AWSPREVIOUS"].version_id == key_a


def test_the_memory_of_headers_is_bounded(
    setup: tuple[FakeSecrets, Clock, SpyKeys, SessionTokens, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, _, _, tokens, key_a = setup
    reads = HeaderReads(monkeypatch)
    signer = hmac_signer(backend.secrets[key_a])
    # Distinct segments for one header: JSON's insignificant whitespace, each genuinely signed.
    variants = [_signed_with_spacing(key_a, signer, spaces) for spaces in range(HEADERS_REMEMBERED + 1)]
    assert len({token.split(".")[0] for token in variants}) == HEADERS_REMEMBERED + 1
    for token in variants:
        tokens.verify(token)
    assert len(tokens._known_headers) <= HEADERS_REMEMBERED
    before = reads.count
    tokens.verify(variants[-1])  # the newest is remembered
    assert reads.count == before


def test_a_header_over_joserfcs_bound_is_refused_before_any_key_is_touched(
    setup: tuple[FakeSecrets, Clock, SpyKeys, SessionTokens, str],
) -> None:
    backend, _, keys, tokens, key_a = setup
    signer = hmac_signer(backend.secrets[key_a])
    token = _signed_with_spacing(key_a, signer, MAX_HEADER_CHARS)
    assert len(token.split(".")[0]) > MAX_HEADER_CHARS
    assert assert_rejected(tokens, token, check="shape") == "header too long"
    assert keys.finds == []


def _signed_with_spacing(kid: str, signer: Any, spaces: int) -> str:
    header = '{"alg": "HS256", "typ": "JWT",' + " " * spaces + f'"kid": "{kid}"}}'
    signing_input = f"{b64(header.encode())}.{b64(json.dumps(claims()).encode())}"
    return f"{signing_input}.{b64(signer(signing_input.encode()))}"


# sign() assembles the token itself; HS256 is deterministic, so it must be exactly what joserfc's serializer writes,
# for any claims a caller may hand it (text beyond ASCII, nested values, numbers) and any key and version id.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=64),
    version=st.uuids().map(str),
    extra=st.dictionaries(st.text(max_size=12), _JSON, max_size=4),
)
def test_sign_writes_exactly_the_token_joserfc_writes(secret: bytes, version: str, extra: dict[str, Any]) -> None:
    from joserfc import jws

    key = SessionKey(version, "AWSCURRENT", 0.0, secret)
    document = {**extra, **claims()}
    theirs = jws.serialize_compact(
        {"alg": "HS256", "typ": "JWT", "kid": version},
        json.dumps(document, separators=(",", ":"), sort_keys=True),
        OctKey.import_key(secret),
        registry=JWSRegistry(algorithms=["HS256"]),
    )
    assert sign(key, document) == theirs
    assert jwt.decode(theirs, OctKey.import_key(secret), algorithms=["HS256"]).claims == document


@pytest.mark.parametrize(
    ("version", "secret"), [(123, bytes(32)), (None, bytes(32)), ("v", b""), ("v", "text"), ("v", bytearray(32))]
)
def test_a_session_key_is_a_text_version_and_bytes(version: object, secret: object) -> None:
    with pytest.raises(TypeError, match="text version id and non-empty bytes"):
        SessionKey(version, "AWSCURRENT", 0.0, secret)  # type: ignore[arg-type]
