"""The embedded AWS's front door: moto's server, with malformed requests answered as AWS answers them.

moto's dispatcher picks the backend from the request before any service code (or :mod:`local.iam`'s enforcement)
runs, and reads the Authorization header and X-Amz-Target by indexing their parts: ``AWS4-HMAC-SHA256 ,,,``, a
Credential without its scope, a lone scheme word or a target without a dot raised IndexError/ValueError there, and
werkzeug answered 500 with an HTML page. :class:`EmbeddedAwsServer` serves moto behind :func:`guarded`, which

- refuses an Authorization header that is neither a well-formed SigV4 header (read by
  :func:`local.iam.authenticate.check_authorization_shape`, the enforcement's own reader) nor a well-formed
  Signature Version 2 one (``AWS <key>:<signature>``), with the service's own error: S3's XML
  (AuthorizationHeaderMalformed, or InvalidArgument for an authorization type S3 does not know), the JSON services'
  (X-Amz-Target) or the query services' IncompleteSignature;
- answers a request moto cannot route (its routing reads nothing but the request) with a 400 in the protocol the
  request speaks: UnknownOperationException for an X-Amz-Target, else InvalidAction;
- answers any exception escaping a backend with the protocol's 500 (InternalFailure), its traceback printed: a bug of
  the emulation stays visible, but is never an HTML page or a dropped connection.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from moto.core.exceptions import ServiceException
from moto.server import ThreadedMotoServer
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

__all__ = ["EmbeddedAwsServer", "guarded"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_SIGV2 = re.compile(r"AWS [^\s:]+:[^\s:]+")
_SCOPE_SERVICE = re.compile(r"AWS4-HMAC-SHA256 Credential=[^/,]*/[^/,]*/[^/,]*/(?P<service>[a-z0-9-]+)/")
_S3_V2 = "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature"


def _protocol(environ: dict[str, Any], authorization: str) -> tuple[str, str | None]:
    """The service a malformed request is answered as (``s3`` or another), and its X-Amz-Target. A request that
    names no service in a readable scope is S3's (moto's default) unless it speaks a query or JSON protocol."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    scope = _SCOPE_SERVICE.match(authorization)
    if scope is not None:
        return scope["service"], target
    query = {name for name, _ in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)}
    form = str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded")
    return ("sts" if target or form or "Action" in query else "s3"), target


def _s3_error(code: str, message: str) -> Response:
    """S3's error document; every error this module answers for S3 is a 400."""
    error = f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{error}</Error>'
    return Response(body, status=400, content_type="application/xml")


def _refusal(service: str, target: str | None, code: str, message: str, status: int) -> Any:
    """An AWS error in the protocol of ``service``, as moto's own exceptions render it (a WSGI application)."""
    from local.iam.authenticate import service_error

    request = SimpleNamespace(service_name=service, headers={"X-Amz-Target": target} if target else {})
    return service_error(request, code, message, status)


def _malformed_authorization(environ: dict[str, Any]) -> Any:
    """The refusal of an Authorization header moto would misread, or ``None`` for a well-formed one (or none)."""
    from local.iam.authenticate import check_authorization_shape

    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    if authorization == "" or _SIGV2.fullmatch(authorization):
        return None
    service, target = _protocol(environ, authorization)
    if authorization.startswith("AWS4-HMAC-SHA256"):
        request = SimpleNamespace(service_name=service, headers={"X-Amz-Target": target} if target else {})
        try:
            check_authorization_shape(request, authorization)
        except HTTPException as refusal:  # the JSON or query service's own error
            return refusal
        except ServiceException as refusal:  # S3's: moto serialises it from S3's model, rendered here as S3 does
            return _s3_error(refusal.code, refusal.message)
        return None
    if service == "s3":
        return _s3_error(
            "InvalidArgument", _S3_V2 if authorization.startswith("AWS ") else "Unsupported Authorization Type"
        )
    message = "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters."
    return _refusal(service, target, "IncompleteSignatureException" if target else "IncompleteSignature", message, 400)


def guarded(application: Any) -> WsgiApp:
    """``application`` (moto's DomainDispatcherApplication) behind the checks of this module's docstring."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = _malformed_authorization(environ)
        if refusal is not None:
            answer: Iterable[bytes] = refusal(environ, start_response)
            return answer
        service, target = _protocol(environ, str(environ.get("HTTP_AUTHORIZATION", "")))
        try:
            backend = application.get_application(environ)
        except Exception:  # moto's routing reads only the request: what it cannot read is the client's error
            code, message = ("UnknownOperationException", "") if target else ("InvalidAction", "Malformed request")
            answer = _refusal(service, target, code, message, 400)(environ, start_response)
            return answer
        try:
            answer = backend(environ, start_response)
        except Exception:
            traceback.print_exc()  # the emulation's own bug: visible in the log, answered as AWS's 500
            answer = _refusal(service, target, "InternalFailure", "Internal error", 500)(environ, start_response)
        return answer

    return app


class EmbeddedAwsServer(ThreadedMotoServer):
    """moto's threaded server, serving moto's dispatcher behind :func:`guarded`."""

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = guarded(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
