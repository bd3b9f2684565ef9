"""The REST API definition credport declares, read the way API Gateway reads it.

template.yaml holds a fragment of chalice's own REST API (logical id ``RestAPI``): ``DefinitionBody`` extensions,
namely ``x-amazon-apigateway-gateway-responses`` (what API Gateway answers itself, e.g. for a failed authorizer)
and, if credport ever declares one, ``x-amazon-apigateway-policy`` (the API's resource policy), and ``paths``: the
methods integrated with a function other than chalice's API handler (``aws_proxy``, :func:`proxy_routes`). That
fragment is the one source of truth for three readers: ``chalice package --merge-template`` deep-merges it into
chalice's RestAPI, ``credport-admin wire-app`` merges it into the API ``chalice deploy`` created
(:mod:`client.deploy`), and the local gateway answers from it (this module).

Sources: API Gateway Developer Guide, "Gateway response types" (default status codes), "x-amazon-apigateway-gateway-
responses object" (static header values in single quotes; templates are not run through VTL, only ``$context``
variables are substituted), "x-amazon-apigateway-policy" (``execute-api:/stage/METHOD/path`` shorthand).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.template import TemplateError

__all__ = [
    "API_ID",
    "DEFAULT_RESPONSES",
    "DEFINITION_KEYS",
    "GATEWAY_RESPONSES",
    "MESSAGE_STRING",
    "PATHS",
    "RESOURCE_POLICY",
    "REST_API",
    "STAGE",
    "GatewayResponse",
    "ProxyRoute",
    "api_arn",
    "gateway_responses",
    "masked_method_arn",
    "method_arn",
    "proxy_routes",
    "resource_policy",
]

REST_API = "RestAPI"  # chalice's logical id for its REST API in the packaged SAM template
GATEWAY_RESPONSES = "x-amazon-apigateway-gateway-responses"
RESOURCE_POLICY = "x-amazon-apigateway-policy"
PATHS = "paths"
DEFINITION_KEYS = frozenset({GATEWAY_RESPONSES, RESOURCE_POLICY, PATHS})
INTEGRATION = "x-amazon-apigateway-integration"
# A Lambda proxy integration's URI: API Gateway's path of Lambda's Invoke API for the function's ARN.
_LAMBDA_URI = re.compile(
    r"arn:aws[a-z-]*:apigateway:[a-z0-9-]+:lambda:path/2015-03-31/functions/"
    r"(?P<function>arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:(?P<name>[A-Za-z0-9_-]+))/invocations"
)
_OPERATION_KEYS = frozenset({"consumes", "produces", "responses", INTEGRATION})
_INTEGRATION_KEYS = frozenset({"type", "httpMethod", "uri", "passthroughBehavior", "contentHandling", "responses"})
API_ID = "local"  # the local gateway's api id and stage, as they appear in method ARNs
STAGE = "api"  # chalice's api_gateway_stage in .chalice/config.json
MESSAGE_STRING = "$context.error.messageString"  # the quoted error message: a JSON string, or null
_HEADER = "gatewayresponse.header."
_STATIC = re.compile(r"^'([^']*)'$")
_VARIABLE = re.compile(r"\$(context|input|util|stageVariables|method)\b")


@dataclass(frozen=True)
class GatewayResponse:
    """One gateway response: a status, static headers, and the application/json template of its body."""

    status: int
    headers: Mapping[str, str]
    template: str

    def body(self, message: str | None) -> bytes:
        return self.template.replace(MESSAGE_STRING, json.dumps(message)).encode()


_DEFAULT_TEMPLATE = '{"message":' + MESSAGE_STRING + "}"
_JSON = {"Content-Type": "application/json"}
# API Gateway's own answers for the types the local gateway produces, when the API configures none. The denial of
# an IAM caller (and of a custom authorizer's policy) answers with a capitalised "Message".
DEFAULT_RESPONSES: Mapping[str, GatewayResponse] = {
    "UNAUTHORIZED": GatewayResponse(401, _JSON, _DEFAULT_TEMPLATE),
    "ACCESS_DENIED": GatewayResponse(403, _JSON, '{"Message":' + MESSAGE_STRING + "}"),
    "AUTHORIZER_FAILURE": GatewayResponse(500, _JSON, _DEFAULT_TEMPLATE),
    "AUTHORIZER_CONFIGURATION_ERROR": GatewayResponse(500, _JSON, _DEFAULT_TEMPLATE),
}


def gateway_responses(definition: Mapping[str, Any]) -> dict[str, GatewayResponse]:
    """The definition's gateway responses by type. Anything the local gateway could not reproduce faithfully
    (a response type it never produces, a header mapped from the request, a VTL variable) is an error."""
    unknown = set(definition) - DEFINITION_KEYS
    if unknown:
        raise TemplateError(f"{REST_API}: the local gateway does not apply {sorted(unknown)}; teach local/apidef.py")
    responses = {}
    for kind, spec in definition.get(GATEWAY_RESPONSES, {}).items():
        if kind not in DEFAULT_RESPONSES:
            raise TemplateError(f"{REST_API}: gateway response {kind} is never produced by the local gateway")
        extra = set(spec) - {"statusCode", "responseParameters", "responseTemplates"}
        templates = spec.get("responseTemplates", {})
        if extra or set(templates) - {"application/json"}:
            raise TemplateError(f"{REST_API}: {kind} uses what the local gateway does not apply; teach local/apidef.py")
        headers = dict(_JSON)
        for name, value in spec.get("responseParameters", {}).items():
            static = _STATIC.match(str(value))
            if not name.startswith(_HEADER) or static is None:
                raise TemplateError(f"{REST_API}: {kind} maps {name} from the request; only static headers are known")
            headers[name[len(_HEADER) :]] = static.group(1)
        template = str(templates.get("application/json", DEFAULT_RESPONSES[kind].template))
        if _VARIABLE.search(template.replace(MESSAGE_STRING, "")):
            raise TemplateError(f"{REST_API}: {kind}'s template uses a variable other than {MESSAGE_STRING}")
        status = int(spec.get("statusCode", DEFAULT_RESPONSES[kind].status))
        responses[kind] = GatewayResponse(status, headers, template)
    return responses


@dataclass(frozen=True)
class ProxyRoute:
    """A method the definition integrates with a Lambda function by proxy: the function gets API Gateway's REST
    proxy event and answers with a proxy response (API Gateway Developer Guide, "Lambda proxy integrations")."""

    method: str
    path: str
    function: str  # the function's name, the last part of its ARN (locally, chalice's name for it)


def proxy_routes(definition: Mapping[str, Any]) -> dict[tuple[str, str], ProxyRoute]:
    """The definition's ``paths`` (resolved: the URI names the function's ARN), by (METHOD, path). Anything but a
    plain Lambda proxy integration (another type, a mapping template, an authorizer) is an error: the local gateway
    would not reproduce it."""
    routes = {}
    for path, item in definition.get(PATHS, {}).items():
        for method, operation in item.items():
            where = f"{REST_API}: {method.upper()} {path}"
            integration = operation.get(INTEGRATION, {})
            if set(operation) - _OPERATION_KEYS or set(integration) - _INTEGRATION_KEYS:
                raise TemplateError(f"{where} uses what the local gateway does not apply; teach local/apidef.py")
            uri = _LAMBDA_URI.fullmatch(str(integration.get("uri", "")))
            if integration.get("type") != "aws_proxy" or integration.get("httpMethod") != "POST" or uri is None:
                raise TemplateError(f"{where}: only Lambda proxy integrations (aws_proxy, POST to Invoke) are known")
            routes[(method.upper(), path)] = ProxyRoute(method.upper(), path, uri["name"])
    return routes


def resource_policy(definition: Mapping[str, Any], *, region: str, account_id: str) -> dict[str, Any] | None:
    """The API's resource policy with the ``execute-api:/…`` shorthand expanded to this API's ARNs."""
    policy = definition.get(RESOURCE_POLICY)
    if policy is None:
        return None
    document: dict[str, Any] = json.loads(policy) if isinstance(policy, str) else json.loads(json.dumps(policy))
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        for element in ("Resource", "NotResource"):
            if element in statement:
                values = statement[element] if isinstance(statement[element], list) else [statement[element]]
                statement[element] = [_expand(str(v), region, account_id) for v in values]
    return document


def _expand(resource: str, region: str, account_id: str) -> str:
    if resource.startswith("execute-api:/"):
        return api_arn(region, account_id, resource[len("execute-api:/") :])
    return resource


def api_arn(region: str, account_id: str, rest: str = "*") -> str:
    """``arn:aws:execute-api:{region}:{account}:{api-id}/{rest}`` for the local API."""
    return f"arn:aws:execute-api:{region}:{account_id}:{API_ID}/{rest}"


def method_arn(region: str, account_id: str, method: str, path: str) -> str:
    """The ARN ``execute-api:Invoke`` is checked on: ``…:{api-id}/{stage}/{METHOD}/{resource-path}``."""
    return api_arn(region, account_id, f"{STAGE}/{method.upper()}/{path.lstrip('/')}")


def masked_method_arn(arn: str) -> str:
    """The method ARN as API Gateway prints it in a refusal: the account id masked but for its last four digits."""
    parts = arn.split(":", 5)
    parts[4] = "*" * 8 + parts[4][-4:]
    return ":".join(parts)
