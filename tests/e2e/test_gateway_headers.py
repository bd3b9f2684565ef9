"""Every request gets an answer from the local gateway, over a raw socket: a malformed or overflowing X-Amz-Date,
X-Amz-Expires, Date, Content-Length or Authorization (Unicode digits, far-future years, huge numbers, repeats) is a
well-formed 400/413 (Content-Length, RFC 9112 section 6.3) or API Gateway's 403 signature refusal, never a 5xx and
never a dropped connection. Header bytes are sent as they are: HTTP reads them as Latin-1, so UTF-8 digits arrive as
other characters, while a percent-encoded query parameter arrives as the Unicode digit itself."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest

from tests.e2e.conftest import RunningStack
from tests.support import raw_http

pytestmark = pytest.mark.e2e
REGION = "us-east-1"
ISO_BASIC = "Date must be in ISO-8601 'basic format'"
ARABIC_3 = "\u0663".encode()  # UTF-8 bytes: Latin-1 "\u00d9\u00a3" on arrival


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json", self.headers
        return json.loads(self.body)


def send(stack: RunningStack, method: str, target: str, fields: list[tuple[str, bytes]], body: bytes = b"") -> Answer:
    """One request, its fields written byte for byte; the answer parsed from the socket (a dropped connection
    raises here)."""
    authority = urlsplit(stack.api).netloc
    head = f"{method} {target} HTTP/1.1\r\n".encode() + b"".join(
        name.encode() + b": " + value + b"\r\n" for name, value in [("Host", authority.encode()), *fields]
    )
    parts = urlsplit(stack.api)
    with socket.create_connection((str(parts.hostname), int(parts.port or 80)), timeout=10) as sock:
        sock.sendall(head + b"Connection: close\r\n\r\n" + body)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return Answer(response)


def signed_fields(stack: RunningStack, target: str = "/whoami") -> list[tuple[str, bytes]]:
    request = AWSRequest(method="GET", url=stack.api + target)
    SigV4Auth(stack.credentials(), "execute-api", REGION).add_auth(request)
    return [(name, value.encode("latin-1")) for name, value in request.headers.items()]


def replaced(fields: list[tuple[str, bytes]], name: str, *values: bytes) -> list[tuple[str, bytes]]:
    return [(n, v) for n, v in fields if n.lower() != name.lower()] + [(name, v) for v in values]


def refused_403(answer: Answer, error_type: str, message: str) -> None:
    """API Gateway's refusal of a signature: 403, its error type, ``{"message": \u2026}``."""
    assert answer.status == 403, answer.body
    assert answer.headers["x-amzn-ErrorType"] == error_type
    assert answer.headers["x-amzn-RequestId"]
    assert message in answer.json()["message"]


def test_the_genuine_signed_request_is_served(stack: RunningStack) -> None:
    """The control: each case below changes one field of this request."""
    answer = send(stack, "GET", "/whoami", signed_fields(stack))
    assert answer.status == 200, answer.body


@pytest.mark.parametrize(
    "stamp",
    [
        pytest.param(b"2024-01-15T12:00:00Z", id="extended-format"),
        pytest.param(b"\xb2\xb3\xb9\xb20115T120000Z", id="latin-1-superscripts"),
        pytest.param(ARABIC_3 * 8 + b"T120000Z", id="utf-8-arabic-indic"),
        pytest.param(b"00000115T120000Z", id="year-zero"),
        pytest.param(b"9" * 5000, id="5000-digits"),
        pytest.param(b"\xa020240115T120000Z", id="no-break-space"),
    ],
)
def test_a_malformed_x_amz_date_is_403_incomplete_signature(stack: RunningStack, stamp: bytes) -> None:
    answer = send(stack, "GET", "/whoami", replaced(signed_fields(stack), "X-Amz-Date", stamp))
    refused_403(answer, "IncompleteSignatureException", ISO_BASIC)


def test_a_repeated_x_amz_date_is_403_not_one_copy_picked(stack: RunningStack) -> None:
    fields = signed_fields(stack)
    stamp = dict(fields)["X-Amz-Date"]
    refused_403(
        send(stack, "GET", "/whoami", replaced(fields, "X-Amz-Date", stamp, stamp)),
        "IncompleteSignatureException",
        ISO_BASIC,
    )


def test_a_far_future_x_amz_date_is_403_by_the_clock(stack: RunningStack) -> None:
    fields = signed_fields(stack)
    scope_day = dict(fields)["X-Amz-Date"][:8]
    auth = dict(fields)["Authorization"].replace(b"/" + scope_day + b"/", b"/99991231/")
    fields = replaced(replaced(fields, "X-Amz-Date", b"99991231T235959Z"), "Authorization", auth)
    refused_403(send(stack, "GET", "/whoami", fields), "InvalidSignatureException", "Signature not yet current")


