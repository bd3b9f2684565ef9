"""Untrusted text, checked once where it enters (chalicelib/untrusted.py): the strict JSON loader, the field
validator, and every parser or entry point that reads a caller's text, fed arbitrary Unicode (lone surrogates,
controls, bidi and non-characters included) and arbitrary bytes. Each returns a value whose text every AWS call
and log line can carry, or raises its module's own refusal; nothing else. The named tests pin the cases that
failed before: lone surrogates reached botocore (UnicodeEncodeError: a 500, a dead letter), a key event's type
reached the log, an ARN from the environment reached the settings, a JWKS entry raised KeyError.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from chalice.test import Client
from hypothesis import example, given
from hypothesis import strategies as st

from chalicelib.api import check_request_text, json_body
from chalicelib.errors import CredportError, InvalidText, InvalidToken
from chalicelib.events import KeyEventBus, MalformedKeyEvent
from chalicelib.jose import MalformedToken, jwe_header, protected_header
from chalicelib.sessions.service import bearer_token
from chalicelib.tokens.exceptions import TokenRejected
from chalicelib.tokens.verify import TokenVerifier
from chalicelib.untrusted import TextKind, UntrustedInput, check_text, encodable, loads
from tests.unit.test_api import build_app
from tests.unit.test_untrusted_parsers import (
    EC_JWK,
    EXAMPLES,
    JSON,
    JSON_BYTES,
    JSON_TEXT,
    MANY,
    b64json,
    only,
    utext,
)

SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
E = TypeVar("E", bound=BaseException)


def outcome(error: type[E], call: Callable[[], Any]) -> tuple[Any, E | None]:
    """``(result, None)``, or ``(None, the error)`` when the call raised ``error``; anything else propagates."""
    try:
        return call(), None
    except error as raised:
        return None, raised


def all_text(value: Any) -> list[str]:
    """Every string in a decoded JSON document, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, child in value.items() for text in (key, *all_text(child))]
    if isinstance(value, list):
        return [text for child in value for text in all_text(child)]
    return []


# --- chalicelib.untrusted -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_loads_refuses_a_lone_surrogate_anywhere(surrogate: str) -> None:
    escaped = json.dumps(surrogate)  # "\ud800", the escape as sent
    for text in (f'{{"a": {escaped}}}', f"{{{escaped}: 1}}", f'[1, {{"b": [{escaped}]}}]', escaped):
        for raw in (text, text.encode()):
            with pytest.raises(UntrustedInput) as refused:
                loads(raw)
            assert refused.value.reason == "unencodable_text"
            assert surrogate not in str(refused.value)  # the reason, never the text


def test_loads_accepts_what_json_means() -> None:
    assert loads('{"k": "\\ud83d\\udd11 \\u00e9 \\\\ud800"}') == {"k": "\U0001f511 é \\ud800"}  # a pair; an escaped \
    assert loads(b"\xef\xbb\xbf[1]") == [1]  # json.loads(bytes) tolerated a UTF-8 byte order mark: so do we


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"\xed\xa0\x80", b"\xff", b"{", 7])
def test_loads_refuses_what_is_not_json(raw: Any) -> None:
    with pytest.raises(UntrustedInput) as refused:
        loads(raw)
    assert refused.value.reason == "bad_json"


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("a\x00b", TextKind.FREE_TEXT, "forbidden_character"),
        ("a\tb", TextKind.NAME, "forbidden_character"),
        ("a\u200bb", TextKind.NAME, "forbidden_character"),  # zero width space: invisible in a name
        ("a\u202eb", TextKind.FREE_TEXT, "forbidden_character"),
        ("\ufdd0", TextKind.FREE_TEXT, "forbidden_character"),
        ("\U0001fffe", TextKind.NAME, "forbidden_character"),
        ("\ud800", TextKind.VALUE, "unencodable_text"),
        ("é" * 3, TextKind.VALUE, "too_long"),  # 6 bytes > 5
        (7, TextKind.NAME, "not_text"),
    ],
)
def test_check_text_refusals(text: Any, kind: TextKind, reason: str) -> None:
    with pytest.raises(UntrustedInput) as refused:
        check_text(text, kind, max_bytes=5)
    assert refused.value.reason == reason


@MANY
@given(st.one_of(JSON_TEXT, JSON_BYTES))
@example('{"\\ud800": 1}')
@example(b'["\\udfff"]')
def test_loads_only_raises_untrusted_input(raw: str | bytes) -> None:
    EXAMPLES["untrusted.loads"] += 1
    document, refused = outcome(UntrustedInput, lambda: loads(raw))
    if refused is not None:
        assert refused.reason in ("bad_json", "unencodable_text")
        return
    assert all(encodable(text) for text in all_text(document))
    assert document == json.loads(raw)  # what json reads (NaN, which is unequal to itself, never gets here)


