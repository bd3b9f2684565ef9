"""API Gateway's IAM authorization, for real: verify a SigV4 signature on an incoming request.

Parsing (:func:`parse_signature`, in :mod:`local.sigv4_parsing`) is separate from credential lookup (a
:class:`CredentialLookup`) and from the check itself (:func:`verify`). The canonical request and signature are
computed by botocore's own signer, restricted to the headers the client said it signed. Failures raise
:class:`SignatureRejected` carrying API Gateway's error type and message, which the gateway turns into its 403 shape.

Every field is read by an ASCII allow-list (:mod:`local.headers`): a date, an expiry or a parameter that Python's
lenient ``int()``/``strptime`` would read but AWS would not (Unicode digits, signs, Unicode whitespace) is refused,
and a header given twice (or in two spellings) is read as its values joined by commas, as HTTP combines them, which
no SigV4 field's format admits. Time checks only subtract datetimes, so no stamp near year 1 or 9999 can overflow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.headers import amz_stamp
from local.sigv4_parsing import ParsedSignature, SignatureRejected, header, parse_signature, rejected

__all__ = [
    "MAX_CLOCK_SKEW",
    "CredentialLookup",
    "ParsedSignature",
    "Principal",
    "SignatureRejected",
    "parse_signature",
    "verify",
]

SERVICE = "execute-api"
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
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
                    raise rejected(BAD_SIGNATURE)
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
        raise rejected(UNKNOWN_KEY)
    try:
        expected = _expected_signature(method, url, headers, body, parsed, principal)
    except UnicodeEncodeError:
        # A lone surrogate in the URL or a header: never on the wire (HTTP fields arrive as Latin-1, the query is
        # percent-decoded with replacement), but no request carrying one can match a signature.
        raise rejected(BAD_SIGNATURE) from None
    if not hmac.compare_digest(expected, parsed.signature):
        raise rejected(BAD_SIGNATURE)
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
    claimed = header(headers, "x-amz-content-sha256")
    if claimed is not None and claimed != payload_hash:
        # The signature may cover the claimed hash, but not the body that arrived.
        raise rejected(BAD_SIGNATURE)
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
