"""Call a credport API signed with the caller's own AWS credentials (botocore's SigV4 signer), and read its answers.

Every answer goes through :func:`answer`: a JSON object back, or a :class:`CallError` that says what was called
and what came back, whatever came back (a credport error body, API Gateway's own ``{"message"}`` with its
``x-amzn-ErrorType``, an empty body, an HTML page), and with the exit code that failure means (client/errors.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from client.errors import CliError, Exit, redact
from client.failures import safe_url
from client.http import MAX_JSON_BYTES, bounded_request, check_url

__all__ = ["CallError", "answer", "region_of", "signed_request"]

_EXECUTE_API = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_ENDPOINT_HINT = "is --endpoint the API's URL (with its stage)?"
# API Gateway's answers to a request signed with credentials it cannot use (its x-amzn-ErrorType).
_GATEWAY_CREDENTIALS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException"}
)
_NOT_JSON = object()


class CallError(CliError):
    """An HTTP answer that is not the JSON object asked for. ``status`` and ``body`` (the decoded JSON, or the
    text) as before; the message names the call when ``method`` and ``url`` are given (never the URL's query)."""

    def __init__(
        self,
        status: int,
        body: Any,
        *,
        method: str | None = None,
        url: str | None = None,
        error_type: str | None = None,
        content_type: str | None = None,
        hint: str = _ENDPOINT_HINT,
        location: str | None = None,
    ) -> None:
        self.status, self.body = status, body
        self.error_type = (error_type or "").split(":", 1)[0] or None
        code = body.get("error") if isinstance(body, dict) else None
        gateway = isinstance(body, dict) and code is None and "message" in body
        if status >= 500 or status == 429:  # the hint fits a URL that is not credport's; the others replace it
            exit_code, hint = Exit.UNAVAILABLE, "retry later"
        elif self.error_type in _GATEWAY_CREDENTIALS:
            exit_code, hint = Exit.CONFIG, "are the AWS credentials (and the clock) right?"
        elif (
            (status == 404 and code is None)
            or status < 400
            or not isinstance(body, dict)  # credport and API Gateway answer JSON objects: this is another server
            or (gateway and "Authentication Token" in str(body))
        ):
            exit_code = Exit.CONFIG  # not credport's answer: another URL, or a wrong path
        else:
            exit_code, hint = Exit.REFUSED, ""
        called = f"{method} {safe_url(url)} answered" if method and url else "the service answered HTTP"
        if location is not None:  # a redirect is never followed: it would carry the signature to another host
            shown = f" (a redirect to {location}, not followed)"
        else:
            shown = _shown(body, code, gateway, content_type, self.error_type)
        text = f"{called} {status} {_reason(status)}{shown}"
        super().__init__(f"{text}: {hint}" if hint else text, exit_code)

    @classmethod
    def of(
        cls,
        response: requests.Response,
        body: Any = _NOT_JSON,
        *,
        hint: str | None = None,
        location: str | None = None,
    ) -> CallError:
        """The error for ``response`` (``body``: its decoded JSON, if already read; ``hint``: what to check when the
        answer is not credport's; ``location``: the host a redirect pointed at)."""
        if body is _NOT_JSON:
            body = _decoded(response)
        request = response.request
        return cls(
            response.status_code,
            response.text if body is _NOT_JSON else body,
            method=request.method if request is not None else None,
            url=(request.url if request is not None else None) or response.url,
            error_type=response.headers.get("x-amzn-ErrorType"),
            content_type=response.headers.get("Content-Type") if body is _NOT_JSON else "application/json",
            hint=_ENDPOINT_HINT if hint is None else hint,
            location=location,
        )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _shown(body: Any, code: Any, gateway: bool, content_type: str | None, error_type: str | None) -> str:
    if isinstance(body, dict):
        if code is not None:
            message = body.get("message")
            return f": {code}" + (f": {_excerpt(message)}" if message else "")
        if gateway:
            return f" (API Gateway{' ' + error_type if error_type else ''}: {_excerpt(body['message'])})"
        return " (a JSON object without an error code)"
    if body is None or (isinstance(body, str | bytes) and not body):
        return " (no body)"
    if isinstance(body, str):
        kind = (content_type or "").split(";", 1)[0].strip() or "text"
        return f" (a {kind} body, not JSON)"
    return f" (JSON {type(body).__name__}, not an object)"


def _excerpt(text: Any, limit: int = 240) -> str:
    """A server's message, short enough that the line's own hint is never cut off (one_line bounds the whole)."""
    shown = " ".join(redact(str(text)).split())  # before cutting: a cut could leave a secret no longer recognised
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _decoded(response: requests.Response) -> Any:
    if not response.content:
        return ""
    try:
        return response.json()
    except ValueError:
        return _NOT_JSON


def answer(response: requests.Response, *, hint: str = _ENDPOINT_HINT) -> dict[str, Any]:
    """The JSON object a successful call answers; :class:`CallError` for anything else."""
    body = _decoded(response)
    if response.status_code >= 400 or not isinstance(body, dict):
        raise CallError.of(response, body, hint=hint)
    return body


def region_of(endpoint: str, default: str | None) -> str:
    """The region to scope the signature to: the API's own, from its hostname, else the profile's."""
    match = _EXECUTE_API.match(urlsplit(endpoint).hostname or "")
    region = match.group(1) if match else default
    if not region:
        raise CliError(
            "no AWS region: pass --region, or set AWS_DEFAULT_REGION or a region in the AWS profile", Exit.CONFIG
        )
    return region


def signed_request(
    method: str,
    endpoint: str,
    path: str,
    *,
    profile: str | None = None,
    region: str | None = None,
    query: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    body: bytes = b"",
    timeout: float = 10,
) -> Any:
    """Send a SigV4-signed request and return the decoded JSON object; raise :class:`CallError`.

    ``query`` may be pairs, so a key can repeat (``[("aud", "a"), ("aud", "b")]``). It is encoded as SigV4's
    canonical query encodes (RFC 3986: only ``A-Za-z0-9-_.~`` left as they are, a space is ``%20``, never ``+``),
    and botocore signs the URL's query exactly as it is sent: the gateway, which decodes the query and encodes it
    again, computes the same canonical string (``urlencode``'s default, ``quote_plus``, would not: a 403)."""
    import boto3.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    check_url(endpoint, "--endpoint")
    session = boto3.session.Session(profile_name=profile)
    credentials = session.get_credentials()
    if credentials is None:
        raise CliError(
            "no AWS credentials found: pass --profile, set AWS_PROFILE (or AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY), or run with an instance or task role",
            Exit.CONFIG,
        )
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query or ())
    url = endpoint.rstrip("/") + path + (("?" + urlencode(pairs, quote_via=quote)) if pairs else "")
    request = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    SigV4Auth(
        credentials.get_frozen_credentials(), "execute-api", region_of(endpoint, region or session.region_name)
    ).add_auth(request)
    response = bounded_request(
        method, url, headers=dict(request.headers), data=body, timeout=timeout, max_bytes=MAX_JSON_BYTES
    )
    return answer(response)
