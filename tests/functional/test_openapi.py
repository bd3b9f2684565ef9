"""openapi.yaml is valid OpenAPI and describes exactly the app's routes, their authorizers and error shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, cast

import pytest
import yaml
from chalice.app import ChaliceAuthorizer, IAMAuthorizer
from chalice.test import Client
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

import app as credport_app
from chalicelib import autoid, errors, transfer
from chalicelib.api import error_response
from chalicelib.envelope import MAX_ENVELOPE_BYTES
from tests.conftest import REPO_ROOT
from tests.support import app_routes, proxy_post, proxy_routes

SPEC_PATH = REPO_ROOT / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ERROR_REF = "#/components/schemas/Error"
GATEWAY_REF = "#/components/schemas/GatewayError"
# The app's own body limits (app.py passes these to json_body); the document must state the same.
BODY_LIMITS = {("POST", "/transfer/import"): MAX_ENVELOPE_BYTES + 1024, ("POST", "/auto-id"): autoid.MAX_BODY_BYTES}


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return spec


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def follow(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = follow(spec, str(node["$ref"]))
    return node


def refs_reachable(spec: dict[str, Any], schema: Any, seen: frozenset[str] = frozenset()) -> set[str]:
    """Every component a schema refers to, through $ref and the allOf/oneOf/anyOf combinators."""
    found: set[str] = set()
    if not isinstance(schema, dict):
        return found
    if "$ref" in schema:
        ref = str(schema["$ref"])
        if ref in seen:
            return found
        found.add(ref)
        return found | refs_reachable(spec, follow(spec, ref), seen | {ref})
    for combinator in ("allOf", "oneOf", "anyOf"):
        for branch in schema.get(combinator, []):
            found |= refs_reachable(spec, branch, seen)
    return found


def response_schemas(spec: dict[str, Any], operation: dict[str, Any]) -> Iterator[tuple[int, Any, Any]]:
    for status, response in operation["responses"].items():
        resolved = resolve(spec, response)
        content = resolved.get("content", {})
        assert set(content) == {"application/json"}, f"{status}: every answer is JSON"
        yield int(status), resolved, content["application/json"]["schema"]


def component_validator(spec: dict[str, Any], name: str) -> OAS30Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return OAS30Validator(schema)


def test_the_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.")


def test_the_document_describes_exactly_the_apps_routes(spec: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in operations(spec)}
    routes = set(app_routes())
    assert documented - routes == set(), "documented but not in app.py"
    assert routes - documented == set(), "in app.py but not documented"
    assert len(routes) == 13


def test_each_operations_security_matches_its_authorizer(spec: dict[str, Any]) -> None:
    assert "security" not in spec, "no global default: each operation states its own"
    schemes = spec["components"]["securitySchemes"]
    routes = app_routes()
    for method, path, operation in operations(spec):
        authorizer = routes[(method, path)].authorizer
        assert "security" in operation, f"{method} {path} must state its security, even when it is none"
        if authorizer is None:
            assert operation["security"] == [], f"{method} {path} takes no credentials"
            continue
        assert operation["security"] == [{authorizer.name: []}], f"{method} {path}"
        scheme = schemes[authorizer.name]
        if isinstance(authorizer, IAMAuthorizer):
            assert scheme["type"] == "apiKey"
            assert (scheme["in"], scheme["name"]) == ("header", "Authorization")
            assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
        else:
            assert isinstance(authorizer, ChaliceAuthorizer)
            assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_every_error_response_uses_the_error_schema(spec: dict[str, Any]) -> None:
    routes = app_routes()
    for method, path, operation in operations(spec):
        authorizer = routes[(method, path)].authorizer
        statuses = set()
        for status, _, schema in response_schemas(spec, operation):
            statuses.add(status)
            where = f"{method} {path} {status}"
            reachable = refs_reachable(spec, schema)
            if status < 400:
                assert ERROR_REF not in reachable, where
                continue
            assert ERROR_REF in reachable, f"{where}: errors are the Error shape"
            # API Gateway's own shape only where API Gateway itself answers before the app.
            gateway_allowed = (
                (status == 403 and isinstance(authorizer, IAMAuthorizer))
                or (status == 500 and isinstance(authorizer, ChaliceAuthorizer))
                or status == 413
            )
            assert (GATEWAY_REF in reachable) == gateway_allowed, where
        assert 500 in statuses, f"{method} {path}: the opaque 500 is documented"
        assert 415 in statuses, f"{method} {path}: any route refuses a Content-Type other than JSON"
        if isinstance(authorizer, IAMAuthorizer):
            assert 403 in statuses, f"{method} {path}: API Gateway's 403 for a bad signature"
        if isinstance(authorizer, ChaliceAuthorizer):
            assert 401 in statuses, f"{method} {path}: the bearer 401"
            assert "WWW-Authenticate" in resolve(spec, operation["responses"]["401"])["headers"]


def test_bodies_and_their_limits_are_documented(spec: dict[str, Any]) -> None:
    with_body = {(method, path) for method, path, operation in operations(spec) if "requestBody" in operation}
    assert with_body == set(BODY_LIMITS)
    for (method, path), limit in BODY_LIMITS.items():
        operation = spec["paths"][path][method.lower()]
        assert operation["requestBody"]["required"] is True
        assert f"At most {limit} bytes" in operation["requestBody"]["description"]
        assert "413" in operation["responses"], f"{method} {path}: an oversized body is a 413"


@pytest.mark.parametrize(
    "error",
    [
        errors.BadRequest(),
        errors.AuthenticationFailed(),
        errors.InvalidToken(),
        errors.Forbidden(),
        errors.NotFound(),
        errors.Conflict(),
        errors.MethodNotAllowed(),
        errors.PayloadTooLarge(),
        errors.UnsupportedMediaType(),
        errors.InternalError(),
        errors.DependencyError(),
        errors.ServiceUnavailable(),
        errors.ConfigError(["CREDPORT_X is bad"]),
    ],
    ids=lambda error: type(error).__name__,
)
def test_the_apps_error_responses_match_the_error_schema(spec: dict[str, Any], error: errors.CredportError) -> None:
    server_side = error.status >= 500
    response = error_response(error, "request-1" if server_side else None)
    body = response.body
    component_validator(spec, "Error").validate(body)
    if server_side:
        component_validator(spec, "ServerError").validate(body)
    assert not component_validator(spec, "GatewayError").is_valid(body)


def test_the_schemas_reject_what_they_must(spec: dict[str, Any]) -> None:
    error = component_validator(spec, "Error")
    assert not error.is_valid({"message": "no code"})
    assert not error.is_valid({"error": "x", "message": "m", "detail": "extra members are not part of the shape"})
    assert not component_validator(spec, "ServerError").is_valid({"error": "internal_error", "message": "m"})
    gateway = component_validator(spec, "GatewayError")
    assert gateway.is_valid({"message": "Missing Authentication Token"})
    assert gateway.is_valid({"message": None})
    assert not gateway.is_valid({"Message": "User is not authorized to access this resource"})
    jwk = component_validator(spec, "PublicJwk")
    assert jwk.is_valid({"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"})
    assert not jwk.is_valid({"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB", "d": "private"})
    assert not jwk.is_valid({"kty": "oct", "kid": "k", "k": "c2VjcmV0"})


# Bearer routes run their authorizer first (which needs the session key in AWS): the e2e schemathesis run covers
# them with a live token.
NOT_BEARER = sorted(key for key, entry in app_routes().items() if not isinstance(entry.authorizer, ChaliceAuthorizer))


@pytest.mark.parametrize(("method", "path"), NOT_BEARER, ids=str)
def test_chalices_own_415_leaves_in_the_error_shape(spec: dict[str, Any], method: str, path: str) -> None:
    # Chalice refuses the Content-Type before any view (or AWS) is reached; its own shape was {"Code", "Message"}.
    hostile = "text/plain; q=<script>alert(1)</script>"
    if (method, path) in proxy_routes():  # its own function answers as chalice would (chalicelib/api.py, json_route)
        response = proxy_post(path, "{}", headers={"Content-Type": hostile})
    else:
        with Client(credport_app.app, stage_name="dev") as client:
            response = client.http.request(
                method, path.replace("{client_id}", "c1"), headers={"Content-Type": hostile}, body=b"{}"
            )
    assert response.status_code == 415
    body = json.loads(response.body)
    assert body == {
        "error": "unsupported_media_type",
        "message": "The request's Content-Type must be application/json.",
    }
    component_validator(spec, "Error").validate(body)
    assert response.headers["Content-Type"] == "application/json"
    assert "script" not in response.body.decode()


def test_chalices_own_405_leaves_in_the_error_shape(spec: dict[str, Any]) -> None:
    # Locally only (API Gateway answers an unrouted method itself), but the same one shape.
    with Client(credport_app.app, stage_name="dev") as client:
        response = client.http.request("DELETE", "/health")
    assert response.status_code == 405
    body = json.loads(response.body)
    assert body["error"] == "method_not_allowed"
    component_validator(spec, "Error").validate(body)
    assert response.headers["Allow"] == "GET"


@pytest.mark.parametrize("client_id", ["c1", "a" * 63, "a" * 64, "a" * 3000, "-x", "Upper", "a/b", "a.b", "é", "c1\n"])
def test_send_refuses_ids_outside_the_documented_pattern_before_any_aws_call(
    spec: dict[str, Any], client_id: str
) -> None:
    # A path parameter goes to DynamoDB as part of a key, which AWS (not moto) refuses over 2048 bytes: a 500.
    pattern = spec["paths"]["/transfer/clients/{client_id}/send"]["post"]["parameters"][0]["schema"]["pattern"]
    documented = re.fullmatch(pattern.removeprefix("^").removesuffix("$"), client_id) is not None

    class Reached(Exception):
        pass

    class Sender:
        def send(self, client_id: str) -> Any:
            raise Reached(client_id)

    def unreachable() -> Any:
        raise AssertionError("only the sender may be asked for")

    requests = transfer.TransferRequests(
        importer=unreachable, sender=lambda: cast(Any, Sender()), link_store=unreachable, bucket="b", rotation_days=0
    )
    with pytest.raises(Reached if documented else transfer.UnknownClient):
        requests.send(client_id)
