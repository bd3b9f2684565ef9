"""Direct dispatch: the hottest routes answered from the API Gateway event without chalice's per-request machinery.

For every REST request chalice builds a handler object and a fresh middleware chain, matches the request's and the
response's Content-Type against its binary and JSON type lists (three regular-expression splits), wraps the
response headers in a case-insensitive mapping, checks each for a binary body and builds a JSON encoder for the
body: about a third of a warm ``GET /token`` with an ES256 key, more than its signature. For a route that needs
none of it (JSON in and out, no CORS, no path parameters, no binary media types on the API), :class:`DirectChalice`
does what chalice's dispatch then amounts to, and nothing else: the same ``Request`` object as
``app.current_request``, the app's middleware in chalice's order, the same decorated view, the same proxy response
(``Response.to_dict``'s dict, its body serialized with the same options).

A request is taken only in the shape whose answer is known to be chalice's: the registered resource and method, no
``Content-Type`` header (chalice would match it against the route's types, and may answer 415), and not under
``chalice local`` (whose own middleware acts there). Anything else (another route, that header, an Accept header
whose value is not a string, an app in ``debug`` or with binary types, an event that is not a REST proxy event)
goes to chalice untouched, so an unusual request is answered exactly as before.
Middleware that only rewrites what chalice's own dispatch answers (its error bodies) is named when the routes are,
and left out of their chain: direct dispatch never produces those answers. One difference is deliberate: an
exception a middleware raises is logged without its text (:func:`_internal_error`); the answer is chalice's.
``tests/functional/test_direct_dispatch.py`` holds the two paths' answers, log lines and metrics to equality over
generated requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from chalice.app import Chalice, Request, Response, handle_extra_types

from chalicelib.api import API_VIEW_MARK, JSON_TYPES
from chalicelib.config import under_chalice_cli
from chalicelib.observability import log_unexpected

__all__ = ["DirectChalice"]

Handler = Callable[[Request], Response]
Middleware = Callable[[Any, Callable[[Any], Any]], Any]
# What chalice's Response.to_dict serializes a body with (json.dumps with these options), built once.
_BODY = json.JSONEncoder(separators=(",", ":"), default=handle_extra_types).encode
_ASCII: Callable[[str], str] = json.encoder.encode_basestring_ascii


class DirectChalice(Chalice):
    """A Chalice app that answers the routes named in :meth:`dispatch_directly` itself (see the module's doc)."""

    def __init__(self, app_name: str, **kwargs: Any) -> None:
        super().__init__(app_name, **kwargs)
        self._direct_names: tuple[tuple[str, str], ...] = ()
        self._not_needed: tuple[Middleware, ...] = ()
        # The handlers and the middleware they were built with, one value: threads of the local stack share the app.
        self._direct: tuple[tuple[Any, ...] | None, dict[tuple[str, str], Handler]] = (None, {})

    def dispatch_directly(self, routes: Iterable[tuple[str, str]], *, not_needed: Iterable[Middleware] = ()) -> None:
        """``(method, path)`` of routes to dispatch directly. Each must be a route of this app whose view is an
        ``api_view`` (it answers every failure itself) and that chalice would dispatch with no per-request step:
        JSON content types only, no CORS, no path parameters. Checked here, so a route that grows one of them fails
        at import, not at a request. ``not_needed``: middleware that acts only on answers chalice's own dispatch
        makes (or only under ``chalice local``), left out of these routes' chain."""
        names = tuple((path, method) for method, path in routes)
        for path, method in names:
            entry = self.routes.get(path, {}).get(method)
            if entry is None:
                raise ValueError(f"{method} {path} is not a route of this app")
            if not getattr(entry.view_function, API_VIEW_MARK, False):
                raise ValueError(f"{method} {path}: only an api_view answers every failure itself")
            if entry.content_types != list(JSON_TYPES) or entry.cors is not None or entry.view_args:
                raise ValueError(f"{method} {path}: content types, CORS or path parameters need chalice's dispatch")
        self._direct_names = names
        self._not_needed = tuple(not_needed)
        self._direct = (None, {})

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        handler = self._direct_handler(event)
        if handler is None:
            return super().__call__(event, context)
        request = Request(event, context)
        headers = request.headers
        accept = headers.get("accept")
        # Chalice matches a Content-Type against the route's types (and may answer 415), and an Accept against the
        # binary types, which only a text can be matched with: either, its dispatch.
        if "content-type" in headers or (accept is not None and type(accept) is not str):
            return super().__call__(event, context)
        self.lambda_context = context
        self.current_request = request
        response = handler(request)
        # Response.to_dict's answer. No binary types on the API (checked by _direct_handler): chalice would
        # never base64 this body.
        body = response.body
        single: dict[str, Any] = {}
        multi: dict[str, Any] = {}
        for name, value in response.headers.items():
            (multi if isinstance(value, list) else single)[name] = value
        return {
            "headers": single,
            "multiValueHeaders": multi,
            "statusCode": response.status_code,
            "body": body if isinstance(body, (str, bytes)) else _serialized(body),
        }

    def _direct_handler(self, event: Any) -> Handler | None:
        if not self._direct_names or self.api.binary_types or self.debug or type(event) is not dict:
            return None
        context = event.get("requestContext")
        if type(context) is not dict:
            return None
        # Chalice reads these too, and these only, to pick the route.
        key = (context.get("resourcePath"), context.get("httpMethod"))
        if key not in self._direct_names or under_chalice_cli():  # a linear scan of a route or two
            return None
        middleware = tuple(self.middleware_handlers)
        built, handlers = self._direct
        if middleware != built:  # the first request, or middleware registered since: built again, as chalice would
            handlers = {name: self._chain(*name) for name in self._direct_names}
            self._direct = (middleware, handlers)
        return handlers.get(key)

    def _chain(self, path: str, method: str) -> Handler:
        """The route's view behind the app's HTTP middleware, in chalice's order (first registered, outermost)."""
        view = self.routes[path][method].view_function

        def respond(_: Request) -> Response:
            try:
                result = view()
                response = result if isinstance(result, Response) else Response(body=result)
                _check_headers(response)
            except Exception as error:  # an api_view raises nothing: a header with a newline, or a broken view
                return _internal_error(error)
            return response

        handler: Handler = respond
        for function, kind in reversed(self.middleware_handlers):
            if kind in ("http", "all") and function not in self._not_needed:
                handler = _bind(function, handler)

        def outermost(request: Request) -> Response:
            try:  # chalice's global error handler: a middleware that raised
                return handler(request)
            except Exception as error:
                return _internal_error(error)

        return outermost


def _serialized(body: Any) -> str:
    """``_BODY(body)``, byte for byte. A JSON encoder builds its C encoder anew at every call, which costs a warm
    ``/token`` more than its claims' serialization: a flat object of text and integers (a token answer, an error)
    is written here with the encoder's own string function (ASCII-escaped, as ``json.dumps`` by default) and
    ``int.__repr__`` (what the encoder writes for an int); anything else goes to the encoder."""
    if type(body) is not dict:
        return _BODY(body)
    members = []
    for name, value in body.items():
        if type(name) is not str:
            return _BODY(body)
        if type(value) is str:
            members.append(_ASCII(name) + ":" + _ASCII(value))
        elif type(value) is int:  # not a bool, whose type is bool
            members.append(_ASCII(name) + ":" + int.__repr__(value))
        else:
            return _BODY(body)
    return "{" + ",".join(members) + "}"


def _check_headers(response: Response) -> None:
    """Chalice's check of a view's response (``RestAPIEventHandler._validate_response``)."""
    for name, value in response.headers.items():
        if "\n" in value:
            raise ValueError(f"bad value for header {name!r}")


def _internal_error(error: Exception) -> Response:
    """Chalice's answer to an exception its dispatch catches (the body it writes unless ``debug``, which is never
    dispatched directly). The one deliberate difference: chalice logs it with its traceback, whose text may quote
    whatever the exception holds; this logs it the way credport logs the unexpected, by type and place only."""
    log_unexpected("unhandled error", error)
    return Response(
        body={"Code": "InternalServerError", "Message": "An internal server error occurred."}, status_code=500
    )


def _bind(middleware: Middleware, following: Handler) -> Handler:
    def handler(request: Request) -> Response:
        return middleware(request, following)  # type: ignore[no-any-return]

    return handler
