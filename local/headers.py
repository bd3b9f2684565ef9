"""Numbers and dates in request headers and query parameters, read with ASCII-only rules.

Python's own readers are too lenient for untrusted text: ``int()`` accepts any Unicode decimal digit (Arabic-Indic
or fullwidth digits), ``_`` separators, a sign and surrounding Unicode whitespace, and raises on more than 4300
digits; ``str.isdigit()`` is true for superscripts ``int()`` then refuses; ``strptime``'s ``%Y``/``%m`` match any
Unicode digit. Every reader here first matches the whole text against an ASCII allow-list, so what it accepts is
exactly what AWS's parsers accept and anything else is ``None`` (or :class:`HeaderRefused`), never an exception.
Dates are checked against the calendar without arithmetic, so a year-9999 stamp parses and is refused later by the
clock check instead of overflowing.

Used by the local gateway (:mod:`local.gateway`, :mod:`local.sigv4`) and by the embedded AWS's authentication
(:mod:`local.iam.authenticate`, :mod:`local.iam.presigned`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence

__all__ = [
    "HeaderRefused",
    "amz_date",
    "amz_stamp",
    "combined",
    "content_length",
    "decimal",
    "http_date",
]

_DIGITS = re.compile(r"[0-9]+")
_AMZ_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# RFC 9110's IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and what botocore's formatdate writes for a Date it
# signs ("Mon, 15 Jan 2024 12:00:00 -0000"): UTC only, so no offset arithmetic can overflow.
_HTTP_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{2}) (" + "|".join(_MONTHS) + r") ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) (?:GMT|UTC|[+-]0000)"
)
_OWS = " \t"  # the only whitespace HTTP trims around a field value (RFC 9110, section 5.5)


class HeaderRefused(Exception):
    """A request the gateway answers itself: ``status`` (400, 413) and API Gateway's ``message``; ``reason`` says
    which check refused (for tests and logs, never sent)."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(f"{status} {message}: {reason}")
        self.status = status
        self.message = message
        self.reason = reason


def decimal(text: str, cap: int) -> int | None:
    """``text`` as a non-negative ASCII decimal; ``cap + 1`` for any larger value (never ``int()`` on a huge
    string); ``None`` unless ``text`` is ASCII digits only (no sign, '_', whitespace or other Unicode digit)."""
    if not _DIGITS.fullmatch(text):
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(cap)):
        return cap + 1
    return min(int(significant), cap + 1)


def content_length(values: Sequence[str], limit: int) -> int:
    """The body length a request declares (0 without Content-Length). A value that is not one ASCII decimal, or a
    field given more than once, is 400 (RFC 9112, section 6.3: an invalid Content-Length is unrecoverable); a
    length over ``limit`` is API Gateway's 413."""
    if not values:
        return 0
    if len(values) > 1:
        raise HeaderRefused(400, "Bad Request", "Content-Length given more than once")
    length = decimal(values[0].strip(_OWS), limit)
    if length is None:
        raise HeaderRefused(400, "Bad Request", "Content-Length is not a decimal number")
    if length > limit:
        raise HeaderRefused(413, "Request Too Long", f"Content-Length over {limit}")
    return length


def combined(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request fields by name, a field given more than once (in any spelling) as its values joined by commas, as
    HTTP combines a repeated field (RFC 9110, section 5.3) and SigV4 canonicalises it: a repeated Authorization or
    X-Amz-Date then fails its own format instead of one copy being picked."""
    by_name: dict[str, tuple[str, list[str]]] = {}
    for name, value in fields:
        by_name.setdefault(name.lower(), (name, []))[1].append(value)
    return {spelling: ",".join(values) for spelling, values in by_name.values()}


def _datetime(*fields: str) -> dt.datetime | None:
    # The regexes admit only ASCII digits, so int() here is bounded; the calendar (month 13, 30 February, year 0)
    # is checked by datetime itself.
    year, month, day, hour, minute, second = (int(f) for f in fields)
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        return None


def amz_date(text: str) -> dt.datetime | None:
    """An ``X-Amz-Date`` (``YYYYMMDD'T'HHMMSS'Z'``, SigV4's ISO 8601 basic format, UTC), or ``None``."""
    match = _AMZ_DATE.fullmatch(text)
    return _datetime(*match.groups()) if match else None


def http_date(text: str) -> dt.datetime | None:
    """A ``Date`` header in UTC (IMF-fixdate, or ``-0000``/``+0000`` as botocore writes it), or ``None``."""
    match = _HTTP_DATE.fullmatch(text.strip(_OWS))
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    return _datetime(year, str(_MONTHS.index(month) + 1), day, hour, minute, second)


def amz_stamp(when: dt.datetime) -> str:
    """``when`` as an X-Amz-Date, with a four-digit year (``strftime('%Y')`` drops leading zeros on Linux)."""
    return f"{when.year:04d}{when.month:02d}{when.day:02d}T{when.hour:02d}{when.minute:02d}{when.second:02d}Z"
