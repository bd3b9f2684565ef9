"""Workload side of sessions: start one with your AWS identity, keep the token in a 0600 file, refresh it
before it expires."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import requests

from client.aws_call import CallError, signed_request
from client.private_file import write_private_json

__all__ = ["DEFAULT_TOKEN_FILE", "SessionClient", "read_session", "write_session"]

DEFAULT_TOKEN_FILE = Path(os.environ.get("CREDPORT_SESSION_FILE", Path.home() / ".credport" / "session.json"))
REFRESH_AHEAD = 60  # seconds before expiry at which a token is refreshed


def write_session(path: Path, session: dict[str, Any]) -> None:
    """Atomically replace the session file; it is 0600 from its first byte (a token is a credential)."""
    write_private_json(path, session, prefix=".session-")


def read_session(path: Path) -> dict[str, Any]:
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} is readable by others; it must be 0600")
    session: dict[str, Any] = json.loads(path.read_text())
    return session


class SessionClient:
    def __init__(self, endpoint: str, token_file: Path = DEFAULT_TOKEN_FILE, *, timeout: float = 10) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token_file = token_file
        self.timeout = timeout

    def start(self, *, profile: str | None = None, region: str | None = None) -> dict[str, Any]:
        session: dict[str, Any] = signed_request(
            "POST", self.endpoint, "/session", profile=profile, region=region, timeout=self.timeout
        )
        return self._store(session)

    def refresh(self) -> dict[str, Any]:
        current = read_session(self.token_file)
        return self._store(self._bearer("POST", "/session/refresh", current["token"]))

    def show(self) -> dict[str, Any]:
        return self._bearer("GET", "/session", read_session(self.token_file)["token"])

    def token(self) -> str:
        """A token good for at least a minute more, refreshed first when needed."""
        session = read_session(self.token_file)
        if session["obtained_at"] + session["expires_in"] - REFRESH_AHEAD <= time.time():
            session = self.refresh()
        return str(session["token"])

    def _bearer(self, method: str, path: str, token: str) -> dict[str, Any]:
        response = requests.request(
            method, self.endpoint + path, headers={"Authorization": f"Bearer {token}"}, timeout=self.timeout
        )
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            raise CallError(response.status_code, body)
        result: dict[str, Any] = body
        return result

    def _store(self, session: dict[str, Any]) -> dict[str, Any]:
        session = {**session, "obtained_at": int(time.time())}
        write_session(self.token_file, session)
        return session
