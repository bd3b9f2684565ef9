"""API Gateway as the app meets it: proxy events with an IAM identity, and the function each one reaches."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["api_gateway", "app_routes", "gateway_event", "proxy_post", "proxy_routes"]


def gateway_event(
    path: str,
    identity: Mapping[str, Any],
    *,
    method: str = "GET",
    query: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """A REST API proxy event as API Gateway sends it (chalice's test client fills no IAM identity). ``query`` as
    pairs may repeat a name: API Gateway then gives its last value alone, and every value in the multi-value map."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query or [])
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    all_headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", **(headers or {})}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi.items()} or None,
        "multiValueQueryStringParameters": multi or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": account_id,
            "apiId": "abc123",
            "identity": dict(identity),
        },
        "body": None,
        "isBase64Encoded": False,
    }


@functools.cache
def proxy_routes() -> dict[tuple[str, str], str]:
    """(METHOD, path) -> the app function template.yaml's API definition integrates it with by proxy (POST /auto-id
    runs as auto_id); every other method goes to chalice's API handler."""
    import app
    from local.apidef import REST_API, proxy_routes
    from local.provision import app_functions
    from local.template import Template, load_template
    from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT

    parameters = {"Prefix": "credport-dev", "Issuer": "https://issuer.example.com"}
    document = load_template(REPO_ROOT / "template.yaml")
    template = Template(document, parameters=parameters, account_id=ACCOUNT_ID, region=REGION, stack_name="credport")
    for logical_id, name in app_functions(app.app).items():
        template.attributes[logical_id] = {"Ref": name, "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"}
    definition = template.resolve(template.resources[REST_API]["Properties"]["DefinitionBody"])
    return {key: route.function for key, route in proxy_routes(definition).items()}


def app_routes() -> dict[tuple[str, str], Any]:
    """chalice's routes, and the methods the API's definition integrates with a function of their own (POST
    /auto-id: the auto_id function, by proxy, no authorizer)."""
    from types import SimpleNamespace

    import app

    routes: dict[tuple[str, str], Any] = {
        (method, path): entry
        for path, methods in app.app.routes.items()
        for method, entry in methods.items()
        if not path.startswith("/_local")
    }
    return {**routes, **{key: SimpleNamespace(authorizer=None) for key in proxy_routes()}}


def api_gateway(event: dict[str, Any]) -> dict[str, Any]:
    """A REST proxy event to what API Gateway integrates its method with, as it would hand it: a proxy route's own
    function (:func:`proxy_routes`), else chalice's API handler (``app.app``). The proxy response."""
    from chalice.local import LambdaContext

    import app

    function = proxy_routes().get((str(event["httpMethod"]), str(event["resource"])))
    if function is None:
        response: dict[str, Any] = app.app(event, None)
        return response
    answer: dict[str, Any] = app.app.handler_map[function](event, LambdaContext(function, memory_size=512))
    return answer


def proxy_post(
    path: str, body: str | bytes | None, *, headers: Mapping[str, str] | None = None, source_ip: str = "203.0.113.7"
) -> Any:
    """An anonymous POST through :func:`api_gateway`, answered as chalice's test client answers
    (``chalice.test.HTTPResponse``: status_code, headers, body bytes)."""
    from chalice.test import HTTPResponse

    sent = {"Content-Type": "application/json"} if headers is None else headers
    event = gateway_event(path, {"sourceIp": source_ip}, method="POST", headers=sent)
    event["body"] = body
    return HTTPResponse.create_from_dict(api_gateway(event))
