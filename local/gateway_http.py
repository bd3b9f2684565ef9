"""HTTP as the local gateway reads it: what :class:`http.server.BaseHTTPRequestHandler` answers itself (a malformed
request line, an HTTP version other than 1.x, a method no handler has, a request-target over 64 KiB, a header line
over 64 KiB or more than 100 fields) answered as API Gateway answers, JSON ``{"message": ...}`` with an
x-amzn-RequestId, the connection closed after it; never its HTML page, never a dropped connection.

- A request line that is not ``method SP request-target SP HTTP/d.d`` (RFC 9112, section 3: the method a token, the
  target without whitespace or control characters), including HTTP/0.9's two-word line: 400 Bad Request.
  http.server would split it on any Unicode whitespace and answer HTTP/0.9 without a status line.
- A version other than HTTP/1.x: 505 HTTP Version Not Supported.
- A method no route can have (TRACE, CONNECT, anything unknown): API Gateway's answer to a request it does not route,
  403 ``Missing Authentication Token`` (MissingAuthenticationTokenException).
- A header block with a line that is not ``name: value`` (no colon, whitespace before the colon, a leading
  continuation line, an mbox ``From `` line): 400, connection closed (RFC 9112, section 5.1). The email parser
  http.server uses would end the header block there, silently dropping every field after it (Connection: close too).
- A request no route matches (chalice's local gateway answered it with another error type, and with an
  Authorization header it could not encode as ASCII with a 500): 403 Missing Authentication Token
  (MissingAuthenticationTokenException), or with an Authorization header API Gateway's IncompleteSignatureException.
- 414 (request line over 64 KiB) and 431 (a field line over 64 KiB, more than 100 fields) keep their status.
"""

from __future__ import annotations

import json
import re
import uuid
from email import errors
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from chalice.local import LocalGatewayException

__all__ = ["StrictHttp", "malformed_header_block", "request_line_status", "unrouted"]

# The email parser's defects that mean a header line was not a field (email.errors).
_STRUCTURAL_DEFECTS = (errors.MissingHeaderBodySeparatorDefect, errors.FirstHeaderLineIsContinuationDefect)

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"  # noqa: S105 (RFC 9110's token, not a password)
_REQUEST_LINE = re.compile(rf"{_TOKEN} [^\x00-\x20\x7f]+ HTTP/(?P<major>[0-9])\.[0-9]")
_MESSAGES = {
    400: "Bad Request",
    403: "Missing Authentication Token",
    414: "Request-URI Too Long",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
}
_INCOMPLETE = (
    "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. "
    "Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a "
    "'X-Amz-Date' or a 'Date' header. Authorization="
)


def request_line_status(line: str) -> int | None:
    """The status a request line (without its CRLF) is refused with, or ``None`` for a well-formed HTTP/1.x one."""
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        return 400
    return None if match["major"] == "1" else 505


def malformed_header_block(headers: Any) -> bool:
    """Whether the parsed header block (an :class:`http.client.HTTPMessage`) had a line that is not a field: the
    email parser records a defect of the block's structure, keeps an mbox ``From `` line aside, or ends the block
    early (the rest a payload). Defects about a MIME body (a multipart Content-Type without a boundary, say) say
    nothing about the header block: a request carrying one is the app's to answer."""
    structural = any(isinstance(defect, _STRUCTURAL_DEFECTS) for defect in headers.defects)
    return bool(structural or headers.get_unixfrom() or headers.get_payload())


def unrouted(request_id: str, headers: Any) -> LocalGatewayException:
    """API Gateway's answer to a request no route matches (``headers``: the request's, by name as sent)."""
    authorization = next((value for name, value in headers.items() if name.lower() == "authorization"), None)
    error_type, message = "MissingAuthenticationTokenException", "Missing Authentication Token"
    if authorization is not None:
        error_type, message = "IncompleteSignatureException", _INCOMPLETE + authorization
    headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": error_type, "Content-Type": "application/json"}
    answer = LocalGatewayException(headers, json.dumps({"message": message}).encode())
    answer.CODE = 403
    return answer


class StrictHttp(BaseHTTPRequestHandler):
    """The request parsing and the error answers of the module's docstring, for the gateway's handler."""

    raw_requestline: bytes  # set by http.server before it parses the request

    def parse_request(self) -> bool:
        self.command, self.path = None, ""  # type: ignore[assignment]  # as http.server sets it on a failure
        self.request_version = "HTTP/1.1"  # so an answer before the version is read has a status line
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        status = request_line_status(self.requestline)
        if status is not None:
            self.send_error(status)
            return False
        if not super().parse_request():
            return False
        if malformed_header_block(self.headers):
            self.send_error(HTTPStatus.BAD_REQUEST)
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """API Gateway's JSON in place of http.server's HTML page; the connection closed after it."""
        error_type = None
        if code == HTTPStatus.NOT_IMPLEMENTED:  # no do_<METHOD>: no route has the method
            code, error_type = HTTPStatus.FORBIDDEN, "MissingAuthenticationTokenException"
        self.close_connection = True
        body = json.dumps({"message": _MESSAGES.get(code, HTTPStatus(code).phrase)}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Never the query string: presigned requests carry signatures and session tokens there.
        return

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """One line per answer, also for a request that could not be parsed (no method or path then)."""
        path = str(getattr(self, "path", "") or "").partition("?")[0]
        print(f"api  {getattr(self, 'command', None) or '-'} {path[:200] or '-'} -> {code}", flush=True)
