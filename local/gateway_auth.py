"""How the local gateway decides whether a request reaches the app: API Gateway's authorization, as
:mod:`local.gateway` describes it. An ``AWS_IAM`` route needs a valid SigV4 signature and ``execute-api:Invoke``
(:mod:`local.invoke`); a custom authorizer runs as the function of its own it is, and its outcomes answer as API
Gateway's gateway responses do; the API's resource policy applies to every route, proxy routes included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalice.app import Chalice, ChaliceAuthorizer, IAMAuthorizer
from chalice.local import ForbiddenError, LambdaContext, LocalGatewayAuthorizer, LocalGatewayException

from chalicelib.aws import running_as
from local.apidef import DEFAULT_RESPONSES, GatewayResponse, ProxyRoute
from local.iam.sts_callers import organization_of
from local.invoke import InvokeDenied, InvokeUnevaluable, Route, check_anonymous_invoke, check_invoke
from local.sigv4 import CredentialLookup, SignatureRejected, verify

__all__ = ["GatewayAnswer", "GatewayAuthorizer", "GatewaySettings", "IncomingRequest", "unevaluable"]


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    source_ip: str
    request_id: str
    path: str  # the path the request is routed on (:func:`routed_path`): the one authorised, the one run


@dataclass
class GatewaySettings:
    """What the API Gateway in front of the app is configured with."""

    credentials: CredentialLookup
    account_id: str
    region: str
    responses: dict[str, GatewayResponse]  # by gateway response type, from the API's definition
    resource_policy: Mapping[str, Any] | None = None
    proxy_routes: Mapping[tuple[str, str], ProxyRoute] = field(default_factory=dict)  # (METHOD, path) -> function


class GatewayAnswer(LocalGatewayException):
    def __init__(self, response: GatewayResponse, request_id: str, error_type: str, message: str | None) -> None:
        headers = {**response.headers, "x-amzn-RequestId": request_id, "x-amzn-ErrorType": error_type}
        super().__init__(headers, response.body(message))
        self.CODE = response.status


class GatewayAuthorizer(LocalGatewayAuthorizer):
    def __init__(self, app: Chalice, request: IncomingRequest, settings: GatewaySettings) -> None:
        super().__init__(app)
        self._request = request
        self._settings = settings

    def _answer(self, response_type: str, error_type: str, message: str | None) -> GatewayAnswer:
        response = self._settings.responses.get(response_type, DEFAULT_RESPONSES[response_type])
        return GatewayAnswer(response, self._request.request_id, error_type, message)

    def authorize(self, raw_path: str, lambda_event: Any, lambda_context: LambdaContext) -> Any:
        route = self._route_for_event(lambda_event)
        if route is None:  # no such route: Chalice answers as API Gateway does (Missing Authentication Token)
            return super().authorize(raw_path, lambda_event, lambda_context)
        r, settings = self._request, self._settings
        if lambda_event["requestContext"]["path"] != r.path:  # by construction never; but never authorise another
            raise unevaluable(r.request_id, InvokeUnevaluable("the routed path is not the path authorised"))
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
                raise unevaluable(r.request_id, error) from None
        if isinstance(route.authorizer, ChaliceAuthorizer):
            with running_as(route.authorizer.name):  # the authorizer is a function of its own, with its own role
                return self._authorize_custom(raw_path, lambda_event, lambda_context)
        return super().authorize(raw_path, lambda_event, lambda_context)

    def authorize_proxy(self) -> None:
        """A proxy route of the definition has no authorizer: only the API's resource policy may refuse it."""
        r, settings = self._request, self._settings
        if settings.resource_policy is None:
            return
        target = Route(settings.region, settings.account_id, r.method, r.path)
        try:
            check_anonymous_invoke(
                target, source_ip=r.source_ip, resource_policy=settings.resource_policy, deny_only=False
            )
        except InvokeDenied as denied:
            raise self._answer("ACCESS_DENIED", "AccessDeniedException", denied.message) from None
        except InvokeUnevaluable as error:
            raise unevaluable(r.request_id, error) from None

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
            raise unevaluable(r.request_id, error) from None
        identity = principal.identity(r.source_ip)
        # API Gateway sets principalOrgId when the caller's account is in an organization (the app's second check).
        identity["principalOrgId"] = organization_of(principal.account_id)
        lambda_event["requestContext"]["identity"].update(identity)


def unevaluable(request_id: str, error: InvokeUnevaluable) -> LocalGatewayException:
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