@pytest.mark.parametrize(
    ("date", "message"),
    [
        pytest.param(b"Mon, 01 Jan 0001 00:00:00 +0100", ISO_BASIC, id="year-1-east-of-utc"),
        pytest.param(b"Mon, 15 Jan 99999999999999999999 12:00:00 GMT", ISO_BASIC, id="huge-year"),
        pytest.param(b"Mon, 15 Jan " + ARABIC_3 * 4 + b" 12:00:00 GMT", ISO_BASIC, id="utf-8-arabic-indic"),
        pytest.param(b"Fri, 31 Dec 9999 23:59:59 GMT", "Credential should be scoped", id="year-9999"),
    ],
)
def test_a_malformed_date_header_is_403(stack: RunningStack, date: bytes, message: str) -> None:
    fields = replaced(replaced(signed_fields(stack), "X-Amz-Date"), "Date", date)
    answer = send(stack, "GET", "/whoami", fields)
    assert answer.status == 403, answer.body
    assert message in answer.json()["message"]


def presigned_target(stack: RunningStack, expires: int = 300) -> str:
    request = AWSRequest(method="GET", url=stack.api + "/whoami")
    SigV4QueryAuth(stack.credentials(), "execute-api", REGION, expires=expires).add_auth(request)
    parts = urlsplit(request.url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        pytest.param("\u0663\u0660\u0660", "X-Amz-Expires should be a number", id="arabic-indic"),
        pytest.param("\u00b3\u2070\u2070", "X-Amz-Expires should be a number", id="superscripts"),
        pytest.param("-1", "X-Amz-Expires should be a number", id="negative"),
        pytest.param("+300", "X-Amz-Expires should be a number", id="leading-plus"),
        pytest.param("9" * 5000, "X-Amz-Expires must be from 1 to 604800.", id="5000-digits"),
    ],
)
def test_a_malformed_x_amz_expires_is_403_incomplete_signature(stack: RunningStack, expires: str, message: str) -> None:
    target = presigned_target(stack).replace("X-Amz-Expires=300", "X-Amz-Expires=" + quote(expires, safe=""))
    refused_403(send(stack, "GET", target, []), "IncompleteSignatureException", message)


@pytest.mark.parametrize("stamp", ["99991231T235959Z", "\u0662\u0660\u0662\u0664\u0660\u0661\u0661\u0665T120000Z"])
def test_a_presigned_far_future_or_unicode_date_is_403(stack: RunningStack, stamp: str) -> None:
    target = presigned_target(stack, expires=604800)
    signed_at = target.split("X-Amz-Date=")[1][:16]
    target = target.replace(signed_at, quote(stamp)).replace(f"%2F{signed_at[:8]}%2F", f"%2F{quote(stamp[:8])}%2F")
    answer = send(stack, "GET", target, [])
    assert answer.status == 403, answer.body
    expected = "Signature not yet current" if stamp.isascii() else ISO_BASIC
    assert expected in answer.json()["message"]


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(lambda a: a.replace(b" ", b"\xa0", 1), id="no-break-space"),
        pytest.param(lambda a: b"\x85" + a, id="leading-next-line"),
        pytest.param(lambda a: a + b", " + a, id="joined-twice"),
        pytest.param(lambda a: a + b", Extra=\xff\xfe", id="unknown-parameter"),
    ],
)
def test_an_authorization_with_odd_bytes_is_403_incomplete_signature(stack: RunningStack, auth: Any) -> None:
    fields = signed_fields(stack)
    fields = replaced(fields, "Authorization", auth(dict(fields)["Authorization"]))
    answer = send(stack, "GET", "/whoami", fields)
    assert answer.status == 403, answer.body
    assert answer.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"


def test_two_authorization_fields_are_403_not_one_picked(stack: RunningStack) -> None:
    fields = signed_fields(stack)
    auth = dict(fields)["Authorization"]
    answer = send(stack, "GET", "/whoami", replaced(fields, "Authorization", auth, auth))
    refused_403(answer, "IncompleteSignatureException", "not a SigV4 parameter")


