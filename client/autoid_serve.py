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

REFRESH_MARGIN = timedelta(minutes=5)  # refreshed (on a thread of its own) once this close to their end
SERVABLE_MARGIN = timedelta(minutes=1)  # still handed out, while the broker is slow or down, until this close
LONG_TERM_LIFETIME = timedelta(hours=1)  # access keys from a secret: the SDK asks again after this (rotated keys)
RETRY_SECONDS = 30.0  # after a failed refresh, while what is held is still servable
EMPTY_RETRY_SECONDS = 5.0  # after a failed refresh, with nothing servable (every request is answered 503 meanwhile)
WAIT_SECONDS = 1.5  # the longest a request waits for a refresh: botocore gives up after 2 s


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
    """Credentials from ``fetch_answer`` (one auto-id answer), cached until ``REFRESH_MARGIN`` before their end.

    A request never waits for the broker while what is held is still servable (``SERVABLE_MARGIN`` left): it gets
    that, and at most starts a refresh on a thread of its own. Refreshes run one at a time, and after a failure the
    next is tried only ``RETRY_SECONDS`` later (``EMPTY_RETRY_SECONDS`` when nothing servable is held, so that service
    comes back soon after the broker does). Only with nothing servable does a request wait, ``WAIT_SECONDS`` at most:
    the SDK gives up after two.
    """

    def __init__(self, fetch_answer: Callable[[], dict[str, Any]], clock: Callable[[], datetime] | None = None):
        self._fetch_answer = fetch_answer
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cached: _Cached | None = None
        self._changed = threading.Condition()  # guards everything below; notified when a refresh ends
        self._refreshing = False
        self._failed_at: datetime | None = None
        self._failure: ServeError | None = None

    def current(self) -> dict[str, Any]:
        with self._changed:
            cached = self._cached
            if cached is not None and self._left(cached) > REFRESH_MARGIN:
                return cached.document
            servable = cached is not None and self._left(cached) > SERVABLE_MARGIN
            if self._may_start(RETRY_SECONDS if servable else EMPTY_RETRY_SECONDS):
                self._refreshing = True
                threading.Thread(target=self._attempt, name="credport-refresh", daemon=True).start()
            if cached is not None and servable:
                return cached.document
            deadline = time.monotonic() + WAIT_SECONDS
            while self._refreshing and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            cached = self._cached
            if cached is not None and self._left(cached) > SERVABLE_MARGIN:
                return cached.document
            if self._refreshing or self._failure is None:
                raise ServeError(503, "broker_unreachable", "the credport endpoint has not answered yet")
            raise _copy(self._failure)

    def refresh_due(self) -> datetime:
        """When the prefetch thread should refresh: halfway through, and ten minutes before the end at the latest;
        at once when nothing is held; never sooner than the retry interval after a failure."""
        with self._changed:
            cached = self._cached
            due = self._clock()
            if cached is not None:
                halfway = cached.fetched_at + (cached.expires_at - cached.fetched_at) / 2
                due = max(halfway, cached.expires_at - timedelta(minutes=10))
            if self._failed_at is not None:
                servable = cached is not None and self._left(cached) > SERVABLE_MARGIN
                retry = RETRY_SECONDS if servable else EMPTY_RETRY_SECONDS
                due = max(due, self._failed_at + timedelta(seconds=retry))
            return due

    def refresh(self) -> None:
        """Refresh in this thread (at the start, on the prefetch thread), or wait for the refresh already running;
        raises the ServeError it failed with."""
        with self._changed:
            mine = not self._refreshing
            self._refreshing = True
        if mine:
            self._attempt()
        with self._changed:
            while self._refreshing:
                self._changed.wait()
            if self._failure is not None:
                raise _copy(self._failure)

    def _left(self, cached: _Cached) -> timedelta:
        return cached.expires_at - self._clock()

    def _may_start(self, retry_seconds: float) -> bool:
        if self._refreshing:
            return False
        return self._failed_at is None or self._clock() - self._failed_at >= timedelta(seconds=retry_seconds)

    def _attempt(self) -> None:
        cached: _Cached | None = None
        failure: ServeError | None = None
        try:
            cached = self._fetch()
        except ServeError as error:
            failure = error
        except Exception as error:  # a bug must not leave a refresh "running" for ever
            failure = ServeError(502, "credential_error", f"no credentials: {type(error).__name__}")
        finally:
            with self._changed:
                if cached is not None:
                    self._cached, self._failed_at, self._failure = cached, None, None
                else:
                    self._failed_at, self._failure = self._clock(), failure
                self._refreshing = False
                self._changed.notify_all()

    def _fetch(self) -> _Cached:
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
        return _Cached(document, now, expires_at)


def _copy(failure: ServeError) -> ServeError:
    """One exception object per caller: the same one raised in many threads at once would share its traceback."""
    return ServeError(failure.status, failure.code, str(failure))


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
        source.refresh()  # warm the cache; a broker that is down now is answered 503 until it is back
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
        wait = (source.refresh_due() - datetime.now(UTC)).total_seconds()
        if wait > 0:
            if stopping.wait(min(wait, 60.0)):  # then look again: a request may have started a refresh meanwhile
                return
            continue
        with contextlib.suppress(ServeError):  # a failure moves refresh_due to the end of the retry interval
            source.refresh()
        stopping.wait(1.0)  # never a busy loop, whatever the clocks say
