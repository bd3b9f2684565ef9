"""What http.server answers itself is answered as API Gateway answers, over a real socket: a bad HTTP version, an
over-long request line or field, too many fields, a method no route has, a field line without a colon, a request
no route matches. Before, each was a dropped connection (log_request read a path never parsed), http.server's HTML
page, a 500 (an unrouted request's non-ASCII Authorization), or a header block cut short silently (a line without
a colon ended it, so the ``Connection: close`` after it was lost and the socket hung)."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from chalice.app import Chalice

from local import gateway
from local.gateway_http import malformed_header_block, request_line_status
from tests.support import raw_http

HOST = b"Host: x\r\n"


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    app = Chalice("strict-http")

    @app.route("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.route("/slow")
    def slow() -> dict[str, str]:  # answers after its caller has gone (test_a_client_that_went_away_...)
        time.sleep(0.3)
        return {"padding": "x" * 256 * 1024}

    server = gateway.ApiServer(
        gateway.make_thread_safe(app),
        host="127.0.0.1",
        port=0,
        credentials=None,  # type: ignore[arg-type]  # no IAM route here
        account_id="1",
        region="us-east-1",
        quiet=True,
    )
    server.start()
    yield server.port
    server.stop()


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """The whole answer to ``data`` (read until the gateway closes the connection; a hang fails on the timeout)."""
    return raw_http.raw_exchange("127.0.0.1", port, data, timeout=5)


def refused(port: int, data: bytes, status: int, message: str, error_type: str | None = None) -> None:
    code, fields, body = exchange(port, data)
    assert (code, fields["content-type"], json.loads(body)) == (status, "application/json", {"message": message})
    assert fields["x-amzn-requestid"]
    assert fields.get("x-amzn-errortype") == error_type


@pytest.mark.parametrize(
    ("request_line", "status", "message"),
    [
        pytest.param(b"GET /health HTTP/9.9", 505, "HTTP Version Not Supported", id="http-9.9"),
        pytest.param(b"GET /health HTTP/2.0", 505, "HTTP Version Not Supported", id="http-2.0"),
        pytest.param(b"GET /health HTTP/0.9", 505, "HTTP Version Not Supported", id="http-0.9-with-version"),
        pytest.param(b"GET /health", 400, "Bad Request", id="http-0.9-two-words"),
        pytest.param(b"GET /health HTTP/1.10", 400, "Bad Request", id="two-digit-minor"),
        pytest.param(b"GET /health HTTX/1.1", 400, "Bad Request", id="not-http"),
        pytest.param(b"GET / x HTTP/1.1", 400, "Bad Request", id="four-words"),
        pytest.param(b"GET\xa0/health HTTP/1.1", 400, "Bad Request", id="no-break-space-separator"),
        pytest.param(b"GET  /health HTTP/1.1", 400, "Bad Request", id="double-space"),
        pytest.param(b"FOO\x01 /health HTTP/1.1", 400, "Bad Request", id="control-character-in-method"),
        pytest.param(b"", 400, "Bad Request", id="empty-line"),
        pytest.param(b"GET /" + b"a" * 70000 + b" HTTP/1.1", 414, "Request-URI Too Long", id="path-over-64KiB"),
    ],
)
def test_a_malformed_request_line_is_a_json_refusal(port: int, request_line: bytes, status: int, message: str) -> None:
    refused(port, request_line + b"\r\n" + HOST + b"\r\n", status, message)


@pytest.mark.parametrize("method", [b"TRACE", b"CONNECT", b"FOO", b"PROPFIND"])
def test_a_method_no_route_has_is_missing_authentication_token(port: int, method: bytes) -> None:
    target = b"x:443" if method == b"CONNECT" else b"/health"
    data = method + b" " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n"
    refused(port, data, 403, "Missing Authentication Token", "MissingAuthenticationTokenException")


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"Bogus", id="no-colon"),
        pytest.param(b"Bogus : x", id="space-before-colon"),
        pytest.param(b"From someone", id="mbox-from-line"),
    ],
)
def test_a_header_line_that_is_not_a_field_is_400_and_closes(port: int, line: bytes) -> None:
    # Without the refusal the fields after the line were dropped: Connection: close lost, the socket kept open.
    data = b"GET /health HTTP/1.1\r\n" + (line + b"\r\n" + HOST if line.startswith(b"From") else HOST + line + b"\r\n")
    refused(port, data + b"Connection: close\r\n\r\n", 400, "Bad Request")


def test_a_leading_continuation_line_is_400(port: int) -> None:
    refused(port, b"GET /health HTTP/1.1\r\n folded\r\n" + HOST + b"Connection: close\r\n\r\n", 400, "Bad Request")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(b"X: " + b"a" * 70000 + b"\r\n", id="field-over-64KiB"),
        pytest.param(b"".join(b"X%d: y\r\n" % i for i in range(120)), id="120-fields"),
    ],
)
def test_http_servers_field_limits_are_json_431(port: int, fields: bytes) -> None:
    data = b"GET /health HTTP/1.1\r\n" + HOST + fields + b"Connection: close\r\n\r\n"
    refused(port, data, 431, "Request Header Fields Too Large")


@pytest.mark.parametrize(
    ("authorization", "error_type"),
    [
        pytest.param(None, "MissingAuthenticationTokenException", id="no-authorization"),
        pytest.param(b'\xff"x', "IncompleteSignatureException", id="latin-1-and-quote"),
    ],
)
def test_an_unrouted_request_is_403_json_whatever_its_authorization(
    port: int, authorization: bytes | None, error_type: str
) -> None:
    auth = b"Authorization: " + authorization + b"\r\n" if authorization is not None else b""
    code, fields, body = exchange(port, b"GET /nope HTTP/1.1\r\n" + HOST + auth + b"Connection: close\r\n\r\n")
    assert (code, fields["x-amzn-errortype"]) == (403, error_type)
    message = json.loads(body)["message"]
    assert message == "Missing Authentication Token" if authorization is None else message.endswith('\xff"x')


def test_a_well_formed_request_is_still_served_and_kept_alive(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\n" + HOST + b"\r\nGET /health HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 200 OK") == 2, answer


def test_a_client_that_went_away_is_no_error_and_the_gateway_serves_on(
    port: int, capfd: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /slow HTTP/1.1\r\n" + HOST + b"\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        sock.close()
    time.sleep(1.0)  # the three answers meet a reset connection
    assert exchange(port, b"GET /health HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("line", "status"),
    [("GET / HTTP/1.1", None), ("GET / HTTP/1.0", None), ("GET / HTTP/3.0", 505), ("GET\t/ HTTP/1.1", 400)],
)
def test_request_line_status(line: str, status: int | None) -> None:
    assert request_line_status(line) == status


def test_malformed_header_block_reads_the_parsers_defects() -> None:
    import http.client
    import io

    def parsed(block: bytes) -> http.client.HTTPMessage:
        return http.client.parse_headers(io.BytesIO(block + b"\r\n"))

    assert not malformed_header_block(parsed(b"Host: x\r\nA: b\r\n"))
    # A MIME defect of the body's type (no boundary) is not a defect of the header block: the app answers it.
    assert not malformed_header_block(parsed(b"Host: x\r\nContent-Type: multipart/form-data\r\n"))
    assert malformed_header_block(parsed(b"Host: x\r\nnocolon\r\nA: b\r\n"))
