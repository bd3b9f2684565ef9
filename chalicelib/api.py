"""HTTP plumbing shared by every route: error mapping, request ids and bounded JSON bodies; and the adapters
between chalice's types and the capabilities' plain values (public documents, the bearer authorizer, and the
proxy route of ``POST /auto-id``). The one chalicelib module that imports chalice, besides ``app.py``.
"""

from __future__ import annotations

import binascii
import functools
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from itertools import chain
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from chalice.app import AuthRequest, AuthResponse, AuthRoute, IAMAuthorizer, Request, Response

from chalicelib.config import under_chalice_cli
from chalicelib.errors import (
    BadRequest,
    ConfigError,
    CredportError,
    Forbidden,
    InternalError,
    InvalidText,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from chalicelib.observability import count_once, log_unexpected, logger
from chalicelib.untrusted import NOT_JSON, UntrustedInput, first_unencodable, loads

if TYPE_CHECKING:  # the session package is imported by the authorizer's first call, not with the app
    from chalicelib.sessions.service import BearerGrant

__all__ = [
    "API_VIEW_MARK",
    "JSON_TYPES",
    "NO_IAM_UNDER_CHALICE_LOCAL",
    "UNAUTHORIZED",
    "api_view",
    "authorizer_response",
    "chalice_errors_middleware",
    "chalice_local_middleware",
    "check_request_text",
    "error_response",
    "json_body",
    "json_route",
    "public_document",
    "request_id_of",
]

API_VIEW_MARK = "__credport_api_view__"
DEFAULT_MAX_BODY = 64 * 1024
JSON_TYPES = ("application/json",)  # what a chalice route accepts unless told otherwise (content_types)
UNAUTHORIZED = "Unauthorized"  # the exact message API Gateway turns into its 401 response
_PRIVATE_JSON = MappingProxyType({"Content-Type": "application/json", "Cache-Control": "no-store"})
F = TypeVar("F", bound=Callable[..., Any])


def request_id_of(request: Request | None) -> str:
    """API Gateway's request id (the one in its logs and ``x-amzn-RequestId``), else a fresh one."""
    context = getattr(request, "context", None) or {}
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return str(request_id) if request_id else str(uuid.uuid4())


def error_response(error: CredportError, request_id: str | None = None) -> Response:
    """The one mapping of an error to an API response: ``{"error": code, "message": ...}``."""
    body = _body_of(error)
    if request_id is not None:
        body["request_id"] = request_id
    headers: dict[str, str | list[str]] = {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        **error.headers,
    }
    return Response(body=body, status_code=error.status, headers=headers)


def _body_of(error: CredportError) -> dict[str, str]:
    body: dict[str, str] = error.body()
    if isinstance(error, ConfigError) and under_chalice_cli():
        # The developer running `chalice local` is the caller: which variables (by name) and how to fix it. On
        # Lambda the response stays opaque and the names go to the log (_variables_of).
        body["message"] = error.local_message()
    return body


# Chalice answers a few requests itself, before any view runs, as {"Code": ..., "Message": ...}: a Content-Type
# the route does not accept (415, on AWS too: API Gateway passes it to the Lambda function) and, in local mode,
# a method the path does not serve (405; API Gateway answers that itself). Ours is the one error shape, and
# Chalice's message quotes the caller's header, so each gets a fixed message.
_CHALICE_ERRORS: dict[str, type[CredportError]] = {
    "UnsupportedMediaType": UnsupportedMediaType,
    "MethodNotAllowedError": MethodNotAllowed,
    "BadRequest": BadRequest,
}


def chalice_errors_middleware(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """HTTP middleware: Chalice's own error answers leave in our shape, with their status and headers."""
    response = get_response(request)
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or set(body) != {"Code", "Message"}:
        return response
    error = _CHALICE_ERRORS.get(str(body["Code"]))
    if error is None or error.status != response.status_code:
        return response
    ours = error_response(error())
    ours.headers = {**(response.headers or {}), **ours.headers}
    return ours


# `chalice local` checks no SigV4 signature: it lets a request to an IAMAuthorizer route through, without the identity
# API Gateway attaches (chalice/local.py, LocalGatewayAuthorizer), so such a route cannot work there.
NO_IAM_UNDER_CHALICE_LOCAL = (
    "This route is authorized by IAM: API Gateway checks the request's SigV4 signature and passes the caller's"
    " identity, which chalice local does not do. Call it through the local stack's API instead (make run)."
)


def chalice_local_middleware(
    routes: Callable[[], Mapping[str, Mapping[str, Any]]],
) -> Callable[[Request, Callable[[Request], Response]], Response]:
    """HTTP middleware, active under `chalice local` only: a request to an IAM route that carries no IAM identity
    is refused before its view runs, with a message that says why, instead of the view's bare refusal."""

    def middleware(request: Request, get_response: Callable[[Request], Response]) -> Response:
        if under_chalice_cli() and _iam_route(routes(), request) and not _has_iam_identity(request):
            logger.info("request refused", extra={"code": Forbidden.code, "status": Forbidden.status})
            return error_response(Forbidden(NO_IAM_UNDER_CHALICE_LOCAL))
        return get_response(request)

    return middleware


def _iam_route(routes: Mapping[str, Mapping[str, Any]], request: Request) -> bool:
    context = request.context if isinstance(request.context, dict) else {}
    entry = routes.get(str(context.get("resourcePath")), {}).get(request.method)
    return isinstance(getattr(entry, "authorizer", None), IAMAuthorizer)


def _has_iam_identity(request: Request) -> bool:
    context = request.context if isinstance(request.context, dict) else {}
    user_arn = (context.get("identity") or {}).get("userArn")
    return isinstance(user_arn, str) and user_arn.startswith("arn:")


def api_view(current_request: Callable[[], Request | None]) -> Callable[[F], F]:
    """Wrap a Chalice view so every failure leaves as our error shape, and every plain answer as private JSON.

    A :class:`CredportError` becomes its own response; anything else becomes an opaque 500 carrying the
    request id, logged by type and location only. A view's plain answer (not a :class:`Response`) goes out with
    ``Content-Type: application/json`` and ``Cache-Control: no-store``, as every error does.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                check_request_text(current_request())
                result = view(*args, **kwargs)
            except CredportError as error:
                request_id = request_id_of(current_request())
                if error.status >= 500:
                    log_unexpected(
                        "request failed", error, code=error.code, request_id=request_id, **_variables_of(error)
                    )
                else:
                    logger.info("request refused", extra={"code": error.code, "status": error.status})
                return error_response(error, request_id if error.status >= 500 else None)
            except Exception as exc:
                request_id = request_id_of(current_request())
                log_unexpected("unhandled error", exc, request_id=request_id)
                return error_response(InternalError(), request_id)
            # A plain answer is the caller's own (a token, a session, credentials, who it is): never stored by a cache
            # on the way (RFC 6749 section 5.1, RFC 9111 section 5.2.2.5). Public documents say otherwise themselves.
            return result if isinstance(result, Response) else Response(body=result, headers=dict(_PRIVATE_JSON))

        setattr(wrapper, API_VIEW_MARK, True)
        return wrapper  # type: ignore[return-value]

    return decorate


def _variables_of(error: Exception) -> dict[str, list[str]]:
    """A configuration error's variables, by name (never their values, which its problems may quote): what the
    operator must fix, for the log line that reports it."""
    return {"variables": [*error.missing, *error.invalid]} if isinstance(error, ConfigError) else {}


def check_request_text(request: Request | None) -> None:
    """Every view's first step: path parameters, query parameters and headers are text that encodes as UTF-8.
    API Gateway's event is JSON, which can spell a lone surrogate; no AWS call, log line or response could carry
    one, so it is refused here, for every route at once, before any view reads it."""
    if request is None or (isinstance(request, Request) and _event_text_encodes(request.to_original_event())):
        return
    query: Any = request.query_params or {}
    getlist = getattr(query, "getlist", None)
    # The headers as the event holds them (chalice's case-insensitive view reads each one through Python calls).
    headers: Any = request.to_original_event().get("headers") if isinstance(request, Request) else request.headers
    headers = headers or {}
    uri_params = request.uri_params or {}
    try:  # all of it at once, one encoding in C: what nearly every request is; only a failure looks for where
        "".join(_texts(uri_params, query, getlist, headers)).encode("utf-8")
        return
    except UnicodeEncodeError:
        pass
    places: dict[str, list[Any]] = {
        "path parameters": [*uri_params.items()],
        "query parameters": [(k, v) for k in query for v in (getlist(k) if getlist else [query[k]])],
        "headers": [*headers.items()],
    }
    # Names and values alike; the message names the place, never the text (it could be anything a caller sent).
    place = first_unencodable({place: [text for pair in pairs for text in pair] for place, pairs in places.items()})
    if place is not None:
        raise InvalidText(f"The request's {place} hold text that is not valid Unicode.")


def _event_text_encodes(event: Mapping[str, Any]) -> bool:
    """Whether every name and value of the event's path parameters, query parameters and headers is a str that
    encodes as UTF-8, read in one pass in C: what nearly every request is. False when one is not text (a join
    refuses it) or does not encode: the caller then looks at each, as for any request."""
    uri = event.get("pathParameters") or {}
    query = event.get("multiValueQueryStringParameters") or {}
    headers = event.get("headers") or {}
    try:
        texts = chain(uri, uri.values(), query, chain.from_iterable(query.values()), headers, headers.values())
        "".join(texts).encode("utf-8")
    except (TypeError, AttributeError, UnicodeEncodeError):
        return False
    return True


def _texts(
    uri_params: Mapping[str, Any], query: Any, getlist: Callable[[str], list[Any]] | None, headers: Mapping[str, Any]
) -> Iterator[str]:
    for name, value in uri_params.items():
        yield name if isinstance(name, str) else ""
        yield value if isinstance(value, str) else ""
    for name in query:
        yield name if isinstance(name, str) else ""
        for value in getlist(name) if getlist else [query[name]]:
            yield value if isinstance(value, str) else ""
    for name, value in headers.items():
        yield name if isinstance(name, str) else ""
        yield value if isinstance(value, str) else ""


def json_body(request: Request, *, max_bytes: int = DEFAULT_MAX_BODY) -> dict[str, Any]:
    """The request body as a JSON object, bounded in size; bad input is a 400 (``invalid_text`` for text that is
    not valid Unicode anywhere in it, see :func:`chalicelib.untrusted.loads`), an oversized one a 413."""
    try:
        raw = request.raw_body or b""
    except UnicodeEncodeError:  # Chalice encodes the event's body str, which can hold a lone surrogate
        raise InvalidText() from None
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The request body must be at most {max_bytes} bytes.")
    if not raw:
        raise BadRequest("The request body must be a JSON object.")
    try:
        value = loads(raw)
    except UntrustedInput as refused:
        if refused.reason == NOT_JSON:
            raise BadRequest("The request body is not valid JSON.") from None
        raise InvalidText("The request body holds text that is not valid UTF-8 Unicode.") from None
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object.")
    return value


def public_document(document: dict[str, Any], *, max_age: int) -> Response:
    """Discovery, JWKS and the other public key documents: cacheable for the configured max-age (never no-cache:
    STS fails more often against uncached JWKS)."""
    return Response(
        body=document,
        status_code=200,
        headers={"Content-Type": "application/json", "Cache-Control": f"public, max-age={max_age}"},
    )


def authorizer_response(request: AuthRequest, authorize: Callable[[str, str | None], BearerGrant]) -> AuthResponse:
    """The bearer authorizer: ``authorize(methodArn, token)`` decides; a refusal is API Gateway's 401, no detail."""
    from chalicelib.sessions.exceptions import BearerRefused

    try:
        grant = authorize(request.method_arn, request.token)
    except BearerRefused:
        _answer_under_chalice_local(None)
        raise Exception(UNAUTHORIZED) from None
    except Exception as error:
        # Not a refusal: the check itself failed (API Gateway answers AUTHORIZER_CONFIGURATION_ERROR, 503 here). The
        # function's Lambda Errors cannot tell the two apart (a refusal must raise "Unauthorized"), so this count is
        # the authorizer-failures alarm's signal (template.yaml).
        count_once("AuthorizerFailures")
        _answer_under_chalice_local(error)
        raise
    return AuthResponse(
        routes=[AuthRoute(grant.path, [grant.method])], principal_id=grant.principal_id, context=grant.context
    )


def _answer_under_chalice_local(failure: Exception | None) -> None:
    """Under `chalice local`, raise the answer its gateway sends for an authorizer's refusal (``failure`` None: API
    Gateway's 401) or failure (a 500 in our error shape): chalice local does not translate the exception API Gateway
    expects, and the client would see its connection dropped with no response. Elsewhere, return."""
    if not under_chalice_cli():
        return
    from chalice.local import InvalidAuthorizerError, NotAuthorizedError  # chalice's CLI only: never on Lambda

    if failure is None:
        body = json.dumps({"message": UNAUTHORIZED}, separators=(",", ":")).encode()
        raise NotAuthorizedError({"x-amzn-ErrorType": "UnauthorizedException"}, body)
    log_unexpected("authorizer failed", failure, **_variables_of(failure))
    error = failure if isinstance(failure, CredportError) else InternalError()
    headers = {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "x-amzn-ErrorType": "AuthorizerConfigurationException",
    }
    raise InvalidAuthorizerError(headers, json.dumps(_body_of(error), separators=(",", ":")).encode())


# ``POST /auto-id`` is not one of chalice's routes: it runs as the ``auto_id`` function, with a role that cannot
# read credport's internal secrets (template.yaml's RestAPI definition integrates the method with it). Its caller
# must not see the difference, so the request is checked and answered exactly as a chalice view's is: the same
# Content-Type rule (no header is taken as JSON), body limit, error shape and status codes, and a response in the
# proxy format chalice returns (``chalice.app.Response.to_dict``).


def json_route(event: object, handle: Callable[[dict[str, Any]], Any], *, max_bytes: int) -> dict[str, Any]:
    """One API Gateway REST proxy event to ``handle(body)``, its JSON object body bounded by ``max_bytes``; the
    proxy response. Every failure answers in the error shape; nothing escapes (API Gateway would answer 502)."""
    request = _proxy_request(event)

    @api_view(lambda: request)
    def view() -> Any:
        if request is None:
            raise BadRequest("The request is not an API Gateway proxy request.")
        _check_content_type(request)
        try:
            body = json_body(request, max_bytes=max_bytes)
        except (binascii.Error, ValueError):  # isBase64Encoded with a body that is not base64
            raise BadRequest("The request body is not valid JSON.") from None
        return handle(body)

    response = view()
    if not isinstance(response, Response):
        response = Response(body=response)
    answer: dict[str, Any] = response.to_dict()
    return answer


def _proxy_request(event: object) -> Request | None:
    """The event as chalice's Request, or None when it is not a REST proxy event. API Gateway sends ``null`` for
    absent headers and query strings; chalice's Request wants mappings."""
    if not isinstance(event, Mapping) or not isinstance(event.get("requestContext"), Mapping):
        return None
    context = dict(event["requestContext"])
    headers = event.get("headers")
    query = event.get("multiValueQueryStringParameters")
    body = event.get("body")
    shaped = {
        "requestContext": {**context, "httpMethod": str(context.get("httpMethod") or event.get("httpMethod") or "")},
        "headers": dict(headers) if isinstance(headers, Mapping) else {},
        "multiValueQueryStringParameters": dict(query) if isinstance(query, Mapping) else None,
        "pathParameters": event.get("pathParameters") if isinstance(event.get("pathParameters"), Mapping) else None,
        "stageVariables": event.get("stageVariables") if isinstance(event.get("stageVariables"), Mapping) else None,
        "body": body if isinstance(body, str | bytes) else None,
        "isBase64Encoded": event.get("isBase64Encoded") is True,
    }
    return Request(shaped)


def _check_content_type(request: Request) -> None:
    """chalice's own check (RestAPIEventHandler): a request without Content-Type is taken as JSON; one with another
    type is a 415, whose fixed message never quotes the header (:func:`chalice_errors_middleware`)."""
    content_type = str(request.headers.get("content-type", JSON_TYPES[0])).lower()
    parts = {p.strip() for p in content_type.replace(",", ";").split(";")}
    if "*/*" not in content_type and not parts & set(JSON_TYPES):
        raise UnsupportedMediaType()