def _refused_character(char: str, kind: TextKind) -> bool:
    code, category = ord(char), unicodedata.category(char)
    if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE or category == "Cs":
        return True
    if kind is TextKind.NAME:
        return category in ("Cc", "Cf", "Co")
    return (
        category == "Cc" and char not in "\t\n\r"
    ) or char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@MANY
@given(utext(60), st.sampled_from(list(TextKind)))
def test_check_text_accepts_exactly_the_allowed_characters(text: str, kind: TextKind) -> None:
    EXAMPLES["untrusted.check_text"] += 1
    accepted = only(UntrustedInput, lambda: check_text(text, kind, max_chars=50))
    if kind is TextKind.VALUE:
        assert (accepted is not None) == (encodable(text) and len(text) <= 50)
    else:
        assert (accepted is not None) == (len(text) <= 50 and not any(_refused_character(c, kind) for c in text))


# --- chalicelib.api: every route's body, path, query and headers --------------------------------------------------


def test_a_lone_surrogate_in_a_body_is_invalid_text_not_a_route_error() -> None:
    with Client(build_app()) as client:
        response = client.http.post("/echo", body=b'{"a": "\\ud800"}', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert json.loads(response.body)["error"] == "invalid_text"


def _request(raw_body: Any = b"", **parts: Any) -> Any:
    return SimpleNamespace(raw_body=raw_body, uri_params=None, query_params=None, headers={}, **parts)


@MANY
@given(st.one_of(JSON_BYTES, JSON.map(lambda value: json.dumps(value).encode()), st.binary(max_size=100)))
def test_json_body_answers_a_value_or_a_400(raw: bytes) -> None:
    EXAMPLES["api.json_body"] += 1
    body, error = outcome(CredportError, lambda: json_body(_request(raw), max_bytes=200))
    if error is not None:
        assert (error.status, error.code) in ((400, "bad_request"), (400, "invalid_text"), (413, "payload_too_large"))
        return
    assert isinstance(body, dict)
    assert all(encodable(text) for text in all_text(body))


TEXT_PAIRS = st.dictionaries(utext(12), utext(20), max_size=4)


@MANY
@given(TEXT_PAIRS, TEXT_PAIRS, TEXT_PAIRS)
def test_request_text_is_refused_exactly_when_it_cannot_be_encoded(
    path: dict[str, str], query: dict[str, str], headers: dict[str, str]
) -> None:
    EXAMPLES["api.check_request_text"] += 1
    request = SimpleNamespace(uri_params=path, query_params=query, headers=headers)
    _, error = outcome(InvalidText, lambda: check_request_text(request))  # type: ignore[arg-type]
    if error is not None:  # the answer itself must be sendable: it never repeats the text
        assert all(encodable(text) for text in error.body().values())
    refused = error is not None
    texts = [text for pairs in (path, query, headers) for pair in pairs.items() for text in pair]
    assert refused == (not all(encodable(text) for text in texts))


@MANY
@given(utext(200))
def test_bearer_headers_give_a_token_or_invalid_token(header: str) -> None:
    EXAMPLES["sessions.bearer_token"] += 1
    token = only(InvalidToken, lambda: bearer_token(header))
    assert token is None or (isinstance(token, str) and token)


# --- chalicelib.jose, key events, token verification --------------------------------------------------------------


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_a_jose_header_spelling_a_lone_surrogate_is_malformed(surrogate: str) -> None:
    header = b64json({"alg": "RS256", "typ": "JWT", "kid": "k" + surrogate})
    with pytest.raises(MalformedToken):
        protected_header(f"{header}.e30.c2ln", max_bytes=8192)
    with pytest.raises(MalformedToken):
        jwe_header(f"{header}.a.b.c.d", max_bytes=8192)


def test_a_key_event_with_an_unencodable_type_is_malformed() -> None:
    """Its type is logged: a lone surrogate would be lost with the log line (or fail the formatter)."""
    bus = KeyEventBus()
    seen: list[Any] = []
    bus.subscribe("\ud800", seen.append)
    with pytest.raises(MalformedKeyEvent):
        bus.deliver('{"type": "\\ud800"}')
    assert seen == []


def test_a_jwks_entry_with_an_unknown_curve_is_rejected_not_a_key_error() -> None:
    from tests.unit.test_untrusted_parsers import NOW, valid_token

    for crv in ("", "P-999", "\ud800"):
        verifier = TokenVerifier({"keys": [{**EC_JWK, "crv": crv}]}, issuer="https://issuer.example", now=lambda: NOW)
        with pytest.raises(TokenRejected) as rejected:
            verifier.verify(valid_token("ES256"))
        assert rejected.value.check == "key"  # the JWKS entry, not the token
