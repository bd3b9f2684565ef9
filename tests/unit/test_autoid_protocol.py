"""Auto-id protocol v2: the request's shape, the interval rules and the proof, with the known attacks."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.autoid import MalformedRequest, Want, build_request, check_freshness, parse_request, verify_proof
from chalicelib.autoid.protocol import ENTROPY_BYTES, SNIPPET_BYTES, compute_proof, snippet_offsets
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


def hmac_key_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every HMAC key the proof check builds from here on (what the work is sized by)."""
    seen: list[int] = []
    real_new = hmac.new

    def spy(key: bytes, *args: Any, **kwargs: Any) -> Any:
        seen.append(len(key))
        return real_new(key, *args, **kwargs)

    monkeypatch.setattr("chalicelib.autoid.protocol.hmac.new", spy)
    return seen


def test_invalid_intervals_never_size_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # Huge client-chosen lengths must not make the server hash megabytes: the key is built only from valid
    # intervals (a fixed-size dummy otherwise).
    huge = parsed(with_proof(request_document(), [[0, ENTROPY_BYTES]] * 16))
    seen = hmac_key_sizes(monkeypatch)
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
        {"intervals": []},
        {"intervals": [[0, 64]] * 65},  # the parse bounds the work; any other count is the proof's 401
        {"intervals": [[0, 64, 1]] * 16},
        {"intervals": [[-1, 64]] * 16},
        {"intervals": "0-64"},
        {"want": {}},
        {"want": {"secret_id": "a", "role_arn": "arn:aws:iam::123456789012:role/x"}},
        {"want": {"role_arn": "arn:aws:iam::123456789012:user/x"}},
        {"want": {"role_arn": "arn:aws:iam::123456789012:role/x/"}},  # an empty role name
        {"want": {"role_arn": "arn:aws:iam::123456789012:role/a/../x"}},  # no '..' segment names a role path
        {"want": {"role_arn": "arn:aws:iam::123456789012:role/a//x"}},
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


# Snippets never overlap: a proof always covers 16 x 64 distinct bytes of the file ----------------------------


def tiled(start: int = 0, gap: int = 0) -> list[list[int]]:
    return [[start + i * (SNIPPET_BYTES + gap), SNIPPET_BYTES] for i in range(16)]


def accepted(intervals: list[list[int]]) -> bool:
    try:
        verify_proof(parsed(with_proof(request_document(), intervals)), ENTROPY)
    except AuthenticationFailed:
        return False
    return True


def test_snippets_overlapping_by_one_byte_are_refused_and_adjacent_ones_accepted() -> None:
    assert accepted(tiled())  # adjacent: 1024 distinct bytes
    assert accepted(tiled(start=ENTROPY_BYTES - 16 * SNIPPET_BYTES))  # adjacent, up to the last byte
    for index in range(1, 16):
        overlapping = tiled()
        overlapping[index][0] -= 1  # overlaps the snippet before it by one byte
        assert not accepted(overlapping), index
    shuffled = tiled(gap=100)[::-1]  # the order of the snippets is the client's: only the coverage counts
    assert accepted(shuffled)
    shuffled[3][0] = shuffled[4][0] + SNIPPET_BYTES - 1
    assert not accepted(shuffled)


def test_an_overlapping_proof_is_refused_with_the_same_work(monkeypatch: pytest.MonkeyPatch) -> None:
    overlapping = tiled()
    overlapping[5][0] -= 1
    refused, valid = (parsed(with_proof(request_document(), intervals)) for intervals in (overlapping, tiled()))
    seen = hmac_key_sizes(monkeypatch)
    with pytest.raises(AuthenticationFailed):
        verify_proof(refused, ENTROPY)
    verify_proof(valid, ENTROPY)
    assert seen == [16 * SNIPPET_BYTES, 16 * SNIPPET_BYTES]  # the same key size, valid or not


