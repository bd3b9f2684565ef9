"""API Gateway's IAM authorization, for real: verify a SigV4 signature on an incoming request.

Parsing (:func:`parse_signature`) is separate from credential lookup (a :class:`CredentialLookup`) and
from the check itself (:func:`verify`). The canonical request and signature are computed by botocore's
own signer, restricted to the headers the client said it signed. Failures raise :class:`SignatureRejected`
carrying API Gateway's error type and message, which the gateway turns into its 403 shape.

Every field is read by an ASCII allow-list (:mod:`local.headers`): a date, an expiry or a parameter that Python's
lenient ``int()``/``strptime`` would read but AWS would not (Unicode digits, signs, Unicode whitespace) is refused,
and a header given twice (or in two spellings) is read as its values joined by commas, as HTTP combines them, which
no SigV4 field's format admits. Time checks only subtract datetimes, so no stamp near year 1 or 9999 can overflow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.headers import amz_date, amz_stamp, decimal, http_date

__all__ = [
    "MAX_CLOCK_SKEW",
    "CredentialLookup",
    "ParsedSignature",
    "Principal",
    "SignatureRejected",
    "parse_signature",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
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
BAD_SIGNATURE = (
    "InvalidSignatureException",
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details.",
)
UNKNOWN_KEY = ("UnrecognizedClientException", "The security token included in the request is invalid.")


@dataclass(frozen=True)
class Principal:
    """Who owns an access key, as API Gateway reports it in ``requestContext.identity``."""

    access_key: str
    secret_key: str
    session_token: str | None
    arn: str
    account_id: str
    caller: str  # AIDA… for a user, AROA…:session for a role session

    def identity(self, source_ip: str) -> dict[str, str | None]:
        return {
            "userArn": self.arn,
            "accountId": self.account_id,
            "caller": self.caller,
            "user": self.caller,
            "accessKey": self.access_key,
            "sourceIp": source_ip,
            "principalOrgId": None,
        }


class CredentialLookup(Protocol):
    def find(self, access_key: str, session_token: str | None) -> Principal | None:
        """The principal owning the key (and, for temporary keys, the token), or None."""


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


def _header(headers: Mapping[str, str], name: str) -> str | None:
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


def _rejected(kind: tuple[str, str], message: str | None = None) -> SignatureRejected:
    return SignatureRejected(kind[0], message or kind[1])


def parse_signature(method: str, url: str, headers: Mapping[str, str]) -> ParsedSignature:
    """Read a header signature (``Authorization: AWS4-HMAC-SHA256 …``) or a presigned query string."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    query = dict(pairs)
    auth_names = [k for k, _ in pairs if k.startswith("X-Amz-")]
    if len(auth_names) != len(set(auth_names)):
        raise SignatureRejected("IncompleteSignatureException", "Authentication parameters must not repeat.")
    authorization = _header(headers, "authorization")
    if authorization is not None:
        return _parse_header_signature(authorization, headers)
    if "X-Amz-Signature" in query or "X-Amz-Algorithm" in query:
        return _parse_query_signature(query)
    raise _rejected(MISSING_TOKEN)


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
    stamp = _header(headers, "x-amz-date")
    date = _header(headers, "date")
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
        _header(headers, "x-amz-security-token"),
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


class _SignedHeadersOnly(SigV4Auth):
    """botocore's signer, canonicalising exactly the headers the client listed as signed."""

    def __init__(self, credentials: Credentials, region: str, signed: tuple[str, ...]) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest):  # type: ignore[no-untyped-def]
        selected = super().headers_to_sign(request)
        for name in list(selected.keys()):
            if name.lower() not in self._signed:
                del selected[name]
        for name in self._signed:
            if name not in selected:
                value = request.headers.get(name)
                if value is None:
                    raise _rejected(BAD_SIGNATURE)
                selected[name] = value
        return selected


def verify(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: CredentialLookup,
    *,
    region: str | None = None,
    now: dt.datetime | None = None,
) -> Principal:
    """Check the request's SigV4 signature and return the signer; raise :class:`SignatureRejected`.

    ``region`` is the API's own region: a signature scoped to another region is refused, as on AWS.
    """
    now = now or dt.datetime.now(dt.UTC)
    parsed = parse_signature(method, url, headers)
    if parsed.service != SERVICE or parsed.scope_date != amz_stamp(parsed.amz_date)[:8]:
        raise SignatureRejected("InvalidSignatureException", "Credential should be scoped to a valid service.")
    if region is not None and parsed.region != region:
        raise SignatureRejected(
            "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{parsed.region}'."
        )
    _check_time(parsed, now)
    principal = credentials.find(parsed.access_key, parsed.session_token)
    if principal is None:
        raise _rejected(UNKNOWN_KEY)
    try:
        expected = _expected_signature(method, url, headers, body, parsed, principal)
    except UnicodeEncodeError:
        # A lone surrogate in the URL or a header: never on the wire (HTTP fields arrive as Latin-1, the query is
        # percent-decoded with replacement), but no request carrying one can match a signature.
        raise _rejected(BAD_SIGNATURE) from None
    if not hmac.compare_digest(expected, parsed.signature):
        raise _rejected(BAD_SIGNATURE)
    return principal


def _check_time(parsed: ParsedSignature, now: dt.datetime) -> None:
    # Only differences of datetimes: adding X-Amz-Expires to a stamp in year 9999 would overflow.
    stamp, age = amz_stamp(parsed.amz_date), now - parsed.amz_date
    if parsed.presigned_expires is not None and age > dt.timedelta(seconds=parsed.presigned_expires):
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than {amz_stamp(now)} (X-Amz-Expires elapsed).",
        )
    if parsed.presigned_expires is None and age > MAX_CLOCK_SKEW:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than {amz_stamp(now - MAX_CLOCK_SKEW)} "
            f"({amz_stamp(now)} - 15 min.)",
        )
    if -age > MAX_CLOCK_SKEW:
        raise SignatureRejected(
            "InvalidSignatureException",
            f"Signature not yet current: {stamp} is still later than {amz_stamp(now + MAX_CLOCK_SKEW)} "
            f"({amz_stamp(now)} + 15 min.)",
        )


def _expected_signature(
    method: str, url: str, headers: Mapping[str, str], body: bytes, parsed: ParsedSignature, principal: Principal
) -> str:
    # Header and query signatures alike cover the SHA-256 of the body (S3's UNSIGNED-PAYLOAD is not
    # accepted by API Gateway).
    payload_hash = hashlib.sha256(body).hexdigest()
    claimed = _header(headers, "x-amz-content-sha256")
    if claimed is not None and claimed != payload_hash:
        # The signature may cover the claimed hash, but not the body that arrived.
        raise _rejected(BAD_SIGNATURE)
    parts = urlsplit(url)
    # Like AWS, canonicalise the decoded query (botocore re-encodes params per the SigV4 rules).
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    request = AWSRequest(
        method=method.upper(), url=parts._replace(query="").geturl(), headers=dict(headers), data=body, params=params
    )
    request.context["timestamp"] = amz_stamp(parsed.amz_date)
    # botocore takes the payload hash from this header when present; it is canonicalised only if signed.
    # Its header map appends on assignment, so drop the client's copy first (as botocore itself does).
    del request.headers["X-Amz-Content-SHA256"]
    request.headers["X-Amz-Content-SHA256"] = payload_hash
    signer = _SignedHeadersOnly(
        Credentials(principal.access_key, principal.secret_key, principal.session_token),
        parsed.region,
        parsed.signed_headers,
    )
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    return str(signer.signature(string_to_sign, request))
