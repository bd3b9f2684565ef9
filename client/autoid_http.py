"""The HTTP side of ``credport autoid serve``: who is answered, and what any local process can make it spend.

Loopback is not a trust boundary: every local process (and, through DNS rebinding, a web page in a local browser)
can connect. So the server answers only a request whose ``Host`` names a loopback address or ``localhost`` (a
rebound name is refused before the token is even looked at), reads at most ``MAX_HEAD_BYTES`` of request line and
headers, and logs what a request said only as one escaped line. Its threads are capped: at most
``MAX_CONNECTIONS`` connections are open at once. A connection that holds one without saying anything must not keep
out an SDK holding the token (which sends its request at once and is answered from the cache in microseconds): so
a connection has ``HEAD_SECONDS`` to send its request line and headers, and a newcomer finding every slot taken
closes the oldest connection still short of its headers; only when all are requests being answered does it wait
``BUSY_SECONDS`` for one to end, then get a 503. ``SOCKET_TIMEOUT`` bounds each read or write and
``CONNECTION_SECONDS`` a connection in all.
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from client.errors import one_line

__all__ = [
    "BUSY_SECONDS",
    "CONNECTION_SECONDS",
    "HEAD_SECONDS",
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
HEAD_SECONDS = 2.0  # to send request line and headers: an SDK sends them at once, and gives up after 2 s itself
BUSY_SECONDS = 0.5  # a newcomer's wait for a slot when every one holds a request being answered
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

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            # The headers are complete: from now on this connection is neither evicted nor under HEAD_SECONDS
            # (unless that already happened, and then it is not answered either).
            return not isinstance(self.server, _Server) or self.server.headed(self.request)

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
    class Server(_Server):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server((host, port), handler)


@dataclass
class _Connection:
    accepted: float  # time.monotonic()
    headed: bool = False  # its request line and headers have been read
    cut: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits in the kernel's queue rather than its SYNs being dropped

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)  # one per handling thread: the cap on threads
        self._lock = threading.Lock()
        self._open: dict[socket.socket, _Connection] = {}  # in the order accepted: the first is the oldest
        self._closing = threading.Event()
        super().__init__(address, handler)
        threading.Thread(target=self._reap, name="credport-serve-deadlines", daemon=True).start()

    def headed(self, request: socket.socket) -> bool:
        """Record that ``request`` has sent its headers; False if it was cut first (then it is not answered)."""
        with self._lock:
            connection = self._open.get(request)
            if connection is None or connection.cut:
                return False
            connection.headed = True
            return True

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._evict_oldest_unheaded()  # its thread ends at once and gives its slot back
            if not self._slots.acquire(timeout=BUSY_SECONDS):
                with contextlib.suppress(OSError):
                    request.setblocking(False)
                    request.send(_BUSY)
                self.shutdown_request(request)
                return
        with self._lock:
            self._open[request] = _Connection(time.monotonic())
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]  # a client gone or cut off: one line, never socketserver's traceback
        print(f"credport: serve: connection ended ({type(error).__name__})", file=sys.stderr, flush=True)

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()

    def _forget(self, request: socket.socket) -> None:
        with self._lock:
            del self._open[request]
        self._slots.release()

    def _evict_oldest_unheaded(self) -> None:
        with self._lock:
            for request, connection in self._open.items():
                if not connection.headed and not connection.cut:
                    connection.cut = True
                    _cut(request)
                    return

    def _reap(self) -> None:
        """Cut a connection still short of its headers after HEAD_SECONDS, and any after CONNECTION_SECONDS."""
        while not self._closing.wait(0.1):
            now = time.monotonic()
            with self._lock:
                for request, connection in self._open.items():
                    limit = CONNECTION_SECONDS if connection.headed else min(HEAD_SECONDS, CONNECTION_SECONDS)
                    if not connection.cut and now - connection.accepted > limit:
                        connection.cut = True
                        _cut(request)


def _cut(request: socket.socket) -> None:
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)  # wakes the handler's blocked read with end-of-file
