"""A test OIDC identity provider: its own signing key, tokens it signs, and (optionally) its discovery document
and JWKS served over HTTP on a loopback port, as AWS STS would fetch them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from joserfc.util import urlsafe_b64encode

__all__ = ["TestIdp", "served", "unsigned"]


class TestIdp:
    """An issuer with one RSA (RS256) and one EC (ES256) key; ``jwks`` is what it publishes."""

    __test__ = False  # not a pytest test class

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"})
        self.hits = 0  # how many documents were served over HTTP

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.rsa.as_dict(private=False), self.ec.as_dict(private=False)]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "workload-1", "aud": "sts.amazonaws.com", "iat": now, "exp": now + 300}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}  # None drops a claim

    def token(self, *, alg: str = "RS256", kid: str | None = None, key: Any = None, **claims: Any) -> str:
        """A token it signs (``key`` another key to forge one; ``kid`` another kid in the header)."""
        own = self.rsa if alg.startswith("RS") else self.ec
        header = {"alg": alg, "typ": "JWT", "kid": kid or str(own.kid)}
        payload = json.dumps(self.claims(**claims)).encode()
        return jws.serialize_compact(header, payload, key or own, algorithms=[alg])


def unsigned(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """A compact JWS with an empty signature (``alg: none`` and friends)."""
    parts = (urlsafe_b64encode(json.dumps(dict(part)).encode()).decode() for part in (header, claims))
    return ".".join(parts) + "."


@contextmanager
def served(*, documents: dict[str, Any] | None = None) -> Iterator[tuple[TestIdp, ThreadingHTTPServer]]:
    """A TestIdp whose issuer is ``http://127.0.0.1:<port>``, serving discovery and JWKS there. ``documents``
    overrides paths, read at each request (a value of ``(status, body_bytes)`` answers that raw)."""
    holder: dict[str, TestIdp] = {}
    overrides = documents if documents is not None else {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            idp = holder["idp"]
            idp.hits += 1
            answers: dict[str, Any] = {
                "/.well-known/openid-configuration": {"issuer": idp.issuer, "jwks_uri": f"{idp.issuer}/jwks.json"},
                "/jwks.json": idp.jwks,
                **overrides,
            }
            answer = answers.get(self.path)
            status, body = (200, json.dumps(answer).encode()) if not isinstance(answer, tuple) else answer
            if answer is None:
                status, body = 404, b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status in (301, 302):
                self.send_header("Location", body.decode())
                body = b""
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    holder["idp"] = TestIdp(f"http://{host!s}:{port}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder["idp"], server
    finally:
        server.shutdown()
        server.server_close()
