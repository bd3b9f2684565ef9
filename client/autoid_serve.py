"""``credport autoid serve``: auto-id credentials for unmodified AWS SDKs, as a container credential endpoint.

The SDKs' container provider (botocore's ``ContainerProvider``) reads ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (plain
HTTP only to a loopback address) and sends the content of ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (or of
``AWS_CONTAINER_AUTHORIZATION_TOKEN``) as the ``Authorization`` header; it wants ``{"AccessKeyId",
"SecretAccessKey", "Token", "Expiration"}`` back and treats any other status as a failure (retried three times, two
seconds each). So this server listens on loopback only, answers only a caller holding the token (compared in
constant time), and keeps the credentials until five minutes before they expire, refreshing them ahead of time
on a thread of its own, one refresh at a time, through the same bundle, lock and state directory as ``autoid get``.
What any local process can make the server do (the Host check, connection, time and header limits, the escaped
log) is :mod:`client.autoid_http`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import shlex
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from client.autoid_http import PATH, ServeError, handler_for, server_for

__all__ = ["PATH", "CredentialSource", "ServeError", "container_credentials", "loopback_host", "serve_command"]

REFRESH_MARGIN = timedelta(minutes=5)  # never hand out credentials closer than this to their end
LONG_TERM_LIFETIME = timedelta(hours=1)  # access keys from a secret: the SDK asks again after this (rotated keys)
RETRY_SECONDS = 30.0


def loopback_host(host: str) -> str:
    """The address to bind, if it is a loopback one; ValueError otherwise (the SDKs refuse plain HTTP elsewhere,
    and anyone on the network could then try tokens)."""
    address = "127.0.0.1" if host == "localhost" else host.strip("[]")
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"--host must be a loopback address (127.0.0.1 or ::1), not {host!r}")
    return address


def container_credentials(answer: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The container provider's document. Access keys from a secret carry no session token (``Token`` is then
    empty, which botocore signs without) and usually no expiry: one hour is given, so the SDK asks again."""
    from client.autoid import credential_process

    document = credential_process(answer)
    served = {
        "AccessKeyId": document["AccessKeyId"],
        "SecretAccessKey": document["SecretAccessKey"],
        "Token": document.get("SessionToken", ""),
        "Expiration": document.get("Expiration") or (now + LONG_TERM_LIFETIME).isoformat(),
    }
    role = answer.get("credentials", {}).get("AssumedRoleArn", "")
    if isinstance(role, str) and role.count(":") >= 5 and role.split(":")[4].isdigit():
        served["AccountId"] = role.split(":")[4]
    return served


@dataclass(frozen=True)
class _Cached:
    document: dict[str, Any]
    fetched_at: datetime
    expires_at: datetime


class CredentialSource:
    """Credentials from ``fetch_answer`` (one auto-id answer), cached until ``REFRESH_MARGIN`` before their end."""

    def __init__(self, fetch_answer: Callable[[], dict[str, Any]], clock: Callable[[], datetime] | None = None):
        self._fetch_answer = fetch_answer
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cached: _Cached | None = None
        self._refresh_lock = threading.Lock()  # one refresh at a time; the others wait for its result

    def current(self) -> dict[str, Any]:
        cached = self._cached
        if cached is not None and self._fresh(cached):
            return cached.document
        with self._refresh_lock:
            cached = self._cached
            if cached is not None and self._fresh(cached):
                return cached.document
            try:
                return self._refresh().document
            except ServeError:
                if cached is not None and cached.expires_at - self._clock() > timedelta(minutes=1):
                    return cached.document  # the broker is down, but what we hold is still good for a while
                raise

    def refresh_due(self) -> datetime | None:
        """When the prefetch thread should refresh: halfway through, and ten minutes before the end at the latest."""
        cached = self._cached
        if cached is None:
            return None
        halfway = cached.fetched_at + (cached.expires_at - cached.fetched_at) / 2
        return max(halfway, cached.expires_at - timedelta(minutes=10))

    def refresh(self) -> None:
        with self._refresh_lock:
            self._refresh()

    def _fresh(self, cached: _Cached) -> bool:
        return cached.expires_at - self._clock() > REFRESH_MARGIN

    def _refresh(self) -> _Cached:
        from client.autoid import BundleError
        from client.aws_call import CallError
        from client.http import AnswerTooLarge, DeadlineExceeded

        try:
            answer = self._fetch_answer()
            now = self._clock()
            document = container_credentials(answer, now)
        except (requests.ConnectionError, requests.Timeout, DeadlineExceeded):
            raise ServeError(503, "broker_unreachable", "the credport endpoint could not be reached") from None
        except AnswerTooLarge:
            raise ServeError(502, "broker_error", "the credport endpoint's answer was too large") from None
        except CallError as error:
            raise ServeError(502, "broker_error", f"the credport endpoint answered HTTP {error.status}") from None
        except (BundleError, OSError, KeyError, ValueError) as error:
            raise ServeError(502, "credential_error", f"no credentials: {error}") from None
        try:
            expires_at = datetime.fromisoformat(document["Expiration"])
            expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        except ValueError:
            expires_at = now + REFRESH_MARGIN + timedelta(minutes=5)  # an odd date: keep it five minutes
        self._cached = _Cached(document, now, expires_at)
        return self._cached