@pytest.mark.parametrize(
    ("lengths", "status"),
    [
        pytest.param([b"\xb2"], 400, id="latin-1-superscript-two"),
        pytest.param([ARABIC_3], 400, id="utf-8-arabic-indic"),
        pytest.param([b"-1"], 400, id="negative"),
        pytest.param([b"+2"], 400, id="leading-plus"),
        pytest.param([b"1_0"], 400, id="underscore"),
        pytest.param([b"2 2"], 400, id="inner-space"),
        pytest.param([b"2", b"2"], 400, id="given-twice"),
        pytest.param([b"1" + b"0" * 100], 413, id="10**100"),
        pytest.param([b"9" * 5000], 413, id="5000-digits"),
    ],
)
def test_a_bad_content_length_is_400_or_413(stack: RunningStack, lengths: list[bytes], status: int) -> None:
    fields = [("Content-Type", b"application/json"), *(("Content-Length", v) for v in lengths)]
    answer = send(stack, "POST", "/auto-id", fields, b"{}")
    assert answer.status == status, answer.body
    assert answer.json() == {"message": "Bad Request" if status == 400 else "Request Too Long"}
    assert answer.headers["x-amzn-RequestId"]


def test_a_good_content_length_reaches_the_app(stack: RunningStack) -> None:
    """The control of the Content-Length cases: a body of its declared length (OWS around it) is read."""
    fields = [("Content-Type", b"application/json"), ("Content-Length", b" 2\t")]
    answer = send(stack, "GET", "/health", fields, b"{}")
    assert answer.status == 200, answer.body


# --- what http.server and moto's dispatcher answered themselves -----------------------------------------------------


def raw_exchange(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """``data`` written as is; the whole answer, read until the server closes (a dropped connection fails here)."""
    parts = urlsplit(url)
    return raw_http.raw_exchange(str(parts.hostname), int(parts.port or 80), data, timeout=10)


@pytest.mark.parametrize(
    ("request_line", "fields", "status", "message"),
    [
        pytest.param(b"GET /health HTTP/9.9", b"", 505, "HTTP Version Not Supported", id="http-9.9"),
        pytest.param(b"GET /" + b"a" * 70000 + b" HTTP/1.1", b"", 414, "Request-URI Too Long", id="path-over-64KiB"),
        pytest.param(b"FOO\x01 /health HTTP/1.1", b"", 400, "Bad Request", id="control-character-in-method"),
        pytest.param(b"TRACE /health HTTP/1.1", b"", 403, "Missing Authentication Token", id="trace"),
        pytest.param(b"GET /health HTTP/1.1", b"Bogus\r\n", 400, "Bad Request", id="header-line-without-colon"),
        pytest.param(
            b"GET /health HTTP/1.1",
            b"X: " + b"a" * 70000 + b"\r\n",
            431,
            "Request Header Fields Too Large",
            id="field-over-64KiB",
        ),
    ],
)
def test_what_http_server_refuses_is_api_gateways_json(
    stack: RunningStack, request_line: bytes, fields: bytes, status: int, message: str
) -> None:
    host = f"Host: {urlsplit(stack.api).netloc}\r\n".encode()
    data = request_line + b"\r\n" + host + fields + b"Connection: close\r\n\r\n"
    code, headers, body = raw_exchange(stack.api, data)
    assert (code, headers["content-type"], json.loads(body)) == (status, "application/json", {"message": message})
    assert headers["x-amzn-requestid"]


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        pytest.param(b"AWS4-HMAC-SHA256 ,,,", b"<Code>IncompleteSignature</Code>", id="commas"),
        pytest.param(b"AWS4-HMAC-SHA256 Credential=\xff/\xfe", b"<Code>IncompleteSignature</Code>", id="latin-1"),
        pytest.param(b"Bearer", b"<Code>IncompleteSignature</Code>", id="one-word"),
    ],
)
def test_a_malformed_authorization_to_the_embedded_aws_is_a_400_not_a_500(
    stack: RunningStack, authorization: bytes, code: bytes
) -> None:
    aws = str(stack.info["aws_endpoint"])
    host = f"Host: {urlsplit(aws).netloc}\r\n".encode()
    data = b"GET /?Action=GetCallerIdentity HTTP/1.1\r\n" + host + b"Authorization: " + authorization + b"\r\n"
    status, headers, body = raw_exchange(aws, data + b"Connection: close\r\n\r\n")
    assert status == 400, body
    assert "html" not in headers.get("content-type", "")
    assert code in body


def test_a_malformed_authorization_to_the_embedded_s3_is_s3s_xml(stack: RunningStack) -> None:
    aws = str(stack.info["aws_endpoint"])
    host = f"Host: {urlsplit(aws).netloc}\r\n".encode()
    data = b"GET /some-bucket/key HTTP/1.1\r\n" + host + b"Authorization: AWS4-HMAC-SHA256 ,,,\r\n"
    status, _, body = raw_exchange(aws, data + b"Connection: close\r\n\r\n")
    assert (status, b"<Code>AuthorizationHeaderMalformed</Code>" in body) == (400, True), body
