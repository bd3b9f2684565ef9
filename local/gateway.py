"""The local API: Chalice's local gateway with API Gateway's IAM authorization enforced for real.

Routes with ``IAMAuthorizer`` accept only requests carrying a valid SigV4 signature made with credentials
that exist in the embedded AWS, whose principal may ``execute-api:Invoke`` the method (:mod:`local.invoke`); the
handler then sees ``requestContext.identity`` filled the way API Gateway fills it. Custom (bearer) authorizers run
as Chalice runs them locally, and their outcomes answer as API Gateway's do: a raised ``Unauthorized`` is
UNAUTHORIZED, a policy that does not allow the method ACCESS_DENIED, any other failure
AUTHORIZER_CONFIGURATION_ERROR (``AuthorizerConfigurationException``, API Gateway Developer Guide, "Gateway
response types"), each through the gateway response the API's definition configures (:mod:`local.apidef`). An API
resource policy, if the definition declares one, applies to every route. Requests under ``/_local/`` go to the
local stack's control endpoints instead of the app.

The method ARN ``execute-api:Invoke`` is checked on is built from the path the request is routed on, as API Gateway
builds it (API Gateway Developer Guide, "Control access for invoking an API"): the request-target's path without
its query, a trailing slash dropped as API Gateway drops it, and Chalice is handed that very path to route, so the
method authorised and the method run cannot differ. A target whose path Chalice's route matching would read
otherwise than literally (a fragment, ``;`` parameters, an empty segment, control characters) is refused, as is a
Host that is not a well-formed ``host[:port]`` (missing, repeated, or carrying a path, query, fragment, userinfo or
whitespace): 400 Bad Request (RFC 9112, section 3.2). The SigV4 signature is still verified over the Host as sent.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

from chalice.app import Chalice, ChaliceAuthorizer, IAMAuthorizer
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    ForbiddenError,
    LambdaContext,
    LocalChalice,
    LocalGateway,
    LocalGatewayAuthorizer,
    LocalGatewayException,
    ThreadedHTTPServer,
)

from local.apidef import API_ID, DEFAULT_RESPONSES, STAGE, GatewayResponse
from local.invoke import InvokeDenied, InvokeUnevaluable, Route, check_anonymous_invoke, check_invoke
from local.sigv4 import CredentialLookup, SignatureRejected, verify

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


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    source_ip: str
    request_id: str
    path: str  # the path the request is routed on (:func:`routed_path`): the one authorised, the one run


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


@dataclass
class _Settings:
    """What the API Gateway in front of the app is configured with."""

    credentials: CredentialLookup
    account_id: str
    region: str
    responses: dict[str, GatewayResponse]  # by gateway response type, from the API's definition
    resource_policy: Mapping[str, Any] | None = None


class _GatewayAnswer(LocalGatewayException):
    def __init__(self, response: GatewayResponse, request_id: str, error_type: str, message: str | None) -> None:
        headers = {**response.headers, "x-amzn-RequestId": request_id, "x-amzn-ErrorType": error_type}
        super().__init__(headers, response.body(message))
        self.CODE = response.status


class _GatewayAuthorizer(LocalGatewayAuthorizer):
    def __init__(self, app: Chalice, request: IncomingRequest, settings: _Settings) -> None:
        super().__init__(app)
        self._request = request
        self._settings = settings

    def _answer(self, response_type: str, error_type: str, message: str | None) -> _GatewayAnswer:
        response = self._settings.responses.get(response_type, DEFAULT_RESPONSES[response_type])
        return _GatewayAnswer(response, self._request.request_id, error_type, message)

    def authorize(self, raw_path: str, lambda_event: Any, lambda_context: LambdaContext) -> Any:
        route = self._route_for_event(lambda_event)
        if route is None:  # no such route: Chalice answers as API Gateway does (Missing Authentication Token)
            return super().authorize(raw_path, lambda_event, lambda_context)
        r, settings = self._request, self._settings
        if lambda_event["requestContext"]["path"] != r.path:  # by construction never; but never authorise another
            raise _unevaluable(r.request_id, InvokeUnevaluable("the routed path is not the path authorised"))
        target = Route(settings.region, settings.account_id, r.method, r.path)
        if isinstance(route.authorizer, IAMAuthorizer):
            self._authorize_iam(lambda_event, target)
            return lambda_event, lambda_context
        if settings.resource_policy is not None:
            # Without IAM the caller is anonymous to the resource policy: a route without authorizer needs its
            # Allow, a custom-authorizer route only its explicit Deny (API Gateway Developer Guide, table A).
            try:
                check_anonymous_invoke(
                    target,
                    source_ip=r.source_ip,
                    resource_policy=settings.resource_policy,
                    deny_only=route.authorizer is not None,
                )
            except InvokeDenied as denied:
                raise self._answer("ACCESS_DENIED", "AccessDeniedException", denied.message) from None
            except InvokeUnevaluable as error:
                raise _unevaluable(r.request_id, error) from None
        if isinstance(route.authorizer, ChaliceAuthorizer):
            return self._authorize_custom(raw_path, lambda_event, lambda_context)
        return super().authorize(raw_path, lambda_event, lambda_context)

    def _authorize_custom(self, raw_path: str, lambda_event: Any, lambda_context: LambdaContext) -> Any:
        # As API Gateway: a Lambda authorizer failing with "Unauthorized" is a 401, a policy that does not allow
        # the method a 403, any other failure (it raised, or answered nonsense) a configuration error.
        try:
            return super().authorize(raw_path, lambda_event, lambda_context)
        except ForbiddenError:
            raise self._answer(
                "ACCESS_DENIED", "AccessDeniedException", "User is not authorized to access this resource"
            ) from None
        except LocalGatewayException as error:
            if error.CODE == 401:  # no token at all: API Gateway answers without calling the authorizer
                raise self._answer("UNAUTHORIZED", "UnauthorizedException", "Unauthorized") from None
            # The authorizer answered nothing (Chalice's InvalidAuthorizerError): a configuration error too.
            raise self._answer("AUTHORIZER_CONFIGURATION_ERROR", "AuthorizerConfigurationException", None) from None
        except Exception as error:
            if str(error) == "Unauthorized":
                raise self._answer("UNAUTHORIZED", "UnauthorizedException", "Unauthorized") from None
            raise self._answer("AUTHORIZER_CONFIGURATION_ERROR", "AuthorizerConfigurationException", None) from None

    def _authorize_iam(self, lambda_event: Any, target: Route) -> None:
        r, settings = self._request, self._settings
        try:
            principal = verify(r.method, r.url, r.headers, r.body, settings.credentials, region=settings.region)
        except SignatureRejected as rejected:
            headers = {
                "x-amzn-RequestId": r.request_id,
                "x-amzn-ErrorType": rejected.error_type,
                "Content-Type": "application/json",
            }
            raise ForbiddenError(headers, json.dumps({"message": rejected.message}).encode()) from None
        try:
            check_invoke(principal, target, source_ip=r.source_ip, resource_policy=settings.resource_policy)
        except InvokeDenied as denied:
            raise self._answer("ACCESS_DENIED", "AccessDeniedException", denied.message) from None
        except InvokeUnevaluable as error:
            raise _unevaluable(r.request_id, error) from None
        lambda_event["requestContext"]["identity"].update(principal.identity(r.source_ip))


def _unevaluable(request_id: str, error: InvokeUnevaluable) -> LocalGatewayException:
    """A policy the embedded IAM cannot evaluate: the request fails, loudly, and is never let through."""
    body = {"message": f"The local stack cannot evaluate the policies of this request: {error}"}
    answer = LocalGatewayException(
        {
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": "LocalPolicyUnsupported",
            "Content-Type": "application/json",
        },
        json.dumps(body).encode(),
    )
    answer.CODE = 500
    return answer


class _Gateway(LocalGateway):
    def __init__(self, app: Chalice, config: Config, request: IncomingRequest, settings: _Settings) -> None:
        super().__init__(app, config)
        self._authorizer = _GatewayAuthorizer(app, request, settings)
        self._request = request
        self._account_id = settings.account_id

    def _generate_lambda_event(self, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        event = super()._generate_lambda_event(method, path, headers, body)
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


class _Handler(ChaliceRequestHandler):
    settings: _Settings
    control: ControlHandler | None

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Chalice, config: Config) -> None:
        # The parent builds a LocalGateway per request; ours is built in _generic_handle, with the request.
        self._app, self._config = app_object, config
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def _refuse(self, status: int, body: bytes, request_id: str) -> None:
        """API Gateway's own answer to a request it does not route, and the connection closed after it."""
        headers = {"x-amzn-RequestId": request_id, "Content-Type": "application/json"}
        self._send_http_response(status, headers, body)
        self.close_connection = True

    def _generic_handle(self) -> None:
        request_id = str(uuid.uuid4())
        length = self.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self._refuse(413, b'{"message": "Request Too Long"}', request_id)
            return
        body = self.rfile.read(int(length)) if int(length) else b""
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
        request = IncomingRequest(
            self.command, f"http://{host}{self.path}", headers, body, self.client_address[0], request_id, path
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
            return "{}:{}".format(*self.server.server_address[:2])
        if len(values) != 1:
            return None
        host = values[0].strip(" \t")
        return host if valid_host(host) else None

    def log_message(self, format: str, *args: Any) -> None:
        # Never the query string: presigned requests carry signatures and session tokens there.
        return

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        print(f"api  {self.command} {urlsplit(self.path).path} -> {code}", flush=True)


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
        control: ControlHandler | None = None,
        quiet: bool = False,
    ) -> None:
        # ``responses``: the same dict is filled once the template is provisioned (after the port is known).
        self._settings = _Settings(
            credentials, account_id, region, responses if responses is not None else {}, resource_policy
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