def _write_token(path: Path, token: str) -> None:
    """0600 from its first byte, replaced atomically, and no trailing newline (botocore sends the file as it is
    and refuses a token holding one)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".token-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _token_file_problem(path: Path) -> str | None:
    """Why a --token-file may not be replaced: the rename would put our token in place of a device, a FIFO, a
    directory's name or a symlink (root replacing /dev/null, say), or of another user's file."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"--token-file {path} cannot be used ({error.strerror or error})"
    if not stat.S_ISREG(status.st_mode):
        return f"--token-file {path} is not a regular file"
    if status.st_uid != os.geteuid():
        return f"--token-file {path} belongs to uid {status.st_uid}, not to this user"
    return None


def _default_token_file(state_dir: Path, token: str) -> Path:
    """``serve-<pid>.token`` in the state directory, which must be ours alone (client.owned_files)."""
    from client.owned_files import PrivateDir

    name = f"serve-{os.getpid()}.token"
    with PrivateDir.open(state_dir, create=True) as directory:
        directory.write(name, token.encode())
        return directory.path / name


def _token_from_environment() -> str | None:
    token = os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
    if token is None:
        return None
    if not token or len(token) > 4096 or not token.isascii() or not token.isprintable():
        raise ValueError("$AWS_CONTAINER_AUTHORIZATION_TOKEN must be 1-4096 printable ASCII characters")
    return token


def serve_command(args: argparse.Namespace) -> int:
    from chalicelib.autoid.protocol import Want
    from client.autoid import DEFAULT_BUNDLE, Bundle, BundleError, fetch
    from client.autoid_state import default_state_dir, stderr_warning

    try:
        host = loopback_host(args.host)
        token = _token_from_environment() or secrets.token_urlsafe(32)
    except ValueError as error:
        print(f"credport: {error}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"credport: --port must be from 0 to 65535, not {args.port}", file=sys.stderr)
        return 2
    state_dir = args.state_dir or default_state_dir()
    bundle = args.bundle or DEFAULT_BUNDLE
    try:  # a missing or unusable bundle is a local mistake: said now, not as a 502 to every SDK call
        Bundle.load(bundle).server_key()
    except (BundleError, OSError) as error:
        print(f"credport: {error}", file=sys.stderr)
        return 2
    want = Want(secret_id=args.secret_id) if args.secret_id else Want(role_arn=args.role_arn)
    seen: set[str] = set()

    def warn_once(message: str) -> None:  # a refresh every half hour must not repeat the same warning forever
        if message not in seen:
            seen.add(message)
            stderr_warning(message)

    source = CredentialSource(lambda: fetch(bundle, want, endpoint=args.endpoint, state_dir=state_dir, warn=warn_once))
    problem = _token_file_problem(args.token_file) if args.token_file else None
    if problem:
        print(f"credport: {problem}", file=sys.stderr)
        return 2
    try:
        server = server_for(host, args.port, handler_for(source.current, token))
    except OSError as error:
        print(f"credport: cannot listen on {host} port {args.port} ({error.strerror or error})", file=sys.stderr)
        return 1
    try:
        if args.token_file:
            token_file = args.token_file
            _write_token(token_file, token)
        else:
            token_file = _default_token_file(state_dir, token)
    except OSError as error:  # Untrusted included: a state directory that is not ours alone
        server.server_close()
        where = args.token_file or f"in the state directory {state_dir}"
        print(f"credport: cannot write the token file {where} ({error.strerror or error})", file=sys.stderr)
        return 1
    return _run(server, source, token_file, remove_token=args.token_file is None)


def _run(server: ThreadingHTTPServer, source: CredentialSource, token_file: Path, *, remove_token: bool) -> int:
    stop_requested: list[int] = []
    # Only record the signal (the local stack's rule): the main thread's sleeping loop below notices it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stop_requested.append(signum))
    try:
        source.current()  # warm the cache; a broker that is down now is answered 503 until it is back
    except ServeError as error:
        print(
            f"credport: warning: no credentials yet ({error}); serving 503 until the endpoint answers", file=sys.stderr
        )
    host, port = str(server.server_address[0]), int(server.server_address[1])
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}{PATH}"
    print(f"export AWS_CONTAINER_CREDENTIALS_FULL_URI={shlex.quote(url)}")
    print(f"export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={shlex.quote(str(token_file.resolve()))}", flush=True)
    print(f"credport: serving credentials at {url} until SIGINT or SIGTERM", file=sys.stderr, flush=True)
    stopping = threading.Event()
    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True),
        threading.Thread(target=_prefetch, args=(source, stopping), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        while not stop_requested:
            time.sleep(0.2)
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
        if remove_token:
            with contextlib.suppress(OSError):
                token_file.unlink()
    print("credport: stopped", file=sys.stderr)
    return 0


def _prefetch(source: CredentialSource, stopping: threading.Event) -> None:
    """Refresh ahead of time, so an SDK's request (two seconds' timeout) is answered from the cache."""
    while not stopping.is_set():
        due = source.refresh_due()
        wait = RETRY_SECONDS if due is None else max(0.0, (due - datetime.now(UTC)).total_seconds())
        if stopping.wait(min(wait, 3600.0)):
            return
        if due is not None and datetime.now(UTC) < due:
            continue
        try:
            source.refresh()
        except ServeError:
            stopping.wait(RETRY_SECONDS)
