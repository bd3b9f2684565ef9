"""Raw HTTP/1.1 over a socket: the bytes written exactly as given (malformed requests included), the whole answer
read back, for tests of how a server answers what no HTTP client library would send."""

from __future__ import annotations

import socket

__all__ = ["raw_exchange"]


def raw_exchange(host: str, port: int, data: bytes, *, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """``data`` written as is; the status, the header fields (lower-case names) and the body, read until the server
    closes the connection (a dropped connection fails here, a hang on ``timeout``)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer, "the connection was dropped without an answer"
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), fields, body
