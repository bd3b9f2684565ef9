"""``credport autoid serve``: loopback only, the token, the container provider's document, caching and refresh.

The HTTP tests run the real server on a free loopback port and talk to it with requests and with botocore's own,
unmodified ``ContainerProvider``; the credentials come from a fake of our fetch (no broker here).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.credentials import ContainerProvider
from botocore.exceptions import CredentialRetrievalError
from botocore.utils import ContainerMetadataFetcher

from client import autoid_http, cli
from client.autoid import Bundle, write_bundle
from client.autoid_http import PATH, ServeError, handler_for, loopback_name, server_for
from client.autoid_serve import CredentialSource, container_credentials, loopback_host
from client.aws_call import CallError
from client.http import AnswerTooLarge, DeadlineExceeded

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def role_answer(expires: datetime, key: str = "ASIA1") -> dict[str, Any]:
    return {
        "credentials": {
            "AccessKeyId": key,
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": expires.isoformat(),
            "AssumedRoleArn": "arn:aws:sts::123456789012:assumed-role/r/autoid-c",
        }
    }


def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether ``condition`` holds within ``seconds`` (a refresh runs on a thread of its own)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert loopback_host(host) in {"127.0.0.1", "127.0.0.53", "::1"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "169.254.170.2", "example.com", ""])  # noqa: S104
def test_any_other_host_is_refused_by_the_command_before_anything_listens(
    host: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["autoid", "serve", "--role-arn", "arn:aws:iam::123456789012:role/r", "--host", host]
    assert cli.main([*argv, "--bundle", str(tmp_path / "none.json"), "--state-dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"credport: --host must be a loopback address (127.0.0.1 or ::1), not {host!r}"]
    assert list(tmp_path.iterdir()) == []  # no token file was written


def test_the_container_document_from_role_credentials_and_from_access_keys() -> None:
    expires = NOW + timedelta(hours=1)
    assert container_credentials(role_answer(expires), NOW) == {
        "AccessKeyId": "ASIA1",
        "SecretAccessKey": "s",
        "Token": "t",
        "Expiration": expires.isoformat(),
        "AccountId": "123456789012",
    }
    keys = {"secret": {"value": "AKIA2,y"}}
    assert container_credentials(keys, NOW) == {
        "AccessKeyId": "AKIA2",
        "SecretAccessKey": "y",
        "Token": "",  # botocore needs the field; an empty token signs without one
        "Expiration": (NOW + timedelta(hours=1)).isoformat(),
    }


def test_credentials_are_cached_until_five_minutes_before_they_end_and_kept_while_the_broker_is_down() -> None:
    clock = Clock()
    calls: list[datetime] = []
    down = False

    def fetch() -> dict[str, Any]:
        calls.append(clock.now)
        if down:
            raise requests.ConnectionError("refused")
        return role_answer(clock.now + timedelta(hours=1), key=f"ASIA{len(calls)}")

    source = CredentialSource(fetch, clock)
    assert source.current()["AccessKeyId"] == "ASIA1"
    clock.now += timedelta(minutes=54)
    assert source.current()["AccessKeyId"] == "ASIA1"  # 6 minutes left: still served
    assert len(calls) == 1
    clock.now += timedelta(minutes=2)  # 4 minutes left: still served, and refreshed on a thread of its own
    assert source.current()["AccessKeyId"] == "ASIA1"
    assert eventually(lambda: source.current()["AccessKeyId"] == "ASIA2")
    assert len(calls) == 2
    assert source.refresh_due() == clock.now + timedelta(minutes=50)

    down = True
    clock.now += timedelta(minutes=57)  # 3 minutes left, broker down: what we hold is still good
    assert source.current()["AccessKeyId"] == "ASIA2"
    assert eventually(lambda: source.refresh_due() > clock.now)  # the refresh failed: retried 30 s later
    assert source.current()["AccessKeyId"] == "ASIA2"
    clock.now += timedelta(minutes=2, seconds=30)  # 30 s left: no longer handed out
    with pytest.raises(ServeError) as refused:
        source.current()
    assert (refused.value.status, refused.value.code) == (503, "broker_unreachable")


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (lambda: DeadlineExceeded("timed out after 60 s"), 503, "broker_unreachable"),
        (lambda: AnswerTooLarge("the answer exceeded 4194304 bytes"), 502, "broker_error"),
    ],
)
def test_a_slow_or_oversized_broker_answer_is_a_clean_error(failure: Any, status: int, code: str) -> None:
    def fetch() -> dict[str, Any]:
        raise failure()

    with pytest.raises(ServeError) as refused:
        CredentialSource(fetch, Clock()).current()
    assert (refused.value.status, refused.value.code) == (status, code)


def test_a_broker_refusal_is_a_502_and_its_message_names_only_the_status() -> None:
    def fetch() -> dict[str, Any]:
        raise CallError(401, {"error": "authentication_failed", "message": "m"})

    with pytest.raises(ServeError) as refused:
        CredentialSource(fetch).current()
    assert (refused.value.status, refused.value.code, str(refused.value)) == (
        502,
        "broker_error",
        "the credport endpoint answered HTTP 401",
    )


def test_one_refresh_at_a_time() -> None:
    calls = []

    def slow_fetch() -> dict[str, Any]:
        calls.append(1)
        time.sleep(0.3)
        return role_answer(datetime.now(UTC) + timedelta(hours=1))

    source = CredentialSource(slow_fetch)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(source.current()["AccessKeyId"])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(calls), results) == (1, ["ASIA1"] * 8)


class HangingFetch:
    """The first fetch answers at once; each later one hangs until ``release`` and then fails or answers."""

    def __init__(self, clock: Clock, *, first_answers: bool = True) -> None:
        self.clock, self.calls, self.fail = clock, 0, False
        self.release = threading.Event()
        self.first_answers = first_answers

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls > 1 or not self.first_answers:
            assert self.release.wait(10)
            if self.fail:
                raise requests.ConnectionError("refused")
        return role_answer(self.clock.now + timedelta(hours=1), key=f"ASIA{self.calls}")


def concurrently(call: Callable[[], Any], count: int) -> list[tuple[float, Any]]:
    """``call`` from ``count`` threads at once: each one's seconds taken and result (or exception)."""
    results: list[tuple[float, Any]] = []

    def one() -> None:
        started = time.monotonic()
        try:
            result = call()
        except Exception as error:  # the test looks at it
            result = error
        results.append((time.monotonic() - started, result))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_a_hanging_refresh_never_holds_up_requests_while_what_is_held_is_servable() -> None:
    clock = Clock()
    fetch = HangingFetch(clock)
    source = CredentialSource(fetch, clock)
    assert source.current()["AccessKeyId"] == "ASIA1"
    clock.now += timedelta(minutes=56)  # 4 minutes left: inside the refresh margin, still servable
    results = concurrently(lambda: source.current()["AccessKeyId"], 8)
    assert [key for _, key in results] == ["ASIA1"] * 8
    assert max(seconds for seconds, _ in results) < 0.5  # nobody waited for the hanging refresh
    assert eventually(lambda: fetch.calls == 2)  # one refresh, started by the first of them
    time.sleep(0.1)
    assert fetch.calls == 2

    fetch.fail = True
    fetch.release.set()
    assert eventually(lambda: source.refresh_due() > clock.now)  # it failed: the next try is 30 s away
    for step in (0, 10, 19):  # 29 s after the failure: still no second attempt
        clock.now += timedelta(seconds=step)
        assert source.current()["AccessKeyId"] == "ASIA1"
    time.sleep(0.1)
    assert fetch.calls == 2
    clock.now += timedelta(seconds=1)  # 30 s after it: exactly one more, hanging again
    fetch.fail, fetch.release = False, threading.Event()
    results = concurrently(lambda: source.current()["AccessKeyId"], 8)
    assert [key for _, key in results] == ["ASIA1"] * 8
    assert max(seconds for seconds, _ in results) < 0.5
    assert eventually(lambda: fetch.calls == 3)
    fetch.release.set()
    assert eventually(lambda: source.current()["AccessKeyId"] == "ASIA3")
    assert fetch.calls == 3


