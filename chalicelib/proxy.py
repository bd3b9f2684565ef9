"""A JSON route served by a Lambda function of its own, behind API Gateway's proxy integration.

``POST /auto-id`` is not one of chalice's routes: it runs as the ``auto_id`` function, with a role that cannot
read credport's internal secrets (template.yaml's RestAPI definition integrates the method with it). Its caller
must not see the difference, so the request is checked and answered exactly as a chalice view's is: the same
Content-Type rule (no header is taken as JSON), body limit, error shape and status codes (:mod:`chalicelib.api`),
and a response in the proxy format chalice returns (``chalice.app.Response.to_dict``).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import Request, Response

from chalicelib.api import api_view, json_body
from chalicelib.errors import BadRequest, UnsupportedMediaType

__all__ = ["JSON_TYPES", "json_route"]

JSON_TYPES = ("application/json",)  # what a chalice route accepts unless told otherwise (content_types)


def json_route(event: object, handle: Callable[[dict[str, Any]], Any], *, max_bytes: int) -> dict[str, Any]:
    """One API Gateway REST proxy event to ``handle(body)``, its JSON object body bounded by ``max_bytes``; the
    proxy response. Every failure answers in the error shape; nothing escapes (API Gateway would answer 502)."""
    request = _request(event)

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


def _request(event: object) -> Request | None:
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
    type is a 415, whose fixed message never quotes the header (chalicelib.api.chalice_errors_middleware)."""
    content_type = str(request.headers.get("content-type", JSON_TYPES[0])).lower()
    parts = {p.strip() for p in content_type.replace(",", ";").split(";")}
    if "*/*" not in content_type and not parts & set(JSON_TYPES):
        raise UnsupportedMediaType()
