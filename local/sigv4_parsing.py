"""Reading a SigV4 signature off a request, as API Gateway reads it: a header signature (``Authorization:
AWS4-HMAC-SHA256 …``) or a presigned query string, into a :class:`ParsedSignature`; anything malformed is refused
with API Gateway's error (:class:`SignatureRejected`). Checking the signature is :mod:`local.sigv4`'s.

Every field is read by an ASCII allow-list (:mod:`local.headers`), and a header given twice (or in two spellings) is
read as its values joined by commas, as HTTP combines them, which no SigV4 field's format admits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from local.headers import amz_date, decimal, http_date

__all__ = [
    "ALGORITHM",
    "MISSING_TOKEN",
    "ParsedSignature",
    "SignatureRejected",
    "header",
    "parse_signature",
    "rejected",
]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
_CREDENTIAL_RE = re.compile(r"^([A-Z0-9]{16,128})/([0-9]{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request$")
_AUTH_PARAMETERS = ("Credential", "SignedHeaders", "Signature")
_OWS = " \t"  # the only whitespace HTTP trims around a field value; str.strip() would also eat U+0085, U+00A0...


class SignatureRejected(Exception):
    """The request is not authorised. ``error_type`` and ``message`` are API Gateway's, and ``status`` its HTTP
    status: 403 for every SigV4 refusal, malformed or not (API Gateway answers IncompleteSignatureException so)."""

    status = 403

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


MISSING_TOKEN = ("MissingAuthenticationTokenException", "Missing Authentication Token")


@dataclass(frozen=True)
class ParsedSignature:
    access_key: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: dt.datetime
    session_token: str | None
    presigned_expires: int | None  # seconds, for query-string signatures only


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The field's value; a field given in several spellings is its values joined as HTTP joins a repeated field,
    never one of them silently picked."""
    wanted = name.lower()
    values = [v for k, v in headers.items() if k.lower() == wanted]
    return ",".join(values) if values else None


def _not_iso_basic(value: str) -> SignatureRejected:
    return SignatureRejected(
        "IncompleteSignatureException",
        f"Date must be in ISO-8601 'basic format'. Got '{value[:64]}'. "
        "See http://docs.aws.amazon.com/general/latest/gr/sigv4-date-handling.html",
    )


def rejected(kind: tuple[str, str], message: str | None = None) -> SignatureRejected:
    return SignatureRejected(kind[0], message or kind[1])


def parse_signature(method: str, url: str, headers: Mapping[str, str]) -> ParsedSignature:
    """Read a header signature (``Authorization: AWS4-HMAC-SHA256 …``) or a presigned query string."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    query = dict(pairs)
    auth_names = [k for k, _ in pairs if k.startswith("X-Amz-")]
    if len(auth_names) != len(set(auth_names)):
        raise SignatureRejected("IncompleteSignatureException", "Authentication parameters must not repeat.")
    authorization = header(headers, "authorization")
    if authorization is not None:
        return _parse_header_signature(authorization, headers)
    if "X-Amz-Signature" in query or "X-Amz-Algorithm" in query:
        return _parse_query_signature(query)
    raise rejected(MISSING_TOKEN)


def _parse_header_signature(authorization: str, headers: Mapping[str, str]) -> ParsedSignature:
    algorithm, _, rest = authorization.strip(_OWS).partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureRejected("IncompleteSignatureException", f"Unsupported authorization type: {algorithm[:40]}")
    fields = _authorization_fields(authorization, rest)
    missing = [
        f"Authorization header requires '{n}' parameter."
        for n in ("Credential", "Signature", "SignedHeaders")
        if n not in fields
    ]
    stamp = header(headers, "x-amz-date")
    date = header(headers, "date")
    if stamp is None and date is None:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if missing:
        raise SignatureRejected("IncompleteSignatureException", " ".join(missing))
    # AWS reads X-Amz-Date first, the Date header only without it (General Reference, "Handling dates in SigV4").
    when = amz_date(stamp.strip(_OWS)) if stamp is not None else http_date(str(date))
    if when is None:
        raise _not_iso_basic(str(stamp if stamp is not None else date))
    return _parsed(
        fields["Credential"],
        fields["SignedHeaders"],
        fields["Signature"],
        when,
        header(headers, "x-amz-security-token"),
        None,
    )


def _authorization_fields(authorization: str, rest: str) -> dict[str, str]:
    """``Credential``, ``SignedHeaders`` and ``Signature``, each at most once; any other part is refused (deny by
    structure: a second Authorization joined to the first, or an unknown parameter, is not guessed at)."""
    fields: dict[str, str] = {}
    for part in rest.split(","):
        if not part.strip(_OWS):  # "AWS4-HMAC-SHA256 " alone: every parameter is then named missing
            continue
        name, sep, value = part.strip(_OWS).partition("=")
        if not sep:
            raise SignatureRejected(
                "IncompleteSignatureException",
                f"'{part.strip(_OWS)[:64]}' not a valid key=value pair (missing equal-sign) in Authorization header: "
                f"'{authorization[:128]}'.",
            )
        if name not in _AUTH_PARAMETERS:
            raise SignatureRejected("IncompleteSignatureException", f"'{name[:40]}' is not a SigV4 parameter.")
        if name in fields:
            raise SignatureRejected("IncompleteSignatureException", f"'{name}' is given more than once.")
        fields[name] = value
    return fields


def _parse_query_signature(query: Mapping[str, str]) -> ParsedSignature:
    required = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
    missing = [name for name in required if not query.get(name)]
    if missing or query["X-Amz-Algorithm"] != ALGORITHM:
        raise SignatureRejected("IncompleteSignatureException", "The presigned request is incomplete.")
    # S3's wording for an expiry that is not a number (inferred for API Gateway, which documents none).
    expires = decimal(query.get("X-Amz-Expires", str(MAX_PRESIGN_EXPIRES)), MAX_PRESIGN_EXPIRES)
    if expires is None:
        raise SignatureRejected("IncompleteSignatureException", "X-Amz-Expires should be a number")
    if not 0 < expires <= MAX_PRESIGN_EXPIRES:
        raise SignatureRejected("IncompleteSignatureException", "X-Amz-Expires must be from 1 to 604800.")
    when = amz_date(query["X-Amz-Date"])
    if when is None:
        raise _not_iso_basic(query["X-Amz-Date"])
    return _parsed(
        query["X-Amz-Credential"],
        query["X-Amz-SignedHeaders"],
        query["X-Amz-Signature"],
        when,
        query.get("X-Amz-Security-Token"),
        expires,
    )


def _parsed(
    credential: str,
    signed_headers: str,
    signature: str,
    when: dt.datetime,
    session_token: str | None,
    expires: int | None,
) -> ParsedSignature:
    match = _CREDENTIAL_RE.fullmatch(credential.strip(_OWS))
    if not match:
        raise SignatureRejected("IncompleteSignatureException", "The Credential parameter is malformed.")
    headers = tuple(h for h in signed_headers.strip(_OWS).lower().split(";") if h)
    if "host" not in headers or not re.fullmatch(r"[0-9a-f]{64}", signature.strip(_OWS)):
        raise SignatureRejected("IncompleteSignatureException", "The signature must cover 'host'.")
    return ParsedSignature(
        access_key=match.group(1),
        scope_date=match.group(2),
        region=match.group(3),
        service=match.group(4),
        signed_headers=headers,
        signature=signature.strip(_OWS),
        amz_date=when,
        session_token=session_token,
        presigned_expires=expires,
    )