def test_with_nothing_servable_a_request_waits_at_most_one_and_a_half_seconds_for_the_refresh() -> None:
    clock = Clock()
    fetch = HangingFetch(clock, first_answers=False)
    source = CredentialSource(fetch, clock)
    results = concurrently(source.current, 4)
    assert all(1.4 < seconds < 1.9 for seconds, _ in results), results  # under botocore's 2 s
    for _, refused in results:
        assert isinstance(refused, ServeError)
        assert (refused.status, refused.code, str(refused)) == (
            503,
            "broker_unreachable",
            "the credport endpoint has not answered yet",
        )
    assert fetch.calls == 1  # one refresh for all four

    fetch.fail = True
    fetch.release.set()
    assert eventually(lambda: source.refresh_due() > clock.now)
    clock.now += timedelta(seconds=4)  # nothing servable: retried 5 s after a failure, answered 503 meanwhile
    with pytest.raises(ServeError) as refused:
        source.current()
    assert (refused.value.status, str(refused.value)) == (503, "the credport endpoint could not be reached")
    assert fetch.calls == 1
    clock.now += timedelta(seconds=1)
    fetch.fail = False
    assert source.current()["AccessKeyId"] == "ASIA2"
    assert fetch.calls == 2


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    source = CredentialSource(lambda: role_answer(datetime.now(UTC) + timedelta(hours=1)))
    server = server_for("127.0.0.1", 0, handler_for(source.current, "right-token"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = tmp_path / "token"
    token.write_text("right-token")
    yield f"http://127.0.0.1:{server.server_address[1]}{PATH}", token
    server.shutdown()
    server.server_close()


def test_the_token_is_required_and_only_get_on_the_path_answers(served: tuple[str, Path]) -> None:
    url, _ = served
    missing = requests.get(url, timeout=5)
    assert (missing.status_code, missing.json()["error"]) == (401, "unauthorized")
    wrong = requests.get(url, headers={"Authorization": "right-token-not"}, timeout=5)
    assert (wrong.status_code, wrong.json()["error"]) == (403, "forbidden")
    assert "right-token" not in wrong.text
    good = requests.get(url, headers={"Authorization": "right-token"}, timeout=5)
    assert good.status_code == 200
    assert good.headers["Cache-Control"] == "no-store"
    assert set(good.json()) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    elsewhere = requests.get(
        url.replace(PATH, "/latest/meta-data"), headers={"Authorization": "right-token"}, timeout=5
    )
    assert elsewhere.status_code == 404
    posted = requests.post(url, headers={"Authorization": "right-token"}, timeout=5)
    assert posted.status_code == 405


def test_botocore_container_provider_reads_it_with_the_token_file_and_fails_with_a_wrong_one(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    url, token = served
    fetcher = ContainerMetadataFetcher(sleep=lambda _seconds: None)
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": url, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token)}
    credentials = ContainerProvider(environ, fetcher).load()
    assert credentials is not None
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.token) == ("ASIA1", "t")
    wrong = tmp_path / "wrong"
    wrong.write_text("guess")
    with pytest.raises(CredentialRetrievalError, match="403"):
        ContainerProvider({**environ, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(wrong)}, fetcher).load()


def test_a_missing_bundle_is_refused_at_start(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["autoid", "serve", "--role-arn", "arn:aws:iam::123456789012:role/r", "--bundle", str(tmp_path / "none")]
    assert cli.main([*argv, "--state-dir", str(tmp_path / "state")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith("credport: ")
    assert "No such file" in err
    assert not (tmp_path / "state").exists()


def raw(url: str, data: bytes, *, read: bool = True) -> bytes:
    """Send ``data`` as it is (no client library to tidy it up) and read the whole answer."""
    port = int(url.split(":")[2].split("/", maxsplit=1)[0])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        return b"".join(iter(lambda: connection.recv(65536), b"")) if read else b""


def test_request_text_reaches_the_log_only_escaped(
    served: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = served
    answer = raw(url, b"GET /\x1b[2J\x1b]0;PWNED\x07/x\xe2\x80\xae HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 401")
    raw(url, b"\x1b[31mGET\x1b[0m / HTTP/1.0\r\n\r\n")  # a malformed request line: http.server's own 400
    err = capsys.readouterr().err
    assert err.count("\n") == 2
    assert all(line.startswith("credport: serve: ") for line in err.splitlines())
    assert not any(ord(char) < 32 and char != "\n" for char in err)
    assert "\x1b" not in err
    assert "\x80" not in err
    assert "credport: serve: GET /?[2J?]0;PWNED?/x\u00e2?\u00ae -> 401" in err


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("LOCALHOST", 200),
        ("[::1]:{port}", 200),
        ("127.0.0.1", 200),
        ("attacker.example:{port}", 403),  # a DNS-rebound name: a web page's request
        ("127.0.0.1.nip.io:{port}", 403),
        ("127.0.0.1:1", 403),
        ("10.0.0.1:{port}", 403),
        ("::1", 403),
        ("[::1]x", 403),
    ],
)
def test_only_a_loopback_host_header_is_answered(served: tuple[str, Path], host: str, status: int) -> None:
    url, _ = served
    port = int(url.split(":")[2].split("/")[0])
    name = host.format(port=port)
    request = f"GET {PATH} HTTP/1.1\r\nHost: {name}\r\nAuthorization: right-token\r\nConnection: close\r\n\r\n"
    answer = raw(url, request.encode())
    assert answer.startswith(f"HTTP/1.0 {status}".encode()), answer[:200]
    if status == 403:
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "bad_host"  # not the token check
    assert loopback_name(name, port) is (status == 200)


def test_two_host_headers_are_refused(served: tuple[str, Path]) -> None:
    url, _ = served
    request = f"GET {PATH} HTTP/1.0\r\nHost: localhost\r\nHost: evil.example\r\nAuthorization: right-token\r\n\r\n"
    assert raw(url, request.encode()).startswith(b"HTTP/1.0 403")


def test_request_headers_are_capped_in_total(served: tuple[str, Path]) -> None:
    url, _ = served
    headers = "".join(f"X-Pad-{i}: {'a' * 500}\r\n" for i in range(50))  # 25 KB in 50 headers: under http.server's
    answer = raw(url, f"GET {PATH} HTTP/1.0\r\nAuthorization: right-token\r\n{headers}\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 431"), answer[:100]
    small = raw(url, f"GET {PATH} HTTP/1.0\r\nAuthorization: right-token\r\nX-Pad: {'a' * 500}\r\n\r\n".encode())
    assert small.startswith(b"HTTP/1.0 200")


@contextmanager
def serving(monkeypatch: pytest.MonkeyPatch, **limits: float) -> Iterator[str]:
    for name, value in limits.items():
        monkeypatch.setattr(autoid_http, name, value)
    source = CredentialSource(lambda: role_answer(datetime.now(UTC) + timedelta(hours=1)))
    server = server_for("127.0.0.1", 0, handler_for(source.current, "right-token"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{PATH}"
    finally:
        server.shutdown()
        server.server_close()


def closed_within(connection: socket.socket, seconds: float) -> bool:
    connection.settimeout(seconds)
    try:
        return connection.recv(65536) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_silent_connection_is_closed_after_the_socket_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(monkeypatch, SOCKET_TIMEOUT=0.5, HEAD_SECONDS=30) as url:
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(b"GET /v1/cred")
            assert closed_within(connection, 3)


def test_a_trickling_connection_is_cut_off_after_its_time_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(monkeypatch, SOCKET_TIMEOUT=5, CONNECTION_SECONDS=1) as url:
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(f"GET {PATH} HTTP/1.0\r\n".encode())
            started = time.monotonic()
            closed = False
            while not closed and time.monotonic() - started < 4:
                with contextlib.suppress(OSError):
                    connection.sendall(b"X: y\r\n")  # a header line every 0.3 s: never idle for 5 s
                closed = closed_within(connection, 0.3)
            assert closed
            assert time.monotonic() - started < 3


def test_a_connection_without_its_headers_after_two_seconds_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(monkeypatch, SOCKET_TIMEOUT=30) as url:
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)) as connection:
            started = time.monotonic()
            connection.sendall(f"GET {PATH} HTTP/1.0\r\n".encode())  # and never the end of the headers
            assert closed_within(connection, 4)
            assert 1.9 < time.monotonic() - started < 3


def test_a_newcomer_finding_every_slot_taken_closes_the_oldest_idle_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serving(monkeypatch, MAX_CONNECTIONS=2) as url:
        port = int(url.split(":")[2].split("/")[0])
        oldest = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.1)
        newer = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.1)
        good = requests.get(url, headers={"Authorization": "right-token"}, timeout=2)
        assert good.status_code == 200
        assert closed_within(oldest, 0.5)
        assert not closed_within(newer, 0.3)
        newer.sendall(f"GET {PATH} HTTP/1.0\r\nAuthorization: right-token\r\n\r\n".encode())
        assert newer.recv(65536).startswith(b"HTTP/1.0 200")
        oldest.close()
        newer.close()


def test_when_every_slot_holds_a_request_being_answered_a_newcomer_gets_503_and_the_slots_come_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(autoid_http, "MAX_CONNECTIONS", 2)
    answering = threading.Event()

    def current() -> dict[str, Any]:
        assert answering.wait(10)
        return {"AccessKeyId": "ASIA1"}

    server = server_for("127.0.0.1", 0, handler_for(current, "right-token"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}{PATH}"
    try:
        held = [requests.get, requests.get]
        answers: list[int] = []
        threads = [
            threading.Thread(
                target=lambda get=get: answers.append(
                    get(url, headers={"Authorization": "right-token"}, timeout=10).status_code
                )
            )
            for get in held
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.3)  # both are headed and waiting in current(): none of them may be evicted
        started = time.monotonic()
        assert raw(url, b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 503")
        assert 0.4 < time.monotonic() - started < 1.5  # after waiting BUSY_SECONDS for a slot
        answering.set()
        for thread in threads:
            thread.join(5)
        assert answers == [200, 200]
        assert requests.get(url, headers={"Authorization": "right-token"}, timeout=2).status_code == 200
    finally:
        answering.set()
        server.shutdown()
        server.server_close()


class OneTry(ContainerMetadataFetcher):
    """botocore's own fetcher (2 s timeout), without its retries: every single request must succeed."""

    RETRY_ATTEMPTS = 1


def test_forty_reconnecting_idle_connections_never_keep_botocore_from_its_credentials(
    served: tuple[str, Path],
) -> None:
    url, token = served
    port = int(url.split(":")[2].split("/")[0])
    stopping = threading.Event()
    opened: list[int] = []

    def hold_a_slot() -> None:  # connect, say nothing, and connect again as soon as closed
        while not stopping.is_set():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
                opened.append(1)
                while not stopping.is_set() and not closed_within(idle, 0.2):
                    pass

    attackers = [threading.Thread(target=hold_a_slot, daemon=True) for _ in range(40)]
    for attacker in attackers:
        attacker.start()
    try:
        time.sleep(0.5)
        fetcher = OneTry()
        environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": url, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token)}
        for _ in range(10):
            started = time.monotonic()
            credentials = ContainerProvider(environ, fetcher).load()
            assert credentials is not None
            assert credentials.get_frozen_credentials().access_key == "ASIA1"
            good = requests.get(url, headers={"Authorization": "right-token"}, timeout=2)
            assert good.status_code == 200
            assert time.monotonic() - started < 2
            time.sleep(0.1)
        assert len(opened) > 40  # the idle connections were closed and came back: the slots stayed contested
    finally:
        stopping.set()
        for attacker in attackers:
            attacker.join(5)


def test_serve_refuses_a_token_file_or_bundle_that_is_not_a_regular_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "autoid.json"
    write_bundle(bundle, Bundle("c-1", "http://127.0.0.1:1", 1, jwks_of_test_key(), b"\0" * 1048576))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    directory = tmp_path / "dir"
    directory.mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "token-target")
    argv = ["autoid", "serve", "--role-arn", "arn:aws:iam::123456789012:role/r", "--state-dir", str(tmp_path / "s")]
    for token_file in (fifo, directory, link):
        assert cli.main([*argv, "--bundle", str(bundle), "--token-file", str(token_file)]) == 2
        assert capsys.readouterr().err == f"credport: --token-file {token_file} is not a regular file\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert directory.is_dir()
    assert link.is_symlink()
    for not_a_bundle in (fifo, directory):
        assert cli.main([*argv, "--bundle", str(not_a_bundle)]) == 2
        assert capsys.readouterr().err == f"credport: {not_a_bundle} is not a regular file\n"


def jwks_of_test_key() -> dict[str, Any]:
    from tests.unit.test_autoid_state import KEY, jwks

    return jwks(KEY)


def test_serve_writes_its_default_token_file_only_into_a_state_directory_of_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "autoid.json"
    write_bundle(bundle, Bundle("c-1", "http://127.0.0.1:1", 1, jwks_of_test_key(), b"\0" * 1048576))
    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)  # not sticky: anyone could swap the token file for one of theirs
    argv = ["autoid", "serve", "--role-arn", "arn:aws:iam::123456789012:role/r", "--bundle", str(bundle)]
    assert cli.main([*argv, "--state-dir", str(open_to_all)]) == 1
    assert capsys.readouterr().err == (
        f"credport: cannot write the token file in the state directory {open_to_all} ({open_to_all} is writable by "
        "others (mode 0777))\n"
    )
    assert list(open_to_all.iterdir()) == []
    assert cli.main([*argv, "--state-dir", "/dev/null/x"]) == 1
    assert capsys.readouterr().err == (
        "credport: cannot write the token file in the state directory /dev/null/x (Not a directory)\n"
    )
