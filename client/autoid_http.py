"""The HTTP side of ``credport autoid serve``: who is answered, and what any local process can make it spend.

Loopback is not a trust boundary: every local process (and, through DNS rebinding, a web page in a local browser)
can connect. So the server answers only a request whose ``Host`` names a loopback address or ``localhost`` (a
rebound name is refused before the token is even looked at), holds at most ``MAX_CONNECTIONS`` connections
(one more is closed at once with a 503), gives each ``SOCKET_TIMEOUT`` seconds per read and
``CONNECTION_SECONDS`` in all (a client sending a byte now and then is cut off), reads at most
``MAX_HEAD_BYTES`` of request line and headers, and logs what a request said only as one escaped line.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import io
import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from client.errors import one_line

__all__ = [
    "CONNECTION_SECONDS",
    "MAX_CONNECTIONS",
    "MAX_HEAD_BYTES",
    "PATH",
    "SOCKET_TIMEOUT",
    "ServeError",
    "handler_for",
    "server_for",
]

PATH = "/v1/credentials"
MAX_CONNECTIONS = 32  # an SDK makes one request at a time per process; more than this at once is not an SDK
SOCKET_TIMEOUT = 10.0  # per read or write; botocore gives up after 2 s
CONNECTION_SECONDS = 30.0  # in all, refresh included (its request times out after 10 s)
MAX_HEAD_BYTES = 16 * 1024  # request line and headers; an SDK's are a few hundred bytes
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class ServeError(Exception):
    """An answer other than credentials: its HTTP status and stable error code; the message holds no secret."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class _BoundedHead:
    """The request's input, of which the request line and headers may use ``MAX_HEAD_BYTES`` in all; past that,
    http.server answers 431 (it turns the HTTPException raised here into one)."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self._raw, self.left = raw, MAX_HEAD_BYTES

    def readline(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise http.client.HTTPException(f"request line and headers over {MAX_HEAD_BYTES} bytes")
        line = self._raw.readline(self.left if size < 0 else min(size, self.left))
        self.left -= len(line)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def loopback_name(host: str | None, port: int) -> bool:
    """Whether a ``Host`` header names this server by a loopback address or ``localhost`` (and its port, if any)."""
    if host is None:
        return True  # HTTP/1.0 without Host: not a browser, which always sends one
    given: str | None = None
    if host.startswith("["):  # [::1]:port
        name, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                return False
            given = rest[1:]
    elif host.count(":") == 1:
        name, given = host.split(":")
    elif ":" in host:  # a bare IPv6 address is no valid Host
        return False
    else:
        name = host
    if given is not None and given != str(port):
        return False
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def handler_for(current: Callable[[], dict[str, Any]], token: str) -> type[BaseHTTPRequestHandler]:
    """Answers ``GET PATH`` with ``current()`` to a loopback-named request that presents ``token``."""
    expected = token.encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "credport-autoid"
        sys_version = ""
        timeout = SOCKET_TIMEOUT

        def setup(self) -> None:
            super().setup()
            self.rfile = _BoundedHead(self.rfile)  # type: ignore[assignment]

        def do_GET(self) -> None:
            self._answer(allowed=True)

        def do_POST(self) -> None:
            self._answer(allowed=False)

        do_PUT = do_DELETE = do_PATCH = do_HEAD = do_POST

        def _answer(self, *, allowed: bool) -> None:
            hosts: list[str] = self.headers.get_all("Host") or []
            port = int(getattr(self.server, "server_port", 0))
            if len(hosts) > 1 or not loopback_name(hosts[0] if hosts else None, port):
                return self._send(403, {"error": "bad_host", "message": "the Host header must name a loopback address"})
            presented = self.headers.get("Authorization")
            if presented is None:
                return self._send(401, {"error": "unauthorized", "message": "the Authorization header is missing"})
            if not hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected):
                return self._send(403, {"error": "forbidden", "message": "the Authorization token is wrong"})
            if self.path.split("?", 1)[0] != PATH:
                return self._send(404, {"error": "not_found", "message": f"credentials are served at {PATH}"})
            if not allowed:
                return self._send(405, {"error": "method_not_allowed", "message": "only GET is served"})
            try:
                return self._send(200, current())
            except ServeError as error:
                return self._send(error.status, {"error": error.code, "message": str(error)})

        def _send(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # http.server's own lines quote the raw request line; log_request below says what matters

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if str(code) != "200":  # what the request said is anybody's text: one escaped line, no query
                said = f"{self.command or '-'} {str(getattr(self, 'path', '') or '-').split('?', 1)[0]}"
                print(f"credport: serve: {one_line(said)} -> {code}", file=sys.stderr, flush=True)

    return Handler


def server_for(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True
        slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

        def process_request(self, request: Any, client_address: Any) -> None:
            if not self.slots.acquire(blocking=False):
                with contextlib.suppress(OSError):
                    request.setblocking(False)
                    request.send(_BUSY)
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                self.slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            cutoff = threading.Timer(CONNECTION_SECONDS, _cut, (request,))
            cutoff.daemon = True
            cutoff.start()
            try:
                super().process_request_thread(request, client_address)
            finally:
                cutoff.cancel()
                self.slots.release()

        def handle_error(self, request: Any, client_address: Any) -> None:
            error = sys.exc_info()[1]  # a client gone or cut off: one line, never socketserver's traceback
            print(f"credport: serve: connection ended ({type(error).__name__})", file=sys.stderr, flush=True)

    return Server((host, port), handler)


def _cut(request: socket.socket) -> None:
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)  # wakes the handler's blocked read with end-of-file
