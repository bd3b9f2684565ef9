"""Every HTTP call the CLIs make: bounded in size and in time, and never redirected.

A server's answer is untrusted: one that sends 10 GB would otherwise fill the memory, one that sends a byte a second
would hold the command forever (requests' ``timeout`` bounds each socket read, not the call), and one that
redirects would receive a signed request (its ``X-Amz-Security-Token``, its signature) at a host of its choosing.
:func:`bounded_request` is the one way the client sends a request: the body is read in chunks up to ``max_bytes``
(a larger ``Content-Length`` is refused before reading), a watchdog shuts the connection down when the whole call
(connect, TLS, headers, body) outlives ``deadline``, and a 3xx is an error naming where it pointed, never followed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from client.errors import CliError, Exit
from client.failures import safe_url

__all__ = [
    "DEADLINE",
    "MAX_JSON_BYTES",
    "AnswerTooLarge",
    "DeadlineExceeded",
    "bounded_request",
    "check_url",
    "redirect_host",
]

MAX_JSON_BYTES = 1024 * 1024  # a credport JSON answer is a few KiB; a JWKS of many keys stays far below this
DEADLINE = 60.0  # seconds for a whole call; read at call time, so a test may lower it
_CHUNK = 16 * 1024  # small reads: a compressed body is decoded a chunk at a time, never a bomb at once


class AnswerTooLarge(CliError):
    """The server sent more than the call allows: not the answer asked for (another server, or a hostile one)."""

    exit_code = Exit.UNAVAILABLE


class DeadlineExceeded(CliError):
    """The whole call took longer than its deadline (a server answering a byte at a time, say)."""

    exit_code = Exit.UNAVAILABLE


class _Watchdog:
    """Shuts down every socket of one call once ``seconds`` have passed: a blocked read then returns at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self._expired
        if expired:
            _cut(sock)

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired

    def stop(self) -> bool:
        """Stop watching; whether the deadline had passed (then what was read may be cut short)."""
        self._timer.cancel()
        with self._lock:
            return self._expired

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _cut(sock)


def _cut(sock: socket.socket) -> None:
    # The TCP connection itself, under any TLS layer (socket.socket's method, not SSLSocket's): another thread's
    # recv() returns at once; the socket is closed by its owner.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections report their socket to the call's watchdog as soon as it exists (before
    any TLS handshake or proxy tunnel, which a slow server could stretch as well)."""

    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__(max_retries=0)
        self._watchdog = watchdog

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
        pool: Any = super().get_connection_with_tls_context(*args, **kwargs)
        if getattr(pool.ConnectionCls, "watchdog", None) is not self._watchdog:
            pool.ConnectionCls = _watched(pool.ConnectionCls, self._watchdog)
        return pool


def _watched(base: Any, watchdog: _Watchdog) -> Any:
    class Watched(base):
        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()
            watchdog.watch(sock)
            return sock

    Watched.watchdog = watchdog
    return Watched


def check_url(url: str, name: str) -> str:
    """``url`` if it is an http(s) URL a request can be sent to; else a usage error naming ``name`` (the option, or
    the environment variable it came from) and why, never the URL's user info or query."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError: not a number, or outside 0-65535
        host = parts.hostname
        why = (
            "it is not http:// or https://" if parts.scheme not in ("http", "https")
            else "it names no host" if not host
            else "its port is not 1-65535" if port == 0
            else "it holds a space or a control character" if any(c.isspace() or ord(c) < 32 for c in url)
            else _bad_host(host)
        )  # fmt: skip
    except ValueError as error:
        why = f"it does not parse: {error}"
    if why:
        raise CliError(f"{name} must be an http(s) URL, got {safe_url(url)!r}: {why}", Exit.USAGE)
    return url


