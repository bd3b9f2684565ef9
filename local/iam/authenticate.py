"""Authentication as AWS does it, where moto's signature check stops short (used by :mod:`local.iam.enforce`).

moto verifies a SigV4 header signature and nothing around it. AWS also refuses a request signed more than 15
minutes from its clock, credentials of an expired session, an S3 body that is not the one whose hash was signed,
Signature Version 2 on buckets created since June 2020; it authenticates presigned S3 links by their query
(:mod:`local.iam.presigned`); and only Cognito has unauthenticated operations. What the emulation cannot decide as
AWS does is refused (400 ``EmbeddedIamUnsupported``), never let through.

moto's own SigV4 parser indexes the Authorization header's parts and the X-Amz-Date header without checking them, so
:func:`check_signing_fields` reads both by ASCII allow-lists first (:mod:`local.headers`): a malformed one is the
service's own error (S3's XML, the JSON or query services' IncompleteSignature), never an exception out of moto.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import JsonRESTError, _RESTError

from local.headers import amz_date

from .presigned import PresignRejected, verify_presigned

__all__ = [
    "MAX_CLOCK_SKEW",
    "UNSUPPORTED",
    "check_authorization_shape",
    "check_freshness",
    "check_signing_fields",
    "is_public_operation",
    "presigned_request",
    "refuse_signature_version_2",
    "refuse_unsupported",
    "service_error",
    "session_expiry",
]


def is_public_operation(self: Any) -> bool:
    """Cognito's unauthenticated operations, and only Cognito's: other services ignore X-Amz-Target."""
    return bool(self.service_name.startswith("cognito") and self.headers.get("X-Amz-Target") in _PUBLIC_OPERATIONS)


def refuse_signature_version_2(self: Any, query: str, authorization: str) -> None:
    """S3 refuses Signature Version 2 for buckets created after 24 June 2020 (S3 User Guide, "Authenticating Requests
    (AWS Signature Version 2)"), as every bucket credport creates is."""
    from moto.s3.exceptions import S3ClientError

    if self.service_name == "s3" and (
        {"AWSAccessKeyId", "Signature"} <= _names(query) or authorization.startswith("AWS ")
    ):
        message = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        raise S3ClientError("InvalidRequest", message)


_PUBLIC_OPERATIONS = frozenset(ActionAuthenticatorMixin.PUBLIC_OPERATIONS)
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)  # SigV4: requests signed further from the server's clock are refused
UNSUPPORTED = "EmbeddedIamUnsupported"


def service_error(self: Any, code: str, message: str, status: int) -> Exception:
    """An error in the protocol of the service asked: S3's XML, the JSON services' (X-Amz-Target), else the query
    services' XML."""
    from moto.s3.exceptions import S3ClientError

    if self.service_name == "s3":
        return S3ClientError(code, message)  # moto gives S3's codes their status
    error = JsonRESTError(code, message) if self.headers.get("X-Amz-Target") else _RESTError(code, message)
    error.code = status
    return error


def refuse_unsupported(self: Any, query: str) -> None:
    """What this emulation cannot decide as AWS does is refused, never let through: a query parameter given twice
    (the signature covers both, moto uses one, a condition would see either), and S3's DeleteObjects (AWS authorises
    each key of its body, which is not read here)."""
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    what = None
    if len(names) != len(set(names)):
        what = "a query parameter given more than once"
    elif self.service_name == "s3" and self.method == "POST" and "delete" in names:
        what = "S3 DeleteObjects (AWS authorises each key of its body)"
    if what:
        raise service_error(self, UNSUPPORTED, f"The embedded AWS does not emulate IAM for {what}; refused.", 400)


