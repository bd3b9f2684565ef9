"""A ``GET /token`` request's query, read into a :class:`TokenRequest` (syntax only; the token policy decides what
the caller may have).

The parameters are an allow-list, as STS GetWebIdentityToken's are: ``aud`` (1 to 10, repeated), ``alg`` (one of the
deployment's enabled algorithms), ``ttl`` (seconds) and request tags as ``tag.<key>=<value>`` (at most 50). Any other
parameter, ``alg``/``ttl`` given twice, or any of them empty, is refused rather than ignored: a caller who misspells
``aud`` or passes an unset variable must not get a token for the default audience. An audience of
CREDPORT_TOKEN_EXCLUSIVE_AUDIENCES (``sts.amazonaws.com`` by default) is only asked for alone: AWS STS takes a token
for any of its audiences, so every other audience's holder could exchange it for AWS credentials.

Tags follow AWS's tag rules (IAM User Guide, "Tagging IAM resources" and "Passing session tags in AWS STS"): key
1..128 and value 0..256 characters of Unicode letters, digits, spaces and ``_ . : / = + - @``. Keys are compared as
a reader would compare them, by their NFKC case-folded form (a full-width ``aws:x`` and ``aws:x``, ``straße`` and
``STRASSE`` are one key), for uniqueness and for the reserved prefixes ``aws:`` (AWS's) and ``credport:`` (ours); a
key may not start or end with a space, which a reader would trim.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.config import Settings, is_valid_audience
from chalicelib.errors import BadRequest
from chalicelib.tokens.exceptions import InvalidAlgorithm, InvalidAudience, InvalidTag, InvalidTtl

__all__ = [
    "MAX_AUDIENCES",
    "MAX_AUDIENCE_LENGTH",
    "MAX_REQUEST_TAGS",
    "RESERVED_TAG_PREFIXES",
    "InvalidParameter",
    "TokenRequest",
    "check_tag",
    "read_token_request",
    "tag_key_identity",
]

MAX_AUDIENCES = 10
MAX_AUDIENCE_LENGTH = 256
MAX_REQUEST_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
RESERVED_TAG_PREFIXES = ("aws:", "credport:")
TAG_PARAMETER = "tag."
_DIGITS = re.compile(r"[0-9]{1,6}")
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


class InvalidParameter(BadRequest):
    code = "invalid_parameter"


@dataclass(frozen=True)
class TokenRequest:
    audiences: tuple[str, ...]  # one or more, in the order asked
    algorithm: str
    ttl: int
    tags: Mapping[str, str]  # request tags, in the order asked
    # Whether the caller named them: a default is narrowed to what the token policy allows the caller, a choice not.
    algorithm_given: bool = True
    ttl_given: bool = True

    @property
    def audience_claim(self) -> str | list[str]:
        """``aud`` as RFC 7519 allows it: a string for one audience, an array for several."""
        return self.audiences[0] if len(self.audiences) == 1 else list(self.audiences)


def _values(query: Any, name: str) -> list[str]:
    getlist = getattr(query, "getlist", None)
    return list(getlist(name)) if getlist is not None else [query[name]]


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def read_token_request(query: Mapping[str, str] | None, settings: Settings) -> TokenRequest:
    """Read ``aud``/``alg``/``ttl``/``tag.*`` from the query (a Chalice MultiDict, or a plain mapping)."""
    query = query or {}
    tags: dict[str, str] = {}
    for name in query:
        if name.startswith(TAG_PARAMETER):
            for value in _values(query, name):
                _add_tag(tags, name[len(TAG_PARAMETER) :], value)
        elif name not in ("aud", "alg", "ttl"):
            raise InvalidParameter(f"Unknown query parameter {_shown(name)}: expected aud, alg, ttl or tag.<key>.")
    alg, ttl = _single(query, "alg"), _single(query, "ttl")
    return TokenRequest(
        audiences=_audiences(_values(query, "aud") if "aud" in query else [], settings),
        algorithm=_algorithm(alg, settings),
        ttl=_ttl(ttl, settings),
        tags=tags,
        algorithm_given=alg is not None,
        ttl_given=ttl is not None,
    )


def _single(query: Any, name: str) -> str | None:
    if name not in query:
        return None
    values = _values(query, name)
    if len(values) > 1:
        raise InvalidParameter(f"The query parameter {name} may be given once.")
    return values[0]


def _audiences(requested: Sequence[str], settings: Settings) -> tuple[str, ...]:
    if not requested:
        return (settings.token_default_audience,)
    if len(requested) > MAX_AUDIENCES:
        raise InvalidAudience(f"At most {MAX_AUDIENCES} audiences per token, got {len(requested)}.")
    for audience in requested:
        if len(audience) > MAX_AUDIENCE_LENGTH or not is_valid_audience(audience) or "*" in audience:
            raise InvalidAudience(
                f"An audience is 1 to {MAX_AUDIENCE_LENGTH} printable ASCII characters without spaces or '*'."
            )
    if len(set(requested)) != len(requested):
        raise InvalidAudience("Each audience may be asked for once.")
    exclusive = [a for a in requested if a in settings.token_exclusive_audiences]
    if exclusive and len(requested) > 1:
        raise InvalidAudience(
            f"{exclusive[0]} must be a token's only audience: any other audience's holder could replay the token to it."
        )
    return tuple(requested)


def _algorithm(requested: str | None, settings: Settings) -> str:
    if requested is None:
        return settings.token_algorithms[0]
    if requested not in settings.token_algorithms:
        raise InvalidAlgorithm(f"alg must be one of {', '.join(settings.token_algorithms)}.")
    return requested


def _ttl(requested: str | None, settings: Settings) -> int:
    s = settings
    if requested is None:
        return s.token_default_ttl
    # ASCII digits only: str.isdigit() also accepts '²' and other scripts' digits.
    if not _DIGITS.fullmatch(requested) or not s.token_min_ttl <= int(requested) <= s.token_max_ttl:
        raise InvalidTtl(f"ttl must be a whole number of seconds from {s.token_min_ttl} to {s.token_max_ttl}.")
    return int(requested)


def _tag_text(text: str) -> bool:
    return all(
        ch in _TAG_PUNCTUATION or unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "Zs" for ch in text
    )


def tag_key_identity(key: str) -> str:
    """What a reader takes the key for: its NFKC form, case-folded (full-width and styled letters, German sharp s)."""
    return unicodedata.normalize("NFKC", key).casefold()


def check_tag(key: str, value: str) -> None:
    """Refuse a tag AWS's rules refuse, or one under a reserved prefix (:class:`InvalidTag` says which rule)."""
    if not 1 <= len(key) <= MAX_TAG_KEY or not _tag_text(key) or key != key.strip():
        raise InvalidTag(
            f"A tag key is 1 to {MAX_TAG_KEY} letters, digits, inner spaces or _ . : / = + - @ (tag.{_shown(key)})."
        )
    if len(value) > MAX_TAG_VALUE or not _tag_text(value):
        raise InvalidTag(
            f"A tag value is at most {MAX_TAG_VALUE} letters, digits, spaces or _ . : / = + - @ (tag.{_shown(key)})."
        )
    if tag_key_identity(key).startswith(RESERVED_TAG_PREFIXES):
        raise InvalidTag(f"Tag keys starting with {' or '.join(RESERVED_TAG_PREFIXES)} are reserved ({_shown(key)}).")


def _add_tag(tags: dict[str, str], key: str, value: str) -> None:
    check_tag(key, value)
    if tag_key_identity(key) in {tag_key_identity(k) for k in tags}:
        raise InvalidTag(f"Each tag key may be given once, ignoring case ({_shown(key)}).")
    if len(tags) >= MAX_REQUEST_TAGS:
        raise InvalidTag(f"At most {MAX_REQUEST_TAGS} request tags per token.")
    tags[key] = value