def _bad_host(host: str) -> str:
    """Why ``host`` cannot be looked up (RFC 1035: labels of 1-63 octets, 253 in all), or ''."""
    if ":" in host:  # an IPv6 literal: urlsplit checked its brackets
        return ""
    try:
        encoded = host.encode("idna")
    except UnicodeError:
        return "its host name is not a valid name (a label longer than 63 characters?)"
    labels = encoded.rstrip(b".").split(b".")
    if len(encoded) > 253 or any(not 1 <= len(label) <= 63 for label in labels):
        return "its host name is not a valid name (labels of 1-63 characters, 253 in all)"
    return ""


def redirect_host(url: str, location: str) -> str:
    """The host a redirect points at (no user info, path or query: those may hold a credential)."""
    parts = urlsplit(urljoin(url, location))
    host = parts.hostname or "?"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{parts.port}" if parts.port else shown


def bounded_request(
    method: str,
    url: str,
    *,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    json: Any = None,
    timeout: float = 10,
    deadline: float | None = None,
    hint: str | None = None,
) -> requests.Response:
    """The answer to one request, its body read (``response.content``, at most ``max_bytes``); raises
    :class:`AnswerTooLarge`, :class:`DeadlineExceeded`, a :class:`client.aws_call.CallError` for a redirect (exit 4,
    ``hint`` saying what to check), or requests' own errors (described by client/failures.py)."""
    from client.aws_call import CallError

    check_url(url, "the URL")
    seconds = DEADLINE if deadline is None else deadline
    called = f"{method} {safe_url(url)}"
    started = time.monotonic()
    if not _resolved_within(urlsplit(url).hostname or "", seconds):
        raise DeadlineExceeded(f"{called} timed out after {seconds:g} s (resolving its host name): retry later")
    watchdog = _Watchdog(max(seconds - (time.monotonic() - started), 0.001))
    session = requests.Session()
    adapter = _WatchedAdapter(watchdog)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    sent = {"Accept-Encoding": "identity", **(headers or {})}
    watchdog.start()
    response: requests.Response | None = None
    try:
        response = session.request(
            method, url, headers=sent, data=data, json=json, timeout=min(timeout, seconds), stream=True,
            allow_redirects=False,
        )  # fmt: skip
        if 300 <= response.status_code < 400:
            response._content = b""  # never read: it is not the answer, wherever it points
            location = response.headers.get("Location")
            raise CallError.of(response, "", hint=hint, location=redirect_host(url, location) if location else "?")
        response._content = _read(response, max_bytes, called, watchdog)
    except (requests.RequestException, OSError):
        if watchdog.stop():
            raise DeadlineExceeded(f"{called} timed out after {seconds:g} s: retry later") from None
        raise
    finally:
        watchdog.stop()  # always: a timer left running would cut nothing, but holds a thread for its seconds
        if response is not None:
            response.close()
        session.close()
    if watchdog.stop():  # a body without a length ends when the connection does: cut short, not complete
        raise DeadlineExceeded(f"{called} timed out after {seconds:g} s: retry later")
    return response


def _resolved_within(host: str, seconds: float) -> bool:
    """Whether ``host``'s name lookup ended (found or not) within ``seconds``. getaddrinfo runs before any socket
    exists, out of the watchdog's reach, and a dead resolver holds it for minutes (resolv.conf's timeout x attempts);
    so it runs first on a thread the call can stop waiting for. The connection's own lookup then finds it fresh in
    the resolver's answer, or fails as requests describes."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host.strip("[]"))
        return True  # an address: nothing to look up
    done = threading.Event()

    def lookup() -> None:
        with contextlib.suppress(OSError, UnicodeError):
            socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        done.set()

    threading.Thread(target=lookup, name="resolve", daemon=True).start()
    return done.wait(seconds)


def _read(response: requests.Response, max_bytes: int, called: str, watchdog: _Watchdog) -> bytes:
    too_large = AnswerTooLarge(f"{called}: the answer exceeded {max_bytes} bytes: is the URL right?")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_content(_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise too_large
        if watchdog.expired:
            break
        chunks.append(chunk)
    return b"".join(chunks)
