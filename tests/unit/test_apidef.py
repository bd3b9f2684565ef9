"""local/apidef.py: the REST API definition template.yaml declares, read as API Gateway reads it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.apidef import (
    DEFAULT_RESPONSES,
    GATEWAY_RESPONSES,
    REST_API,
    gateway_responses,
    masked_method_arn,
    method_arn,
    resource_policy,
)
from local.template import TemplateError, load_template
from tests.conftest import REPO_ROOT

TYPES = {"UNAUTHORIZED", "ACCESS_DENIED", "AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"}


def definition() -> dict[str, Any]:
    resource = load_template(REPO_ROOT / "template.yaml")["Resources"][REST_API]
    body: dict[str, Any] = resource["Properties"]["DefinitionBody"]
    return body


def test_the_template_declares_every_answer_the_gateway_gives_in_credports_shape() -> None:
    responses = gateway_responses(definition())
    assert set(responses) == TYPES
    for kind in ("AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"):  # both: transient, retry
        answer = responses[kind]
        assert (answer.status, answer.headers["Retry-After"], answer.headers["Cache-Control"]) == (503, "1", "no-store")
        assert json.loads(answer.body(None))["error"] == "service_unavailable"
    assert responses["UNAUTHORIZED"].status == 401
    assert responses["UNAUTHORIZED"].headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    denied = responses["ACCESS_DENIED"]
    assert denied.status == 403
    assert "WWW-Authenticate" not in denied.headers  # an IAM caller's refusal is no bearer-token problem
    message = 'User: arn:aws:iam::123456789012:user/a"b is not authorized'
    assert json.loads(denied.body(message)) == {"error": "forbidden", "message": message}


def test_defaults_are_api_gateways_own_answers() -> None:
    assert json.loads(DEFAULT_RESPONSES["AUTHORIZER_CONFIGURATION_ERROR"].body(None)) == {"message": None}
    assert DEFAULT_RESPONSES["AUTHORIZER_CONFIGURATION_ERROR"].status == 500
    assert json.loads(DEFAULT_RESPONSES["ACCESS_DENIED"].body("no")) == {"Message": "no"}
    assert json.loads(DEFAULT_RESPONSES["UNAUTHORIZED"].body("Unauthorized")) == {"message": "Unauthorized"}


def test_a_response_without_status_code_takes_its_types_default() -> None:
    parsed = gateway_responses({GATEWAY_RESPONSES: {"ACCESS_DENIED": {"responseTemplates": {}}}})
    assert parsed["ACCESS_DENIED"].status == 403
    assert parsed["ACCESS_DENIED"].template == DEFAULT_RESPONSES["ACCESS_DENIED"].template


@pytest.mark.parametrize(
    ("spec", "refusal"),
    [
        ({GATEWAY_RESPONSES: {"THROTTLED": {"statusCode": "429"}}}, "never produced"),
        (
            {GATEWAY_RESPONSES: {"UNAUTHORIZED": {"responseParameters": {"gatewayresponse.header.X": "method.x"}}}},
            "only static headers",
        ),
        (
            {GATEWAY_RESPONSES: {"UNAUTHORIZED": {"responseTemplates": {"application/json": "$context.requestId"}}}},
            "variable other than",
        ),
        ({GATEWAY_RESPONSES: {"UNAUTHORIZED": {"responseTemplates": {"text/html": "x"}}}}, "does not apply"),
        ({"x-amazon-apigateway-binary-media-types": ["*/*"]}, "does not apply"),
    ],
)
def test_what_the_local_gateway_cannot_reproduce_is_an_error(spec: dict[str, Any], refusal: str) -> None:
    with pytest.raises(TemplateError, match=refusal):
        gateway_responses(spec)


def test_method_arns_are_api_gateways() -> None:
    assert (
        method_arn("us-east-1", "123456789012", "get", "/")
        == "arn:aws:execute-api:us-east-1:123456789012:local/api/GET/"
    )
    arn = method_arn("us-east-1", "123456789012", "POST", "/transfer/clients/c1/send")
    assert arn == "arn:aws:execute-api:us-east-1:123456789012:local/api/POST/transfer/clients/c1/send"
    assert (
        masked_method_arn(arn) == "arn:aws:execute-api:us-east-1:********9012:local/api/POST/transfer/clients/c1/send"
    )


def test_the_resource_policy_shorthand_names_this_api() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"},
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "execute-api:Invoke",
                "NotResource": ["execute-api:/api/GET/x"],
            },
        ],
    }
    expanded = resource_policy({"x-amazon-apigateway-policy": json.dumps(policy)}, region="eu-west-1", account_id="1")
    assert expanded is not None
    assert expanded["Statement"][0]["Resource"] == ["arn:aws:execute-api:eu-west-1:1:local/*"]
    assert expanded["Statement"][1]["NotResource"] == ["arn:aws:execute-api:eu-west-1:1:local/api/GET/x"]
    assert resource_policy({}, region="eu-west-1", account_id="1") is None


_URI = (
    "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:us-east-1:123456789012:function:{}/invocations"
)


def _proxy(name: str = "auto_id", **integration: Any) -> dict[str, Any]:
    spec = {"type": "aws_proxy", "httpMethod": "POST", "uri": _URI.format(name), **integration}
    return {"paths": {"/auto-id": {"post": {"x-amazon-apigateway-integration": spec}}}}


def test_the_templates_paths_route_post_auto_id_to_the_auto_id_function() -> None:
    from tests.support import proxy_routes as resolved

    assert resolved() == {("POST", "/auto-id"): "auto_id"}
    assert gateway_responses(definition())  # `paths` is part of what the local gateway applies


@pytest.mark.parametrize(
    ("changed", "problem"),
    [
        (_proxy(type="aws"), "only Lambda proxy integrations"),  # a mapping-template integration
        (_proxy(httpMethod="GET"), "only Lambda proxy integrations"),
        (_proxy(uri="arn:aws:apigateway:us-east-1:s3:path/bucket/key"), "only Lambda proxy integrations"),
        (_proxy(requestTemplates={"application/json": "{}"}), "does not apply"),
        ({"paths": {"/auto-id": {"post": {"security": [{"sigv4": []}]}}}}, "does not apply"),  # an authorizer
    ],
    ids=["aws", "get", "not-lambda", "template", "authorizer"],
)
def test_a_path_the_local_gateway_would_not_reproduce_is_an_error(changed: dict[str, Any], problem: str) -> None:
    from local.apidef import proxy_routes

    with pytest.raises(TemplateError, match=problem):
        proxy_routes(changed)
    assert proxy_routes(_proxy())[("POST", "/auto-id")].function == "auto_id"
