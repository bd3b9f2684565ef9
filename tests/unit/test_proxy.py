"""chalicelib.api.json_route: POST /auto-id as its own function answers every request exactly as a chalice view would
(same checks, same error shapes and statuses), whatever API Gateway or a direct invocation hands it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from chalicelib.api import json_route
from chalicelib.errors import AuthenticationFailed, ServiceUnavailable
from tests.support import gateway_event

REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # gateway_event's


def event(body: Any = '{"jwe": "x"}', headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    sent = {"Content-Type": "application/json"} if headers is None else headers
    built = gateway_event("/auto-id", {"sourceIp": "203.0.113.7"}, method="POST", headers=sent)
    built.update(body=body, **extra)
    return built


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert set(response) >= {"statusCode", "headers", "multiValueHeaders", "body"}
    return response["statusCode"], json.loads(response["body"])


def echo(body: dict[str, Any]) -> dict[str, Any]:
    return {"got": body}


def test_a_json_object_reaches_the_handler_and_its_answer_is_a_proxy_response() -> None:
    response = json_route(event(), echo, max_bytes=100)
    assert answer(response) == (200, {"got": {"jwe": "x"}})
    # a plain answer is private JSON, as a chalice view's (chalicelib.api.api_view)
    assert response["headers"] == {"Content-Type": "application/json", "Cache-Control": "no-store"}


@pytest.mark.parametrize(
    ("sent", "status", "code"),
    [
        (event(body=None), 400, "bad_request"),  # no body
        (event(body="[1]"), 400, "bad_request"),  # not an object
        (event(body="{"), 400, "bad_request"),  # not JSON
        (event(body="[" * 90), 400, "bad_request"),  # nested past any sense, and not JSON
        (event(body='{"jwe": "' + "a" * 200 + '"}'), 413, "payload_too_large"),
        (event(headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (event(body="!!not base64!!", isBase64Encoded=True), 400, "bad_request"),
        ({"not": "a proxy event"}, 400, "bad_request"),  # a direct invocation of the function
        ("a string", 400, "bad_request"),
        (None, 400, "bad_request"),
    ],
    ids=["empty", "array", "not-json", "nested", "too-large", "text-plain", "bad-base64", "no-context", "str", "none"],
)
def test_bad_requests_get_the_views_error_answers(sent: Any, status: int, code: str) -> None:
    reached: list[Any] = []
    got_status, body = answer(json_route(sent, reached.append, max_bytes=100))
    assert (got_status, body["error"]) == (status, code)
    assert reached == []  # refused before the handler


def test_the_415_never_quotes_the_callers_header() -> None:
    hostile = "text/plain; q=<script>alert(1)</script>"
    status, body = answer(json_route(event(headers={"Content-Type": hostile}), echo, max_bytes=100))
    assert status == 415
    assert "script" not in json.dumps(body)


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "application/json; charset=utf-8"}, {"Content-Type": "*/*"}],
    ids=["none-is-json", "with-charset", "any"],
)
def test_content_types_chalice_accepts_are_accepted(headers: dict[str, str]) -> None:
    assert answer(json_route(event(headers=headers), echo, max_bytes=100))[0] == 200


def test_null_headers_and_a_base64_body_are_read_as_api_gateway_sends_them() -> None:
    sent = event(body=base64.b64encode(b'{"jwe": "y"}').decode(), isBase64Encoded=True)
    sent.update(headers=None, multiValueHeaders=None)
    assert answer(json_route(sent, echo, max_bytes=100)) == (200, {"got": {"jwe": "y"}})


def test_the_handlers_errors_leave_in_the_error_shape_with_their_status() -> None:
    def refuse(_body: dict[str, Any]) -> Any:
        raise AuthenticationFailed()

    def busy(_body: dict[str, Any]) -> Any:
        raise ServiceUnavailable()

    status, body = answer(json_route(event(), refuse, max_bytes=100))
    assert (status, body["error"]) == (401, "authentication_failed")
    assert "request_id" not in body
    response = json_route(event(), busy, max_bytes=100)
    assert answer(response)[0] == 503
    assert response["headers"]["Retry-After"] == "1"


def test_an_unexpected_failure_is_an_opaque_500_with_the_request_id() -> None:
    def broken(_body: dict[str, Any]) -> Any:
        raise RuntimeError("secret detail hunter2")

    response = json_route(event(), broken, max_bytes=100)
    status, body = answer(response)
    assert (status, body["error"], body["request_id"]) == (500, "internal_error", REQUEST_ID)
    assert "hunter2" not in response["body"]
