"""The local API: Chalice's local gateway with API Gateway's IAM authorization enforced for real.

Routes with ``IAMAuthorizer`` accept only requests carrying a valid SigV4 signature made with credentials
that exist in the embedded AWS, whose principal may ``execute-api:Invoke`` the method (:mod:`local.invoke`); the
handler then sees ``requestContext.identity`` filled the way API Gateway fills it. Custom (bearer) authorizers run
as Chalice runs them locally, and their outcomes answer as API Gateway's do: a raised ``Unauthorized`` is
UNAUTHORIZED, a policy that does not allow the method ACCESS_DENIED, any other failure
AUTHORIZER_CONFIGURATION_ERROR (``AuthorizerConfigurationException``, API Gateway Developer Guide, "Gateway
response types"), each through the gateway response the API's definition configures (:mod:`local.apidef`). An API
resource policy, if the definition declares one, applies to every route. Requests under ``/_local/`` go to the
local stack's control endpoints instead of the app. A method the API's definition integrates with a function of its
own by proxy (``paths`` of template.yaml's RestAPI: POST /auto-id) goes to that function, with a REST proxy event,
after the same resource-policy check as a route without authorizer; its proxy response is the answer (a function
that fails or answers nonsense is API Gateway's 502).

The method ARN ``execute-api:Invoke`` is checked on is built from the path the request is routed on, as API Gateway
builds it (API Gateway Developer Guide, "Control access for invoking an API"): the request-target's path without
its query, a trailing slash dropped as API Gateway drops it, and Chalice is handed that very path to route, so the
method authorised and the method run cannot differ. A target whose path Chalice's route matching would read
otherwise than literally (a fragment, ``;`` parameters, an empty segment, control characters) is refused, as is a
Host that is not a well-formed ``host[:port]`` (missing, repeated, or carrying a path, query, fragment, userinfo or
whitespace): 400 Bad Request (RFC 9112, section 3.2). The SigV4 signature is still verified over the Host as sent.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    LambdaContext,
    LocalChalice,
    LocalGateway,
    LocalGatewayException,
    ThreadedHTTPServer,
)

from local.apidef import API_ID, STAGE, GatewayResponse, ProxyRoute
from local.gateway_auth import GatewayAuthorizer, GatewaySettings, IncomingRequest
from local.gateway_http import StrictHttp, unrouted
from local.headers import HeaderRefused, combined, content_length
from local.sigv4 import CredentialLookup

__all__ = ["ApiServer", "ControlHandler", "IncomingRequest", "make_thread_safe", "routed_path", "valid_host"]

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
CONTROL_PREFIX = "/_local/"
# A Host field value the gateway accepts: a name or IPv4 address (a trailing dot allowed) or a bracketed IPv6
# address, then an optional port; nothing else ('/', '?', '#', '@', ',', '\\', whitespace are all refused).
_HOST = re.compile(r"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
# What Chalice's route matching (urlparse) would not read literally in a path, or API Gateway would not route.
_UNROUTABLE_PATH = re.compile(r"[#;\\\x00-\x20\x7f]|//")
_UNROUTABLE_QUERY = re.compile(r"[#\x00-\x20\x7f]")
ControlHandler = Callable[[str, str, bytes], tuple[int, dict[str, Any]]]


class _ThreadLocalContext(LocalChalice):
    """Chalice keeps ``current_request`` and ``lambda_context`` on the app object; one Lambda container
    runs one invocation at a time, but the local stack serves requests and events on many threads."""

    _CONTEXT = threading.local()

    @property
    def lambda_context(self) -> Any:
        return getattr(self._CONTEXT, "value", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._CONTEXT.value = value


def make_thread_safe(app: Chalice) -> Chalice:
    """Give ``app`` per-thread request and context (what ``chalice local`` does for the request)."""
    if not isinstance(app, _ThreadLocalContext):
        app.__class__ = type("LocalCredport", (_ThreadLocalContext, app.__class__), {})
    return app


def valid_host(value: str) -> bool:
    """Whether ``value`` is a well-formed Host field value: ``host[:port]`` and nothing more."""
    match = _HOST.fullmatch(value)
    return match is not None and (match["port"] is None or int(match["port"]) <= 65535)


def routed_path(target: str) -> str | None:
    """The path a request with ``target`` on its request line is routed on: the path without the query, without a
    trailing slash unless it is the root (API Gateway drops it; Chalice's route matching too). ``None`` for a target
    Chalice would route on another path than the literal one (a fragment, ``;`` parameters, an empty segment whose
    trailing slash it would strip again), or that is not an origin-form path at all."""
    path, _, query = target.partition("?")
    if not path.startswith("/") or _UNROUTABLE_PATH.search(path) or _UNROUTABLE_QUERY.search(query):
        return None
    return path[:-1] if path != "/" and path.endswith("/") else path


class _Gateway(LocalGateway):
    def __init__(self, app: Chalice, config: Config, request: IncomingRequest, settings: GatewaySettings) -> None:
        super().__init__(app, config)
        self._authorizer = GatewayAuthorizer(app, request, settings)
        self._request = request
        self._settings = settings
        self._account_id = settings.account_id

    def handle_request(self, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        route = self._settings.proxy_routes.get((method, self._request.path))
        if route is None:
            return super().handle_request(method=method, path=path, headers=headers, body=body)
        authorizer = self._authorizer
        assert isinstance(authorizer, GatewayAuthorizer), "set in __init__"
        authorizer.authorize_proxy()
        event = self._proxy_event(route, headers, body)
        context = LambdaContext(route.function, memory_size=512, max_runtime_ms=30_000)
        try:
            response = self._app_object.handler_map[route.function](event, context)
        except Exception:
            response = None
        if not isinstance(response, dict) or not isinstance(response.get("statusCode"), int):
            # API Gateway's answer to a proxy integration that failed or answered no proxy response.
            return {
                "statusCode": 502,
                "headers": {"Content-Type": "application/json"},
                "multiValueHeaders": {},
                "body": '{"message": "Internal server error"}',
            }
        return {"headers": {}, "multiValueHeaders": {}, "body": None, **response}

    def _proxy_event(self, route: ProxyRoute, headers: Any, body: bytes | None) -> dict[str, Any]:
        """The REST proxy event API Gateway sends the function: headers as sent, the query both ways, the body as
        text or, for a binary media type, base64 (here as chalice's local gateway passes its routes' bodies)."""
        query = parse_qs(urlsplit(self._request.url).query, keep_blank_values=True)
        binary = body is not None and self._is_binary(headers)
        event = {
            "resource": route.path,
            "path": route.path,
            "httpMethod": route.method,
            "headers": dict(headers),
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": None,
            "stageVariables": None,
            "requestContext": {"resourcePath": route.path, "httpMethod": route.method, "path": route.path},
            "body": base64.b64encode(body).decode("ascii") if binary and body is not None else body,
            "isBase64Encoded": binary,
        }
        filled: dict[str, Any] = self._api_gateway_context(event)
        return filled

    def _is_binary(self, headers: Any) -> bool:
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        return any(part.strip().lower() in self._app_object.api.binary_types for part in re.split("[,;]", content_type))

    def _generate_lambda_event(self, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        try:
            event = super()._generate_lambda_event(method, path, headers, body)
        except ValueError:  # no route matches the path
            raise unrouted(self._request.request_id, headers) from None
        return self._api_gateway_context(event)

    def _api_gateway_context(self, event: Any) -> Any:
        """What API Gateway puts in ``requestContext`` that chalice's local gateway leaves out."""
        context = event["requestContext"]
        context.update(
            requestId=self._request.request_id,
            stage=STAGE,
            accountId=self._account_id,
            apiId=API_ID,
            protocol="HTTP/1.1",
            requestTimeEpoch=int(time.time() * 1000),
            domainName=urlsplit(self._request.url).netloc,
        )
        context["identity"] = {
            "sourceIp": self._request.source_ip,
            "userAgent": event["headers"].get("user-agent"),
            "userArn": None,
            "accountId": None,
            "caller": None,
            "user": None,
            "accessKey": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "principalOrgId": None,
        }
        return event


class _Handler(StrictHttp, ChaliceRequestHandler):  # StrictHttp: http.server's own answers
    settings: GatewaySettings
    control: ControlHandler | None
    # Chalice's handler writes the headers and the body separately: with Nagle's algorithm on, the body of every
    # answer on a kept-alive connection waited for the client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Chalice, config: Config) -> None:
        # The parent builds a LocalGateway per request; ours is built in _generic_handle, with the request.
        self._app, self._config = app_object, config
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def handle_one_request(self) -> None:
        """One request; a failure of the gateway itself is logged and answered as API Gateway answers its own
        internal errors (500 ``{"message": "Internal server error"}``), never a silently dropped connection."""
        self._answered, self.path = False, ""  # nothing of the previous request on the connection
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):  # the client went away: nothing to answer, nothing broke
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            if not self._answered:  # nothing of an answer written yet: the 500 is a whole response
                self._refuse(500, b'{"message": "Internal server error"}', str(uuid.uuid4()))

    def send_response(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response(code, message)

    def _refuse(self, status: int, body: bytes, request_id: str) -> None:
        """API Gateway's own answer to a request it does not route, and the connection closed after it."""
        headers = {"x-amzn-RequestId": request_id, "Content-Type": "application/json"}
        self._send_http_response(status, headers, body)
        self.close_connection = True

    def _generic_handle(self) -> None:
        request_id = str(uuid.uuid4())
        try:  # an ASCII decimal, given once, within API Gateway's limit: else 400 or 413, never int() on it
            length = content_length(self.headers.get_all("content-length") or [], MAX_BODY_BYTES)
        except HeaderRefused as refused:
            self._refuse(refused.status, json.dumps({"message": refused.message}).encode(), request_id)
            return
        body = self.rfile.read(length) if length else b""
        headers = dict(self.headers)
        if self.path.startswith(CONTROL_PREFIX) and self.control is not None:
            try:
                status, payload = self.control(self.command, self.path[len(CONTROL_PREFIX) :], body)
            except Exception as exc:  # a broken command must answer, not drop the connection
                status, payload = 500, {"error": "control_failed", "type": type(exc).__name__}
            self._send_http_response(status, {"Content-Type": "application/json"}, json.dumps(payload))
            return
        host, path = self._host(), routed_path(self.path)
        if host is None or path is None:
            self._refuse(400, b'{"message": "Bad Request"}', request_id)
            return
        query = self.path.partition("?")[2]
        # The signature is checked on every field as HTTP reads it: repeated fields joined, not the first one.
        signed = combined(self.headers.items())
        request = IncomingRequest(
            self.command, f"http://{host}{self.path}", signed, body, self.client_address[0], request_id, path
        )
        gateway = _Gateway(self._app, self._config, request, self.settings)
        try:
            # Chalice routes on exactly the path authorised (with the query as sent).
            routed = f"{path}?{query}" if query else path
            response = gateway.handle_request(method=self.command, path=routed, headers=headers, body=body or None)
        except LocalGatewayException as error:
            error.headers.setdefault("x-amzn-RequestId", request_id)
            self._send_error_response(error)
            return
        response_headers = {**response["headers"], **response["multiValueHeaders"], "x-amzn-RequestId": request_id}
        response = self._handle_binary(response)
        self._send_http_response(response["statusCode"], response_headers, response["body"])

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _host(self) -> str | None:
        """The request's Host, or ``None`` when HTTP/1.1 says 400: none, more than one, or not ``host[:port]``.
        An HTTP/1.0 request without Host is for the server's own address."""
        values = self.headers.get_all("host") or []
        if not values and self.request_version != "HTTP/1.1":
            address: Any = self.server.server_address
            return "{}:{}".format(*address[:2])
        if len(values) != 1:
            return None
        host = values[0].strip(" \t")
        return host if valid_host(host) else None


class ApiServer:
    """The API on ``host:port`` (port 0 picks a free one), served from a background thread."""

    def __init__(
        self,
        app: Chalice,
        *,
        host: str,
        port: int,
        credentials: CredentialLookup,
        account_id: str,
        region: str,
        responses: dict[str, GatewayResponse] | None = None,
        resource_policy: Mapping[str, Any] | None = None,
        proxy_routes: Mapping[tuple[str, str], ProxyRoute] | None = None,
        control: ControlHandler | None = None,
        quiet: bool = False,
    ) -> None:
        # ``responses``, ``proxy_routes``: the same dicts are filled once the template is provisioned (after the port
        # is known).
        self._settings = GatewaySettings(
            credentials,
            account_id,
            region,
            responses if responses is not None else {},
            resource_policy,
            proxy_routes if proxy_routes is not None else {},
        )
        handler: Any = type(
            "Handler",
            (_Handler,),
            {"settings": self._settings, "control": staticmethod(control) if control else None},
        )
        if quiet:
            handler.log_request = lambda self, code="-", size="-": None
        config = Config.create(
            chalice_stage="dev", lambda_timeout=30, lambda_memory_size=512, function_name="api_handler"
        )

        def make_handler(*args: Any) -> _Handler:
            instance: _Handler = handler(*args, app_object=app, config=config)
            return instance

        self._server: HTTPServer = ThreadedHTTPServer((host, port), make_handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def set_resource_policy(self, policy: Mapping[str, Any] | None) -> None:
        """The API's resource policy (from its definition), once the template is provisioned."""
        self._settings.resource_policy = policy

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def close(self) -> None:
        """Free the port of a server that was bound but never started (``stop`` would wait for its loop forever)."""
        self._server.server_close()
