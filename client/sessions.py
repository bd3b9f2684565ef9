"""Workload side of sessions: start one with your AWS identity, keep the token in a 0600 file, refresh it
before it expires."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from client.aws_call import answer, signed_request
from client.errors import CliError, Exit
from client.http import MAX_JSON_BYTES, bounded_request
from client.owned_files import Untrusted, read_regular
from client.private_file import write_private_json

__all__ = ["DEFAULT_TOKEN_FILE", "SessionClient", "SessionFileError", "read_session", "write_session"]

DEFAULT_TOKEN_FILE = Path(os.environ.get("CREDPORT_SESSION_FILE", Path.home() / ".credport" / "session.json"))
REFRESH_AHEAD = 60  # seconds before expiry at which a token is refreshed

MAX_SESSION_FILE_BYTES = 64 * 1024  # a token and a few claims: a few KB


def write_session(path: Path, session: dict[str, Any]) -> None:
    """Atomically replace the session file; it is 0600 from its first byte (a token is a credential)."""
    write_private_json(path, session, prefix=".session-")


class SessionFileError(CliError):
    """The session file is missing, open to others, or not one ``session start`` wrote: start a session."""

    exit_code = Exit.CONFIG


def read_session(path: Path) -> dict[str, Any]:
    """The session ``session start`` saved in ``path``; :class:`SessionFileError` says what to do otherwise."""
    try:
        data, status = read_regular(path, max_bytes=MAX_SESSION_FILE_BYTES)  # never a FIFO's wait, a device's flood
    except FileNotFoundError:
        raise SessionFileError(f"no session yet ({path} does not exist): run credport session start first") from None
    except Untrusted as refused:
        raise SessionFileError(f"{refused.strerror}: pass --token-file with a session file") from None
    except ValueError:  # larger than any session file
        data, status = b"", path.stat()
    if status.st_mode & 0o077:
        raise SessionFileError(f"{path} is readable by others; it must be 0600: chmod 600 {path}")
    try:
        session = json.loads(data)
    except (ValueError, UnicodeDecodeError):  # not JSON, or not text at all
        session = None
    if not isinstance(session, dict) or not isinstance(session.get("token"), str):
        raise SessionFileError(
            f"{path} is not a credport session file: run credport session start to replace it (or pass --token-file)"
        )
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
        obtained, lifetime = session.get("obtained_at"), session.get("expires_in")
        if not (isinstance(obtained, int | float) and isinstance(lifetime, int | float)):
            session = self.refresh()  # a file from an older client: refresh to learn when it expires
        elif obtained + lifetime - REFRESH_AHEAD <= time.time():
            session = self.refresh()
        return str(session["token"])

    def _bearer(self, method: str, path: str, token: str) -> dict[str, Any]:
        response = bounded_request(
            method,
            self.endpoint + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout=self.timeout,
            max_bytes=MAX_JSON_BYTES,
        )
        return answer(response)

    def _store(self, session: dict[str, Any]) -> dict[str, Any]:
        session = {**session, "obtained_at": int(time.time())}
        write_session(self.token_file, session)
        return session