# Offsets clustered near both ends of the file, so that overlaps, adjacency and overruns all come up often.
_OFFSET = st.one_of(
    st.integers(0, 40 * SNIPPET_BYTES),
    st.integers(ENTROPY_BYTES - 40 * SNIPPET_BYTES, ENTROPY_BYTES),
    st.builds(lambda i: i * SNIPPET_BYTES, st.integers(0, 40)),
)


@settings(max_examples=300, deadline=None)
@given(offsets=st.lists(_OFFSET, min_size=16, max_size=16))
def test_a_set_of_snippets_is_valid_iff_they_do_not_overlap_and_lie_in_the_file(offsets: list[int]) -> None:
    ordered = sorted(offsets)
    expected = all(b - a >= SNIPPET_BYTES for a, b in itertools.pairwise(ordered)) and all(
        0 <= o <= ENTROPY_BYTES - SNIPPET_BYTES for o in ordered
    )
    assert accepted([[o, SNIPPET_BYTES] for o in offsets]) == expected


class _Scripted:
    """A stand-in for ``secrets`` whose ``randbelow`` answers from a script (to reach the extremes)."""

    def __init__(self, answers: list[int]) -> None:
        self._answers = iter(answers)

    def randbelow(self, bound: int) -> int:
        value = next(self._answers)
        assert 0 <= value < bound
        return value

    def token_bytes(self, size: int) -> bytes:
        return os.urandom(size)


def _covers_distinct_bytes(offsets: list[int], size: int) -> bool:
    return (
        len(offsets) == 16
        and offsets == sorted(offsets)
        and all(b - a >= SNIPPET_BYTES for a, b in itertools.pairwise(offsets))
        and offsets[0] >= 0
        and offsets[-1] <= size - SNIPPET_BYTES
    )


def test_the_builder_never_overlaps_and_reaches_both_ends() -> None:
    span = ENTROPY_BYTES - 16 * SNIPPET_BYTES + 16
    lowest = snippet_offsets(ENTROPY_BYTES, random=_Scripted(list(range(16))))
    highest = snippet_offsets(ENTROPY_BYTES, random=_Scripted([span - 1 - i for i in range(16)]))
    assert lowest == [i * SNIPPET_BYTES for i in range(16)]
    assert highest == [ENTROPY_BYTES - (16 - i) * SNIPPET_BYTES for i in range(16)]
    for _ in range(200):
        document, _ = build_request("client-one", 1, ENTROPY, WANT, now=NOW)
        offsets = [offset for offset, _ in document["intervals"]]
        assert _covers_distinct_bytes(offsets, ENTROPY_BYTES)
        assert all(length == SNIPPET_BYTES for _, length in document["intervals"])
        verify_proof(parsed(document), ENTROPY)


def test_the_builder_maps_draws_one_to_one_onto_every_valid_set() -> None:
    """A file one byte larger than 16 snippets holds exactly 17 valid sets: the 17 possible draws (16 of 17
    values) must give all 17, each once, so a uniform draw is a uniform choice among the valid sets."""
    size = 16 * SNIPPET_BYTES + 1
    draws = [[v for v in range(17) if v != skipped] for skipped in range(17)]
    sets = {tuple(snippet_offsets(size, random=_Scripted(draw))) for draw in draws}
    assert len(sets) == 17
    assert all(_covers_distinct_bytes(list(s), size) for s in sets)
    assert snippet_offsets(16 * SNIPPET_BYTES, random=_Scripted(list(range(16)))) == [
        i * SNIPPET_BYTES for i in range(16)
    ]
    with pytest.raises(ValueError, match="cannot hold"):
        snippet_offsets(16 * SNIPPET_BYTES - 1)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(16 * SNIPPET_BYTES, 4 * 16 * SNIPPET_BYTES))
def test_the_builder_never_overlaps_in_any_file_size(size: int) -> None:
    assert _covers_distinct_bytes(snippet_offsets(size), size)
