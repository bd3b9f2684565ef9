"""The one error mapping: every failure leaves a route as {"error": code, "message": ...}."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from chalice import Chalice
from chalice.test import Client

from chalicelib.api import api_view, error_response, json_body, public_document
from chalicelib.errors import (
    AuthenticationFailed,
    BadRequest,
    Conflict,
    CredportError,
    DependencyError,
    Forbidden,
    InvalidToken,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from chalicelib.observability import logger

CANARY = "canary-s3cr3t-value-5f1d"


def build_app() -> Chalice:
    app = Chalice(app_name="api-test")
    view = api_view(lambda: app.current_request)

    @app.route("/raise/{kind}")
    @view
    def raise_error(kind: str) -> Any:
        errors: dict[str, CredportError] = {
            "bad": BadRequest("The field 'x' is missing."),
            "auth": AuthenticationFailed(),
            "token": InvalidToken(),
            "forbidden": Forbidden(),
            "missing": NotFound(),
            "conflict": Conflict(),
            "big": PayloadTooLarge(),
            "busy": ServiceUnavailable(retry_after=7),
            "dependency": DependencyError(),
        }
        raise errors[kind]

    @app.route("/crash")
    @view
    def crash() -> Any:
        raise ValueError(f"could not parse {CANARY}")

    @app.route("/echo", methods=["POST"])
    @view
    def echo() -> Any:
        return json_body(app.current_request, max_bytes=64)

    @app.route("/public")
    @view
    def public() -> Any:
        return public_document({"keys": []}, max_age=60)

    return app


def test_a_plain_answer_is_private_json_and_a_public_document_says_so_itself() -> None:
    with Client(build_app()) as client:
        private = client.http.post("/echo", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
        public = client.http.get("/public")
    assert (private.status_code, json.loads(private.body)) == (200, {"a": 1})
    assert (private.headers["Content-Type"], private.headers["Cache-Control"]) == ("application/json", "no-store")
    assert public.headers["Cache-Control"] == "public, max-age=60"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("bad", 400, "bad_request"),
        ("auth", 401, "authentication_failed"),
        ("token", 401, "invalid_token"),
        ("forbidden", 403, "forbidden"),
        ("missing", 404, "not_found"),
        ("conflict", 409, "conflict"),
        ("big", 413, "payload_too_large"),
        ("busy", 503, "service_unavailable"),
        ("dependency", 500, "dependency_error"),
    ],
)
def test_errors_map_to_status_and_code(kind: str, status: int, code: str) -> None:
    with Client(build_app()) as client:
        response = client.http.get(f"/raise/{kind}")
    assert response.status_code == status
    body = json.loads(response.body)
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert response.headers["Cache-Control"] == "no-store"


def test_client_errors_carry_no_request_id_but_server_errors_do() -> None:
    with Client(build_app()) as client:
        assert "request_id" not in json.loads(client.http.get("/raise/bad").body)
        assert json.loads(client.http.get("/raise/dependency").body)["request_id"]


def test_retry_after_and_www_authenticate_headers() -> None:
    with Client(build_app()) as client:
        assert client.http.get("/raise/busy").headers["Retry-After"] == "7"
        assert client.http.get("/raise/token").headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_authentication_failures_are_opaque() -> None:
    assert AuthenticationFailed().message == "Authentication failed."
    assert InvalidToken().body()["message"] == InvalidToken.default_message


def test_unexpected_exception_is_an_opaque_500_logged_without_its_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Client(build_app()) as client:
        response = client.http.get("/crash")
    body = json.loads(response.body)
    assert response.status_code == 500
    assert body["error"] == "internal_error"
    assert body["message"] == "An internal error occurred."
    assert len(body["request_id"]) >= 32
    assert CANARY not in response.body.decode()
    (record,) = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    line = json.loads(logger.registered_formatter.format(record))  # exactly what would ship to CloudWatch
    assert line["error_type"] == "ValueError"
    assert line["request_id"] == body["request_id"]
    assert any("in crash" in frame for frame in line["where"])
    assert CANARY not in json.dumps(line)
    assert all(CANARY not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"", 400, "bad_request"),
        (b"{not json", 400, "bad_request"),
        (b"[1, 2]", 400, "bad_request"),
        (b'"text"', 400, "bad_request"),
        (b'{"a": "' + b"x" * 100 + b'"}', 413, "payload_too_large"),
        (b"\xff\xfe", 400, "bad_request"),
    ],
)
def test_json_body_rejects_bad_input(raw: bytes, status: int, code: str) -> None:
    with Client(build_app()) as client:
        response = client.http.post("/echo", body=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert json.loads(response.body)["error"] == code


def test_json_body_accepts_an_object() -> None:
    with Client(build_app()) as client:
        response = client.http.post("/echo", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert json.loads(response.body) == {"a": 1}


def test_error_response_shape() -> None:
    response = error_response(NotFound("No such client."), "req-1")
    assert response.status_code == 404
    assert response.body == {"error": "not_found", "message": "No such client.", "request_id": "req-1"}
