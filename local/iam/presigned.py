"""Presigned S3 requests (SigV4 in the query string), authenticated as S3 does it.

moto routes a presigned GET without looking at its signature, and once IAM is enforced a request without an
``Authorization`` header is anonymous: every presigned link would be refused. S3 authenticates the query instead:
the signature is SigV4 over the request with ``UNSIGNED-PAYLOAD`` (S3 API Reference, "Authenticating Requests: Using
Query Parameters"), the link dies at ``X-Amz-Date`` + ``X-Amz-Expires`` (at most seven days), and "if you created a
presigned URL using a temporary token, then the URL expires when the token expires, even if the URL was created with
a later expiration time" (S3 User Guide, "Sharing objects with presigned URLs"). The request is then authorised as
the signer, like any other.

X-Amz-Expires, X-Amz-Date and X-Amz-Signature are read by ASCII allow-lists (:mod:`local.headers`), and the expiry is
checked by subtracting datetimes: every malformed, Unicode-digit or overflowing value is S3's own error, never an
exception out of ``int()``, ``strptime``, datetime arithmetic or ``hmac.compare_digest``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.headers import amz_date, decimal

__all__ = ["PresignRejected", "is_presigned", "verify_presigned"]

MAX_EXPIRES = 7 * 24 * 3600
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
_AUTH_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    }
)


class PresignRejected(Exception):
    """S3's answer to a bad presigned request: ``code`` and ``message`` as S3 sends them (403)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_presigned(query: str) -> bool:
    return any(name == "X-Amz-Credential" for name, _ in parse_qsl(query, keep_blank_values=True))


def verify_presigned(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    secret_of: Callable[[str, str | None], tuple[str, dt.datetime | None] | None],
    *,
    now: dt.datetime,
) -> tuple[str, str | None]:
    """Check a presigned request; returns (access key id, session token) of its signer.

    ``secret_of(access_key_id, session_token)`` gives the key's secret and, for temporary credentials, when they
    expire; None for an unknown key. Raises :class:`PresignRejected` with S3's error code.
    """
    params = dict(parse_qsl(query, keep_blank_values=True))
    try:
        algorithm, credential = params["X-Amz-Algorithm"], params["X-Amz-Credential"]
        stamp, expires_text = params["X-Amz-Date"], params["X-Amz-Expires"]
        signed, signature = params["X-Amz-SignedHeaders"], params["X-Amz-Signature"]
    except KeyError:
        raise PresignRejected("AuthorizationQueryParametersError", "Query-string authentication requires the "
                              "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
                              "and X-Amz-Expires parameters.") from None  # fmt: skip
    scope = credential.split("/")
    if algorithm != "AWS4-HMAC-SHA256" or len(scope) != 5 or scope[3:] != ["s3", "aws4_request"]:
        raise PresignRejected("AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter.")
    expires = decimal(expires_text, MAX_EXPIRES)
    if expires is None:  # S3's messages (a negative number has its own)
        negative = decimal(expires_text[1:], MAX_EXPIRES) is not None and expires_text.startswith("-")
        message = "X-Amz-Expires must be non-negative" if negative else "X-Amz-Expires should be a number"
        raise PresignRejected("AuthorizationQueryParametersError", message)
    if not 1 <= expires <= MAX_EXPIRES:
        raise PresignRejected(
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than "
            "604800 seconds",
        )
    signed_at = amz_date(stamp)
    if signed_at is None:
        raise PresignRejected("AuthorizationQueryParametersError", "X-Amz-Date must be in the ISO8601 format.")
    # Differences only: a link dated 9999 plus its expiry would overflow.
    if now - signed_at > dt.timedelta(seconds=expires):
        raise PresignRejected("AccessDenied", "Request has expired")
    if signed_at - now > MAX_CLOCK_SKEW:
        raise PresignRejected("AccessDenied", "Request is not yet valid")
    access_key, token = scope[0], params.get("X-Amz-Security-Token")
    found = secret_of(access_key, token)
    if found is None:
        raise PresignRejected("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    secret, credentials_expire = found
    if credentials_expire is not None and now >= credentials_expire:
        raise PresignRejected("ExpiredToken", "The provided token has expired.")
    if not re.fullmatch(r"[0-9a-f]{64}", signature) or not hmac.compare_digest(
        signature, _signature(method, host, path, params, headers, signed, secret, token)
    ):
        raise PresignRejected(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and "
            "signing method.",
        )
    return access_key, token


def _signature(
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    signed: str,
    secret: str,
    token: str | None,
) -> str:
    """The signature botocore's own presigner computes for this request (the same canonical request S3 builds), or
    ``""`` (matching nothing) for a request holding a lone surrogate, which no canonical request can encode (never
    from a wire query, decoded with replacement)."""
    try:
        scope = params["X-Amz-Credential"].split("/")
        operation = {k: v for k, v in params.items() if k not in _AUTH_PARAMS}
        url = f"http://{host}{path}" + (f"?{urlencode(operation)}" if operation else "")
        lowered = {k.lower(): v for k, v in headers.items()}
        request = AWSRequest(method=method, url=url, headers={h: lowered.get(h, "") for h in signed.split(";")})
        request.context["timestamp"] = params["X-Amz-Date"]
        auth: Any = S3SigV4QueryAuth(
            Credentials(scope[0], secret, token), "s3", scope[2], expires=int(params["X-Amz-Expires"])
        )
        # add_auth without its first step, which would stamp the request with the current time instead of X-Amz-Date.
        auth._modify_request_before_signing(request)
        canonical = auth.canonical_request(request)
        return str(auth.signature(auth.string_to_sign(request, canonical), request))
    except UnicodeEncodeError:
        return ""
