"""Auto-id protocol v2: the request's shape, the interval rules and the proof, with the known attacks."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.autoid import MalformedRequest, Want, build_request, check_freshness, parse_request, verify_proof
from chalicelib.autoid.protocol import ENTROPY_BYTES, SNIPPET_BYTES, compute_proof
from chalicelib.errors import AuthenticationFailed

ENTROPY = os.urandom(ENTROPY_BYTES)
NOW = 1_795_000_000
WANT = Want(secret_id="credport-dev/apps/db")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def request_document(**changes: Any) -> dict[str, Any]:
    document, _ = build_request("client-one", 1, ENTROPY, WANT, now=NOW)
    document.update(changes)
    return document


def parsed(document: dict[str, Any]) -> Any:
    return parse_request(json.dumps(document).encode())


def with_proof(document: dict[str, Any], intervals: list[list[int]], entropy: bytes = ENTROPY) -> dict[str, Any]:
    """What an attacker can compute: a proof over intervals of its choosing."""
    nonce = base64.urlsafe_b64decode(document["nonce"] + "==")
    proof = compute_proof(entropy, [tuple(p) for p in intervals], nonce, document["iat"], document["client_id"])
    return {**document, "intervals": intervals, "proof": b64(proof)}


def test_a_genuine_request_verifies() -> None:
    document, response_key = build_request(
        "client-one", 3, ENTROPY, Want(role_arn="arn:aws:iam::123456789012:role/app"), now=NOW
    )
    request = parsed(document)
    verify_proof(request, ENTROPY)
    check_freshness(request, NOW + 60)
    assert (request.client_id, request.generation, request.want.role_arn) == (
        "client-one",
        3,
        document["want"]["role_arn"],
    )
    assert request.response_key == response_key
    assert len({offset for offset, _ in request.intervals}) == 16


def test_empty_intervals_no_longer_stand_in_for_the_file() -> None:
    # The known implementation's hole: empty intervals hash to a constant anyone can compute.
    forged = with_proof(request_document(), [[i, 0] for i in range(16)], entropy=b"")
    with pytest.raises(AuthenticationFailed):
        verify_proof(parsed(forged), ENTROPY)


def test_one_byte_intervals_are_refused_even_with_the_right_bytes() -> None:
    short = with_proof(request_document(), [[i * 1000, 1] for i in range(16)])  # guessable one byte at a time
    with pytest.raises(AuthenticationFailed):
        verify_proof(parsed(short), ENTROPY)


@pytest.mark.parametrize(
    "intervals",
    [
        [[0, SNIPPET_BYTES]] * 16,  # the same snippet sixteen times
        [[i, SNIPPET_BYTES] for i in range(15)] + [[ENTROPY_BYTES - 10, SNIPPET_BYTES]],  # runs off the end
        [[i * 64, SNIPPET_BYTES + 1] for i in range(16)],  # not exactly 64 bytes
    ],
    ids=["duplicates", "outside-the-file", "wrong-length"],
)
def test_interval_rules(intervals: list[list[int]]) -> None:
    with pytest.raises(AuthenticationFailed):
        verify_proof(parsed(with_proof(request_document(), intervals)), ENTROPY)


def test_invalid_intervals_never_size_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # Huge client-chosen lengths must not make the server hash megabytes: the key is built only from valid
    # intervals (a fixed-size dummy otherwise).
    huge = parsed(with_proof(request_document(), [[0, ENTROPY_BYTES]] * 16))
    seen: list[int] = []
    real_new = hmac.new

    def spy(key: bytes, *args: Any, **kwargs: Any) -> Any:
        seen.append(len(key))
        return real_new(key, *args, **kwargs)

    monkeypatch.setattr("chalicelib.autoid.protocol.hmac.new", spy)
    with pytest.raises(AuthenticationFailed):
        verify_proof(huge, ENTROPY)
    assert seen == [16 * SNIPPET_BYTES]


def test_a_proof_made_with_another_file_fails() -> None:
    document = request_document()
    forged = with_proof(document, document["intervals"], entropy=os.urandom(ENTROPY_BYTES))
    with pytest.raises(AuthenticationFailed):
        verify_proof(parsed(forged), ENTROPY)


@pytest.mark.parametrize("field", ["client_id", "iat", "nonce"])
def test_the_proof_binds_client_time_and_nonce(field: str) -> None:
    document = request_document()
    changed = {"client_id": "client-two", "iat": NOW + 1, "nonce": b64(os.urandom(16))}[field]
    with pytest.raises(AuthenticationFailed):
        verify_proof(parsed({**document, field: changed}), ENTROPY)


def test_a_flipped_proof_bit_fails() -> None:
    document = request_document()
    proof = bytearray(base64.urlsafe_b64decode(document["proof"] + "=="))
    proof[0] ^= 1
    with pytest.raises(AuthenticationFailed):
        verify_proof(parsed({**document, "proof": b64(bytes(proof))}), ENTROPY)


@pytest.mark.parametrize(("skew", "fresh"), [(0, True), (60, True), (-60, True), (61, False), (-61, False)])
def test_freshness(skew: int, fresh: bool) -> None:
    request = parsed(request_document())
    if fresh:
        check_freshness(request, NOW + skew)
    else:
        with pytest.raises(AuthenticationFailed):
            check_freshness(request, NOW + skew)


@pytest.mark.parametrize(
    "changes",
    [
        {"v": 1},
        {"v": True},
        {"v": "2"},
        {"client_id": "Client One"},
        {"client_id": ""},
        {"gen": 0},
        {"gen": True},
        {"gen": 1.5},
        {"iat": "now"},
        {"nonce": b64(os.urandom(15))},
        {"nonce": "not*base64"},
        {"rk": b64(os.urandom(16))},
        {"proof": b64(os.urandom(31))},
        {"intervals": [[0, 64]] * 15},
        {"intervals": [[0, 64]] * 17},
        {"intervals": [[0, 64, 1]] * 16},
        {"intervals": [[-1, 64]] * 16},
        {"intervals": "0-64"},
        {"want": {}},
        {"want": {"secret_id": "a", "role_arn": "arn:aws:iam::123456789012:role/x"}},
        {"want": {"role_arn": "arn:aws:iam::123456789012:user/x"}},
        {"want": {"secret_id": "has space"}},
        {"want": {"credential_source": "anything"}},  # the old design let clients name any source
        {"extra": 1},
    ],
)
def test_malformed_requests_are_400(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedRequest) as refused:
        parsed(request_document(**changes))
    assert refused.value.status == 400


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"null", b"{" * 5000, b"x" * 9000])
def test_unreadable_requests_are_400(raw: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(raw)


def test_missing_fields_are_400() -> None:
    document = request_document()
    for name in list(document):
        with pytest.raises(MalformedRequest):
            parsed({k: v for k, v in document.items() if k != name})


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
        lambda children: st.lists(children, max_size=20) | st.dictionaries(st.text(max_size=12), children, max_size=12),
        max_leaves=60,
    )
)
def test_the_parser_only_ever_answers_malformed(value: Any) -> None:
    with contextlib.suppress(MalformedRequest):
        parse_request(json.dumps(value).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_the_parser_survives_any_bytes(raw: bytes) -> None:
    with contextlib.suppress(MalformedRequest):
        parse_request(raw)


def test_compute_proof_matches_the_specification() -> None:
    nonce, iat, client = os.urandom(16), NOW, "client-one"
    intervals = [(i * 4096, 64) for i in range(16)]
    key = b"".join(ENTROPY[o : o + 64] for o, _ in intervals)
    expected = hmac.new(key, nonce + iat.to_bytes(8, "big") + client.encode(), hashlib.sha256).digest()
    assert compute_proof(ENTROPY, intervals, nonce, iat, client) == expected
