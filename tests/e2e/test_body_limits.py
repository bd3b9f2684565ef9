"""Body size limits over HTTP: every route that reads a body refuses one over its limit with 413
``payload_too_large`` (the Error shape), accepts one of exactly its limit, and API Gateway's own 10 MiB limit
stops anything bigger before the app. IAM routes are signed, so the app (not the signature check) answers."""

from __future__ import annotations

import json

import pytest
import requests
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from chalicelib import autoid
from chalicelib.envelope import MAX_ENVELOPE_BYTES
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
REGION = "us-east-1"
GATEWAY_LIMIT = 10 * 1024 * 1024
# (path, signed, the app's limit): app.py hands these limits to json_body.
BODY_ROUTES = [
    ("/transfer/import", True, MAX_ENVELOPE_BYTES + 1024),
    ("/auto-id", False, autoid.MAX_BODY_BYTES),
]


def json_of_size(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes: ``{"jwe": "xxx…"}``."""
    shell = b'{"jwe": ""}'
    body = shell[:-2] + b"x" * (size - len(shell)) + shell[-2:]
    assert len(body) == size
    json.loads(body)
    return body


def post(stack: RunningStack, path: str, body: bytes, *, sign: bool) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if sign:
        request = AWSRequest(method="POST", url=stack.api + path, data=body, headers=headers)
        SigV4Auth(stack.credentials(), "execute-api", REGION).add_auth(request)
        headers = dict(request.headers)
    return requests.post(stack.api + path, data=body, headers=headers, timeout=60)


def test_the_routes_with_a_body_are_the_documented_ones() -> None:
    spec = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
    with_body = {path for path, item in spec["paths"].items() for op in item.values() if "requestBody" in op}
    assert with_body == {path for path, _, _ in BODY_ROUTES}


@pytest.mark.parametrize(("path", "sign", "limit"), BODY_ROUTES)
@pytest.mark.parametrize("over", [1, 1024 * 1024])
def test_a_body_over_the_limit_is_413(stack: RunningStack, path: str, sign: bool, limit: int, over: int) -> None:
    response = post(stack, path, json_of_size(limit + over), sign=sign)
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "error": "payload_too_large",
        "message": f"The request body must be at most {limit} bytes.",
    }
    assert "x-amzn-ErrorType" not in response.headers  # the app answered, not the gateway


@pytest.mark.parametrize(("path", "sign", "limit"), BODY_ROUTES)
def test_a_body_of_exactly_the_limit_is_read(stack: RunningStack, path: str, sign: bool, limit: int) -> None:
    response = post(stack, path, json_of_size(limit), sign=sign)
    assert response.status_code == 400, response.text  # read and refused for what it says, not for its size
    assert response.json()["error"] != "payload_too_large"


@pytest.mark.parametrize(("path", "sign", "limit"), BODY_ROUTES)
def test_api_gateways_limit_stops_bigger_bodies_first(stack: RunningStack, path: str, sign: bool, limit: int) -> None:
    response = post(stack, path, json_of_size(GATEWAY_LIMIT + 1), sign=sign)
    assert response.status_code == 413
    assert response.json() == {"message": "Request Too Long"}


def test_an_unsigned_oversized_body_is_refused_by_the_signature_check_first(stack: RunningStack) -> None:
    path, _, limit = BODY_ROUTES[0]
    response = post(stack, path, json_of_size(limit + 1), sign=False)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