# A SigV4 Authorization header as AWS's SDKs write it: the scope is ``key/date/region/service/aws4_request``, the
# signed headers lowercase field names (RFC 9110 tokens) joined by ';'.
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<credential>[^,]*), ?SignedHeaders=(?P<signed>[a-z0-9!#$%&'*+.^_`|~;-]+), ?"
    r"Signature=[0-9a-f]{64}"
)
_CREDENTIAL = re.compile(r"[A-Z0-9]{16,128}/[0-9]{8}/[a-z0-9-]+/[a-z0-9-]+/aws4_request")
_ISO_BASIC = (
    "Date must be in ISO-8601 'basic format'. Got '{}'. "
    "See http://docs.aws.amazon.com/general/latest/gr/sigv4-date-handling.html"
)


def _incomplete(self: Any, message: str) -> Exception:
    """The JSON and query services' answer to a signature they cannot read: 400 IncompleteSignature(Exception)."""
    code = "IncompleteSignatureException" if self.headers.get("X-Amz-Target") else "IncompleteSignature"
    return service_error(self, code, message, 400)


def check_authorization_shape(self: Any, authorization: str) -> re.Match[str]:
    """A SigV4 Authorization header's parts, or the service's own refusal of a malformed one (S3's XML
    AuthorizationHeaderMalformed, the others' IncompleteSignature); ``self`` needs ``service_name`` and ``headers``.
    Also read by the embedded AWS's front door (:mod:`local.aws_server`) before moto routes on the header."""
    s3 = self.service_name == "s3"
    shape = _AUTHORIZATION.fullmatch(authorization)
    if shape is None or not _CREDENTIAL.fullmatch(shape["credential"]):
        if s3:
            malformed = 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
            raise service_error(
                self, "AuthorizationHeaderMalformed", f"The authorization header is malformed; {malformed}", 400
            )
        raise _incomplete(
            self,
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters, each once and "
            "well formed.",
        )
    return shape


def check_signing_fields(self: Any, authorization: str) -> None:
    """Before moto parses a header signature: its Authorization is ``AWS4-HMAC-SHA256`` with a well-formed
    credential scope, SignedHeaders and a hex Signature, and its X-Amz-Date a valid stamp that the signature covers.
    S3's wording is S3's ("AuthorizationHeaderMalformed", "AccessDenied"); the others' IncompleteSignature message
    for a bad date is the one AWS's SigV4 services send (its wording for a malformed header is inferred)."""
    s3 = self.service_name == "s3"
    shape = check_authorization_shape(self, authorization)
    spellings = [name for name in self.headers.keys() if name.lower() == "x-amz-date"]  # noqa: SIM118 (a Message-like)
    stamp = self.headers.get("X-Amz-Date")
    if not spellings and self.headers.get("Date"):
        raise service_error(self, UNSUPPORTED, "The embedded AWS needs X-Amz-Date on a SigV4 request; refused.", 400)
    if stamp is None or amz_date(stamp) is None:
        if s3:
            raise service_error(
                self, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header", 403
            )
        raise _incomplete(self, _ISO_BASIC.format(str(stamp or "")[:64]))
    if "x-amz-date" not in shape["signed"].split(";"):
        if s3:
            raise service_error(
                self, "AccessDenied", "There were headers present in the request which were not signed", 403
            )
        raise service_error(self, UNSUPPORTED, "The embedded AWS needs X-Amz-Date signed; refused.", 400)
    if spellings != ["X-Amz-Date"]:  # moto looks the signed header up by this exact spelling, once
        raise service_error(self, UNSUPPORTED, "The embedded AWS needs one header spelled X-Amz-Date; refused.", 400)


def check_freshness(self: Any, authorization: str) -> None:
    """What moto's signature check leaves out: the request's time (SigV4 refuses one more than 15 minutes from the
    server's clock), the signer's session (expired temporary credentials are refused), and an S3 body against the
    payload hash the signature covers (x-amz-content-sha256)."""

    signed_at = amz_date(self.headers.get("X-Amz-Date") or "")  # read by check_signing_fields first
    if signed_at is None:
        raise service_error(self, UNSUPPORTED, "The embedded AWS needs X-Amz-Date on a SigV4 request; refused.", 400)
    now = dt.datetime.now(dt.UTC)
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        if self.service_name == "s3":
            skewed = "The difference between the request time and the current time is too large."
            raise service_error(self, "RequestTimeTooSkewed", skewed, 403)
        stale = "Signature expired: the request was signed more than 15 minutes from the current time."
        raise service_error(self, "InvalidSignatureException", stale, 403)
    access_key_id = authorization.split("Credential=", 1)[1].split("/", 1)[0]
    expiry = session_expiry(access_key_id)
    if expiry is not None and now >= expiry:
        code = (
            "ExpiredToken"
            if self.service_name == "s3" or not self.headers.get("X-Amz-Target")
            else "ExpiredTokenException"
        )
        raise service_error(
            self,
            code,
            "The security token included in the request is expired",
            400 if code == "ExpiredToken" and self.service_name == "s3" else 403,
        )
    declared = self.headers.get("x-amz-content-sha256") or ""
    hashed = self.service_name == "s3" and re.fullmatch(r"[0-9a-f]{64}", declared)
    if hashed and hashlib.sha256(self.raw_body or b"").hexdigest() != declared:
        message = "The provided 'x-amz-content-sha256' header does not match what was computed."
        raise service_error(self, "XAmzContentSHA256Mismatch", message, 400)


def _names(query: str) -> set[str]:
    return {name for name, _ in parse_qsl(query, keep_blank_values=True)}


def presigned_request(
    self: Any, iam_request_cls: type, action: str, query: str, find_key: Callable[[str, str, str, dict[str, str]], Any]
) -> Any:
    """The S3 request object of a presigned request whose query signature, expiry and signer's credentials hold
    (:mod:`local.iam.presigned`); S3's 403 otherwise."""
    from moto.iam.access_control import CreateAccessKeyFailure
    from moto.s3.exceptions import S3ClientError
    from moto.utilities.utils import get_partition

    def secret_of(access_key_id: str, token: str | None) -> tuple[str, dt.datetime | None] | None:
        headers = {"X-Amz-Security-Token": token} if token else {}
        try:
            key = find_key(self.current_account, get_partition(self.region), access_key_id, headers)
        except CreateAccessKeyFailure:
            return None
        return str(key.create_credentials().secret_key), session_expiry(access_key_id)

    host = self.headers.get("Host") or urlsplit(self.uri).netloc
    try:
        _signer, token = verify_presigned(
            self.method, host, self.raw_path, query, self.headers, secret_of, now=dt.datetime.now(dt.UTC)
        )
    except PresignRejected as rejected:
        raise S3ClientError(rejected.code, rejected.message) from None
    date = dict(parse_qsl(query))["X-Amz-Date"]
    scope = dict(parse_qsl(query))["X-Amz-Credential"]
    headers = {**dict(self.headers), "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, "
               "Signature=-", "X-Amz-Date": date}  # fmt: skip
    if token:
        headers["X-Amz-Security-Token"] = token
    return iam_request_cls(
        account_id=self.current_account,
        method=self.method,
        path=self.raw_path,
        data=self.data,
        body=self.raw_body,
        headers=headers,
        action=action,
    )


def session_expiry(access_key_id: str) -> dt.datetime | None:
    """When the STS session of ``access_key_id`` expires (None: a long-term key)."""
    from moto.sts.models import sts_backends

    for account in list(sts_backends):
        for backend in list(sts_backends[account].values()):
            for session in list(backend.assumed_roles):
                if session.access_key_id == access_key_id:
                    expiry: dt.datetime = session.expiration
                    return expiry if expiry.tzinfo else expiry.replace(tzinfo=dt.UTC)
    return None
