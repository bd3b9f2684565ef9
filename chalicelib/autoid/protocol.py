"""Autonomous identification, protocol version 2: the request's shape and the proof of holding the entropy.

The client proves it holds its entropy file by an HMAC keyed with 16 snippets of exactly 64 bytes at
offsets it picks (inside the file, and no two overlapping, so the key always covers 16 x 64 distinct bytes of
the file: overlapping snippets would let a client that knows fewer bytes pass) over
``nonce || iat (8 bytes, big-endian) || client_id``. The rules close the known implementation's holes: an
empty, short or overlapping interval can no longer stand in for the file, the proof is compared in constant
time, and ``iat`` plus a single-use nonce bound replays. Parsing is strict (exact keys, types and sizes):
anything else is a malformed request, never a guess.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib import base64url
from chalicelib.autoid.exceptions import MalformedRequest
from chalicelib.errors import AuthenticationFailed
from chalicelib.untrusted import UntrustedInput, loads

__all__ = [
    "ENTROPY_BYTES",
    "INTERVALS",
    "MAX_SKEW_SECONDS",
    "SNIPPET_BYTES",
    "VERSION",
    "AutoIdRequest",
    "MalformedRequest",
    "Want",
    "build_request",
    "check_freshness",
    "compute_proof",
    "parse_request",
    "snippet_offsets",
    "verify_proof",
]

VERSION = 2
INTERVALS = 16
MAX_INTERVALS = 4 * INTERVALS
SNIPPET_BYTES = 64
ENTROPY_BYTES = 1024 * 1024
MAX_SKEW_SECONDS = 60
NONCE_BYTES = 16
PROOF_BYTES = 32
RESPONSE_KEY_BYTES = 32
MAX_REQUEST_BYTES = 8 * 1024
_CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_SECRET_ID = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
# A role ARN as IAM writes it: ``role/`` then the role's path segments (none for path '/') then its name. No empty,
# '.' or '..' segment and no trailing '/': such a string names no role, and a pattern rule reading names off it by
# shape could be led astray (an ARN ending in '/' has an empty "name").
ROLE_SEGMENT = r"(?!\.{1,2}/)[\w+=,.@-]{1,512}/"
ROLE_HEAD = r"arn:aws[a-z-]*:iam::\d{12}:role/"
_ROLE_ARN = re.compile(rf"{ROLE_HEAD}(?:{ROLE_SEGMENT})*(?!\.{{1,2}}$)[\w+=,.@-]{{1,64}}", re.ASCII)
MAX_ROLE_ARN = 2048
_KEYS = frozenset({"v", "client_id", "gen", "iat", "nonce", "intervals", "proof", "rk", "want"})


@dataclass(frozen=True)
class Want:
    secret_id: str | None = None
    role_arn: str | None = None

    def document(self) -> dict[str, str]:
        return {"secret_id": self.secret_id} if self.secret_id is not None else {"role_arn": str(self.role_arn)}


@dataclass(frozen=True)
class AutoIdRequest:
    client_id: str
    generation: int
    issued_at: int
    nonce: bytes
    intervals: tuple[tuple[int, int], ...]
    want: Want
    proof: bytes = field(repr=False)
    response_key: bytes = field(repr=False)


def _b64(value: Any, size: int, name: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise MalformedRequest(f"'{name}' must be base64url.")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise MalformedRequest(f"'{name}' must be base64url.") from None
    if len(raw) != size:
        raise MalformedRequest(f"'{name}' must be {size} bytes.")
    return raw


def _int(value: Any, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise MalformedRequest(f"'{name}' must be a whole number from {low} to {high}.")
    return value


def parse_request(plaintext: bytes) -> AutoIdRequest:
    """The decrypted request, if it has exactly the version-2 shape; :class:`MalformedRequest` otherwise."""
    if len(plaintext) > MAX_REQUEST_BYTES:
        raise MalformedRequest("The request is too large.")
    try:
        document = loads(plaintext)  # strict: no lone surrogate, NaN or non-UTF-8 text gets past the parse
    except UntrustedInput:
        raise MalformedRequest() from None
    if not isinstance(document, dict) or set(document) != _KEYS:
        raise MalformedRequest(f"The request must have exactly the fields {sorted(_KEYS)}.")
    if document["v"] != VERSION or type(document["v"]) is not int:
        raise MalformedRequest("Only protocol version 2 is accepted.")
    client_id = document["client_id"]
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise MalformedRequest("'client_id' is malformed.")
    intervals = document["intervals"]
    # How many intervals a proof has is part of what it proves (its coverage): any count but INTERVALS is the proof
    # check's uniform 401, not a parse error that would tell the shape apart. The parse only bounds the work.
    if not isinstance(intervals, list) or not 1 <= len(intervals) <= MAX_INTERVALS:
        raise MalformedRequest(f"'intervals' must be a list of at most {MAX_INTERVALS} pairs.")
    pairs = []
    for pair in intervals:
        if not isinstance(pair, list) or len(pair) != 2:
            raise MalformedRequest("Each interval is a pair [offset, length].")
        pairs.append((_int(pair[0], "offset", 0, ENTROPY_BYTES), _int(pair[1], "length", 0, ENTROPY_BYTES)))
    return AutoIdRequest(
        client_id=client_id,
        generation=_int(document["gen"], "gen", 1, 2**31),
        issued_at=_int(document["iat"], "iat", 0, 2**40),
        nonce=_b64(document["nonce"], NONCE_BYTES, "nonce"),
        intervals=tuple(pairs),
        proof=_b64(document["proof"], PROOF_BYTES, "proof"),
        response_key=_b64(document["rk"], RESPONSE_KEY_BYTES, "rk"),
        want=_want(document["want"]),
    )


def _want(value: Any) -> Want:
    if not isinstance(value, dict) or len(value) != 1:
        raise MalformedRequest("'want' names exactly one of secret_id or role_arn.")
    ((kind, target),) = value.items()
    if kind == "secret_id" and isinstance(target, str) and _SECRET_ID.fullmatch(target):
        return Want(secret_id=target)
    if kind == "role_arn" and isinstance(target, str) and len(target) <= MAX_ROLE_ARN and _ROLE_ARN.fullmatch(target):
        return Want(role_arn=target)
    raise MalformedRequest("'want' names exactly one of secret_id or role_arn.")


def _message(nonce: bytes, issued_at: int, client_id: str) -> bytes:
    return nonce + issued_at.to_bytes(8, "big") + client_id.encode("utf-8")


def compute_proof(
    entropy: bytes, intervals: Sequence[tuple[int, int]], nonce: bytes, issued_at: int, client_id: str
) -> bytes:
    key = b"".join(entropy[offset : offset + length] for offset, length in intervals)
    return hmac.new(key, _message(nonce, issued_at, client_id), hashlib.sha256).digest()


def verify_proof(request: AutoIdRequest, entropy: bytes) -> None:
    """Raise :class:`AuthenticationFailed` unless the intervals follow the rules and the proof matches."""
    offsets = sorted(offset for offset, _ in request.intervals)
    valid = (
        len(request.intervals) == INTERVALS
        and all(length == SNIPPET_BYTES for _, length in request.intervals)
        # Sorted offsets at least a snippet apart: no byte of the file is counted twice.
        and all(later - earlier >= SNIPPET_BYTES for earlier, later in itertools.pairwise(offsets))
        and all(0 <= offset <= len(entropy) - SNIPPET_BYTES for offset in offsets)
    )
    # Invalid intervals are never used to build the key (a client could otherwise make the server hash up to
    # 16 MiB per request): a dummy key of the right size keeps the work, and the timing, the same.
    intervals = request.intervals if valid else ((0, SNIPPET_BYTES),) * INTERVALS
    expected = compute_proof(entropy, intervals, request.nonce, request.issued_at, request.client_id)
    # Both checks run every time, and the comparison is constant-time: no timing tells which one failed.
    if not hmac.compare_digest(expected, request.proof) or not valid:
        raise AuthenticationFailed()


def check_freshness(request: AutoIdRequest, now: float) -> None:
    if abs(now - request.issued_at) > MAX_SKEW_SECONDS:
        raise AuthenticationFailed()


def snippet_offsets(size: int, *, random: Any = secrets) -> list[int]:
    """16 offsets of non-overlapping 64-byte snippets inside a file of ``size`` bytes, sorted, drawn uniformly
    from every such set. Sorted offsets o_1 < ... < o_k with o_{i+1} - o_i >= L map one to one onto distinct
    values y_i = o_i - (i - 1)(L - 1) in range(size - k*L + k), so a uniform k-subset of that range (drawn with
    the CSPRNG) is a uniform non-overlapping set."""
    span = size - INTERVALS * SNIPPET_BYTES + INTERVALS
    if span < INTERVALS:
        raise ValueError(f"{size} bytes cannot hold {INTERVALS} non-overlapping {SNIPPET_BYTES}-byte snippets")
    chosen: set[int] = set()
    while len(chosen) < INTERVALS:
        chosen.add(random.randbelow(span))
    return [y + index * (SNIPPET_BYTES - 1) for index, y in enumerate(sorted(chosen))]


def build_request(
    client_id: str, generation: int, entropy: bytes, want: Want, *, now: float | None = None, random: Any = secrets
) -> tuple[dict[str, Any], bytes]:
    """The client's side: a fresh request document and the response key it must keep to read the answer."""
    issued_at = int(time.time() if now is None else now)
    nonce = random.token_bytes(NONCE_BYTES)
    response_key = random.token_bytes(RESPONSE_KEY_BYTES)
    intervals = [(offset, SNIPPET_BYTES) for offset in snippet_offsets(len(entropy), random=random)]
    proof = compute_proof(entropy, intervals, nonce, issued_at, client_id)

    document = {
        "v": VERSION,
        "client_id": client_id,
        "gen": generation,
        "iat": issued_at,
        "nonce": base64url.text(nonce),
        "intervals": [list(pair) for pair in intervals],
        "proof": base64url.text(proof),
        "rk": base64url.text(response_key),
        "want": want.document(),
    }
    return document, response_key
