"""Untrusted text, checked once where it enters: a strict JSON loader and a validator for "text AWS can store".

JSON may spell a lone UTF-16 surrogate (``"\\ud800"``); Python decodes it into a ``str`` that no UTF-8 encoder
accepts, so botocore (and the log formatter) fail on it with ``UnicodeEncodeError`` far from where it came in: a
500 on the API, a dead letter for an inbox file. :func:`loads` is the one JSON loader for untrusted input and
refuses such a document as a whole, at decode time, with a stable reason; :func:`check_text` holds one field to
the characters its kind allows. Callers map :class:`UntrustedInput` to their own refusal (a 400, a quarantine).
Reasons are stable codes for logs and receipts; the offending text is never repeated in them.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = [
    "FORBIDDEN_CHARACTER",
    "NOT_JSON",
    "NOT_TEXT",
    "TOO_LONG",
    "UNENCODABLE_TEXT",
    "TextKind",
    "UntrustedInput",
    "check_text",
    "encodable",
    "first_unencodable",
    "loads",
]

NOT_JSON = "bad_json"
NOT_TEXT = "not_text"
UNENCODABLE_TEXT = "unencodable_text"
FORBIDDEN_CHARACTER = "forbidden_character"
TOO_LONG = "too_long"

# Only a \u escape of a surrogate can put one into a str decoded from strict UTF-8 text: when none is spelled,
# the (costlier) check of every decoded string is skipped. Paired escapes (an emoji) decode to one code point.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Bidirectional overrides and isolates make a console show text in another order than it is stored.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FREE_TEXT_CONTROLS = frozenset("\t\n\r")


class UntrustedInput(ValueError):
    """Input refused before use; ``reason`` is one of the codes above (never the input itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TextKind(enum.Enum):
    """What a field may hold, beyond being encodable as UTF-8 (which every kind requires)."""

    NAME = "name"  # identifiers, ids, audiences: no control, format (bidi, zero-width), or non-characters
    FREE_TEXT = "free_text"  # descriptions: also tab and line breaks, and format characters other than bidi ones
    VALUE = "value"  # secret values: any encodable text (they are opaque to credport)


def encodable(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (no lone surrogate): what every AWS call and log line needs."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_unencodable(values: Mapping[str, Any]) -> str | None:
    """The name of the first value (a str, or a list of str) that does not encode as UTF-8; None if all do."""
    for name, value in values.items():
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and not encodable(text) for text in texts):
            return name
    return None


def _refuse_constant(_name: str) -> Any:
    raise UntrustedInput(NOT_JSON)  # NaN, Infinity, -Infinity: Python reads them, JSON has no such values


def loads(raw: bytes | str) -> Any:
    """Strict JSON for untrusted input: UTF-8 only, no NaN or Infinity, and no string anywhere in the document
    (keys included) that cannot be encoded as UTF-8. Raises :class:`UntrustedInput`, never anything else:
    ``bad_json`` (not JSON, or bytes that are not UTF-8) or ``unencodable_text`` (a lone surrogate, spelled as
    an escape in the JSON, or already in a ``str`` handed in)."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")  # strict: encoded surrogates and invalid bytes are refused here
        except UnicodeDecodeError:
            raise UntrustedInput(NOT_JSON) from None  # JSON text is UTF-8 (RFC 8259, 8.1): these bytes are not JSON
        text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark, which json.loads(bytes) tolerated
    elif isinstance(raw, str):
        if not encodable(raw):  # a str can already hold surrogates (a Lambda event decoded by the runtime)
            raise UntrustedInput(UNENCODABLE_TEXT)
        text = raw
    else:
        raise UntrustedInput(NOT_JSON)
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except UntrustedInput:
        raise
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        raise UntrustedInput(NOT_JSON) from None
    if _SURROGATE_ESCAPE.search(text) and not _all_encodable(document):
        raise UntrustedInput(UNENCODABLE_TEXT)
    return document


def _all_encodable(document: Any) -> bool:
    """Every string of a decoded document, keys included, encodes as UTF-8 (iterative: no depth limit)."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if not encodable(value):
                return False
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return True


def _allowed(char: str, kind: TextKind) -> bool:
    code = ord(char)
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:  # Unicode non-characters: never interchanged
        return False
    category = unicodedata.category(char)
    if kind is TextKind.NAME:
        return category not in ("Cc", "Cf", "Cs", "Co")
    return (category != "Cc" or char in _FREE_TEXT_CONTROLS) and category != "Cs" and char not in _BIDI_CONTROLS


def check_text(value: object, kind: TextKind, *, max_chars: int | None = None, max_bytes: int | None = None) -> str:
    """``value`` if it is text of ``kind`` within the limits; :class:`UntrustedInput` otherwise: ``not_text``,
    ``unencodable_text``, ``forbidden_character`` or ``too_long``."""
    if not isinstance(value, str):
        raise UntrustedInput(NOT_TEXT)
    if max_chars is not None and len(value) > max_chars:
        raise UntrustedInput(TOO_LONG)
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise UntrustedInput(UNENCODABLE_TEXT) from None
    if max_bytes is not None and len(encoded) > max_bytes:
        raise UntrustedInput(TOO_LONG)
    if kind is not TextKind.VALUE and not all(_allowed(char, kind) for char in value):
        raise UntrustedInput(FORBIDDEN_CHARACTER)
    return value
