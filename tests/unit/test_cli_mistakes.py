"""Every mistake a new user makes with ``credport`` ends in one line on standard error, ``credport: ...``, and the
exit code of its class (client/errors.py), never a traceback. Servers are real sockets on 127.0.0.1 (a closed port,
an HTTP server answering what the case needs, a TLS server with a certificate nobody trusts); the pipe and Ctrl-C
cases run the installed ``credport`` as a process."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from client.cli import main
from client.errors import Exit
from tests.conftest import REPO_ROOT

BIN = REPO_ROOT / ".venv" / "bin"


class Answer:
    """What the test server answers to every request (status, body, headers), and the requests it saw."""

    def __init__(self) -> None:
        self.status, self.body, self.headers = 200, b"{}", {"Content-Type": "application/json"}
        self.seen: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Answer]]:
    answer = Answer()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            answer.seen.append(f"{self.command} {self.path}")
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = _reply

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answer
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens here once the probe is closed


def failed(capsys: pytest.CaptureFixture[str], argv: list[str], code: Exit) -> str:
    """Run ``credport argv``: it must fail with ``code``, one stderr line, no traceback, nothing on stdout."""
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("credport: ")
    assert err.count("\n") == 1, err
    return err


def test_an_unreachable_endpoint(capsys: pytest.CaptureFixture[str], closed_port: str) -> None:
    err = failed(capsys, ["token", "--endpoint", closed_port], Exit.UNAVAILABLE)
    assert f"cannot reach {closed_port.removeprefix('http://')} (connection refused; GET {closed_port}/token)" in err


def test_a_host_that_does_not_resolve(capsys: pytest.CaptureFixture[str]) -> None:
    err = failed(capsys, ["token", "--endpoint", "http://no-such-host.invalid"], Exit.UNAVAILABLE)
    assert "cannot resolve the host no-such-host.invalid" in err


def test_a_timeout(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts the connection, never answers
    from client import aws_call

    defaults = aws_call.signed_request.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "timeout", 0.3)
    try:
        err = failed(capsys, ["token", "--endpoint", f"http://127.0.0.1:{silent.getsockname()[1]}"], Exit.UNAVAILABLE)
    finally:
        silent.close()
    assert "did not answer in time" in err


def test_a_certificate_nobody_trusts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def handshake() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    threading.Thread(target=handshake, daemon=True).start()
    try:
        endpoint = f"https://127.0.0.1:{listener.getsockname()[1]}"
        err = failed(capsys, ["token", "--endpoint", endpoint], Exit.UNAVAILABLE)
    finally:
        listener.close()
    assert "TLS error talking to 127.0.0.1" in err
    assert "certificate verify failed" in err


@pytest.mark.parametrize(
    ("status", "body", "headers", "code", "expected"),
    [
        (404, b"", {}, Exit.CONFIG, "GET {url}/token answered 404 Not Found (no body): is --endpoint the API's URL"),
        (
            403,
            b'{"message":"Missing Authentication Token"}',
            {"x-amzn-ErrorType": "MissingAuthenticationTokenException"},
            Exit.CONFIG,
            "answered 403 Forbidden (API Gateway MissingAuthenticationTokenException: Missing Authentication Token)",
        ),
        (
            403,
            b'{"message":"The security token included in the request is invalid."}',
            {"x-amzn-ErrorType": "UnrecognizedClientException:http://internal.amazon.com/coral/"},
            Exit.CONFIG,
            "(API Gateway UnrecognizedClientException: The security token included in the request is invalid.):"
            " are the AWS credentials",
        ),
        (200, b"<html>hello</html>", {"Content-Type": "text/html"}, Exit.CONFIG, "200 OK (a text/html body, not JSON)"),
        (403, b'{"error":"forbidden","message":"No."}', {}, Exit.REFUSED, "answered 403 Forbidden: forbidden: No."),
        (502, b'{"message": "Internal server error"}', {}, Exit.UNAVAILABLE, "502 Bad Gateway (API Gateway: Internal"),
        (200, b'{"no": "token"}', {}, Exit.CONFIG, "GET {url}/token answered no token"),
        (403, b"<html>nope</html>", {"Content-Type": "text/html"}, Exit.CONFIG, "(a text/html body, not JSON): is"),
    ],
)
def test_every_answer_says_what_was_called_and_what_came_back(
    capsys: pytest.CaptureFixture[str],
    server: tuple[str, Answer],
    status: int,
    body: bytes,
    headers: dict[str, str],
    code: Exit,
    expected: str,
) -> None:
    url, answer = server
    answer.status, answer.body = status, body
    answer.headers = {"Content-Type": "application/json", **headers}
    err = failed(capsys, ["token", "--endpoint", url, "--aud", "x"], code)
    assert expected.format(url=url) in err
    assert "aud=x" not in err  # the query is never shown (a presigned link's is a credential)


@pytest.mark.parametrize(
    ("argv", "env", "code", "expected"),
    [
        (
            ["token", "--endpoint", "{url}", "--profile", "nope"],
            {},
            Exit.CONFIG,
            "AWS profile 'nope' is not configured",
        ),
        (
            ["token", "--endpoint", "{url}"],
            {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
            Exit.CONFIG,
            "no AWS credentials found",
        ),
        (
            ["token", "--endpoint", "{url}"],
            {"AWS_DEFAULT_REGION": None, "AWS_REGION": None},
            Exit.CONFIG,
            "no AWS region",
        ),
        (["token"], {"CREDPORT_ENDPOINT": None}, Exit.USAGE, "no endpoint: pass --endpoint or set CREDPORT_ENDPOINT"),
        (["token", "--endpoint", "localhost:8000"], {}, Exit.USAGE, "--endpoint must be an http(s) URL"),
        (["verify", "x.y.z"], {"CREDPORT_ISSUER": None}, Exit.USAGE, "no issuer: pass --issuer or set CREDPORT_ISSUER"),
        (["verify", "x.y.z", "--issuer", "http://example.com"], {}, Exit.USAGE, "refusing a non-https URL"),
    ],
)
def test_configuration_and_usage_mistakes(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    server: tuple[str, Answer],
    argv: list[str],
    env: dict[str, str | None],
    code: Exit,
    expected: str,
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role lookup on this machine
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    url, answer = server
    err = failed(capsys, [a.format(url=url) for a in argv], code)
    assert expected in err
    assert answer.seen == []  # refused before any call


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["tokn"], "credport: argument command: invalid choice: 'tokn'"),
        (["token", "--ttl", "soon"], "credport: argument --ttl: invalid int value: 'soon' (see credport token --help)"),
        (["transfer", "receive", "https://x"], "the following arguments are required: --key"),
        (["session"], "the following arguments are required: action"),
    ],
)
def test_argparse_usage_errors_are_one_line_too(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == Exit.USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("credport: ")
    assert err.count("\n") == 1, err
    assert expected in err


def session_file(tmp_path: Path, content: bytes | None, mode: int = 0o600) -> Path:
    path = tmp_path / "session.json"
    if content is not None:
        path.write_bytes(content)
        path.chmod(mode)
    return path


@pytest.mark.parametrize("action", ["show", "refresh"])
@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        (None, 0o600, "no session yet ({path} does not exist): run credport session start first"),
        (b"not json", 0o600, "{path} is not a credport session file: run credport session start to replace it"),
        (b'{"foreign": true}', 0o600, "{path} is not a credport session file"),
        (b"\xff\xfe", 0o600, "{path} is not a credport session file"),
        (b'{"token": "t"}', 0o644, "{path} is readable by others; it must be 0600: chmod 600 {path}"),
    ],
)
def test_session_before_start_or_with_a_foreign_file(
    capsys: pytest.CaptureFixture[str],
    server: tuple[str, Answer],
    tmp_path: Path,
    action: str,
    content: bytes | None,
    mode: int,
    expected: str,
) -> None:
    url, answer = server
    path = session_file(tmp_path, content, mode)
    err = failed(capsys, ["session", action, "--endpoint", url, "--token-file", str(path)], Exit.CONFIG)
    assert expected.format(path=path) in err
    assert answer.seen == []


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "huge"])
def test_a_session_file_that_is_no_file_is_refused_without_waiting_or_reading_it_all(
    capsys: pytest.CaptureFixture[str], server: tuple[str, Answer], tmp_path: Path, kind: str
) -> None:
    url, answer = server
    path = {"fifo": tmp_path / "fifo", "device": Path("/dev/zero"), "directory": tmp_path}.get(kind, tmp_path / "big")
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "huge":
        path.write_bytes(b"{" + b" " * (1 << 20))
        path.chmod(0o600)
    started = time.monotonic()
    err = failed(capsys, ["session", "show", "--endpoint", url, "--token-file", str(path)], Exit.CONFIG)
    assert time.monotonic() - started < 5
    expected = "is not a credport session file" if kind == "huge" else f"{path} is not a regular file"
    assert expected in err
    assert answer.seen == []


def test_an_ended_session_says_to_start_again(
    capsys: pytest.CaptureFixture[str], server: tuple[str, Answer], tmp_path: Path
) -> None:
    url, answer = server
    answer.status, answer.body = 401, b'{"error": "invalid_token", "message": "The bearer token is missing."}'
    path = session_file(tmp_path, b'{"token": "secret-bearer-value"}')
    err = failed(capsys, ["session", "refresh", "--endpoint", url, "--token-file", str(path)], Exit.REFUSED)
    assert "POST " in err
    assert "401 Unauthorized: invalid_token" in err
    assert "run credport session start" in err
    assert "secret-bearer-value" not in err


def unsigned_token(claims: dict[str, Any]) -> str:
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT', 'kid': 'k' * 43})}.{part(claims)}.c2ln"


def discovery(answer: Answer, url: str, *, issuer: str) -> None:
    answer.body = json.dumps({"issuer": issuer, "jwks_uri": f"{url}/.well-known/jwks.json", "keys": []}).encode()


def test_verify_names_both_issuers_when_the_discovery_document_names_another(
    capsys: pytest.CaptureFixture[str], server: tuple[str, Answer]
) -> None:
    url, answer = server
    discovery(answer, url, issuer=url + "/")
    err = failed(capsys, ["verify", unsigned_token({"iss": url}), "--issuer", url], Exit.CONFIG)
    assert f"names the issuer '{url}/', not --issuer '{url}'" in err


def test_verify_names_the_tokens_issuer_when_it_is_another(
    capsys: pytest.CaptureFixture[str], server: tuple[str, Answer]
) -> None:
    url, answer = server
    discovery(answer, url, issuer=url)
    token = unsigned_token({"iss": "https://other.example", "aud": "a"})
    err = failed(capsys, ["verify", token, "--issuer", url], Exit.REFUSED)
    assert f"invalid token: issued by 'https://other.example', not by --issuer '{url}'" in err
    assert "(refused by the kid check" in err  # the check that refused it: its key is not in this issuer's JWKS
    assert token not in err


def test_verify_names_both_audiences(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.tokens.exceptions import TokenRejected
    from client import oidc

    class Refusing:
        def verify(self, token: str, *, audience: str | None) -> dict[str, Any]:
            raise TokenRejected("aud")  # what TokenVerifier raises for another audience (test_token_verify.py)

    monkeypatch.setattr(oidc, "discover_verifier", lambda issuer: Refusing())
    token = unsigned_token({"iss": "https://issuer.example", "aud": "sts.amazonaws.com"})
    err = failed(capsys, ["verify", token, "--issuer", "https://issuer.example", "--aud", "mine"], Exit.REFUSED)
    assert "its audience is 'sts.amazonaws.com', not --aud 'mine' (refused by the aud check" in err


def test_verify_discovery_answering_404(capsys: pytest.CaptureFixture[str], server: tuple[str, Answer]) -> None:
    url, answer = server
    answer.status, answer.body = 404, b""
    err = failed(capsys, ["verify", "a.b.c", "--issuer", url], Exit.CONFIG)
    assert f"GET {url}/.well-known/openid-configuration answered 404 Not Found (no body): is --issuer" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["transfer", "receive", "{url}/x", "--key", "{missing}"], "--key {missing}: No such file or directory"),
        (["transfer", "receive", "{url}/x", "--key", "{tmp}"], "--key {tmp}: Is a directory"),
        (["transfer", "receive", "{url}/x", "--key", "{garbage}"], "--key is not a usable RSA private key"),
        (["transfer", "receive", "ftp://x/y", "--key", "{garbage}"], "the link must be https"),
        (["transfer", "receive", "{url}/x", "--key", "{garbage}", "--name", "n"], "--name goes with --store"),
        (
            ["transfer", "send-file", "--to-key", "{missing}", "--name", "n", "--value-file", "{garbage}"],
            "--to-key {missing}: No such file or directory",
        ),
        (
            ["transfer", "send-file", "--to-key", "{garbage}", "--name", "n", "--value-file", "{garbage}"],
            "--to-key {garbage} is not a usable public key",
        ),
    ],
)
def test_files_named_on_the_command_line(
    capsys: pytest.CaptureFixture[str], server: tuple[str, Answer], tmp_path: Path, argv: list[str], expected: str
) -> None:
    url, answer = server
    names = {"url": url, "missing": str(tmp_path / "missing.pem"), "tmp": str(tmp_path)}
    names["garbage"] = str(tmp_path / "garbage.pem")
    Path(names["garbage"]).write_bytes(b"not a key")
    err = failed(capsys, [a.format(**names) for a in argv], Exit.USAGE)
    assert expected.format(**names) in err
    assert answer.seen == []


def test_credentials_a_server_echoes_are_never_shown(
    capsys: pytest.CaptureFixture[str], server: tuple[str, Answer]
) -> None:
    # API Gateway's IncompleteSignatureException quotes the request's whole Authorization header back.
    url, answer = server
    echoed = (
        "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter."
        " Authorization=AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/execute-api/aws4_request,"
        " SignedHeaders=host;x-amz-date, Signature=" + "fb2bd24e" * 8 + " X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE"
        " and a token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl" + " padding" * 60
    )
    answer.status, answer.body = 403, json.dumps({"message": echoed}).encode()
    answer.headers = {"Content-Type": "application/json", "x-amzn-ErrorType": "IncompleteSignatureException"}
    err = failed(capsys, ["token", "--endpoint", url], Exit.CONFIG)
    for secret in ("AKIAIOSFODNN7", "fb2bd24e", "IQoJb3JpZ2luX2Vj", "eyJhbGciOiJSUzI1NiJ9", "c2lnbmF0dXJl"):
        assert secret not in err
    assert "Authorization=<redacted>" in err
    assert err.rstrip().endswith("are the AWS credentials (and the clock) right?")  # the hint survives a long answer


@pytest.mark.parametrize(
    ("content", "mode", "code", "expected"),
    [
        (None, 0o600, Exit.USAGE, "cannot use {bundle}: No such file or directory"),
        ("{}", 0o600, Exit.CONFIG, "{bundle} is not an auto-id bundle"),
        ("not json", 0o600, Exit.CONFIG, "{bundle} is not an auto-id bundle"),
        ("{}", 0o644, Exit.CONFIG, "{bundle} is readable by others; it must be 0600"),
    ],
)
def test_autoid_bundle_mistakes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None, mode: int, code: Exit, expected: str
) -> None:
    bundle = tmp_path / "autoid.json"
    if content is not None:
        bundle.write_text(content)
        bundle.chmod(mode)
    argv = ["autoid", "get", "--role-arn", "arn:aws:iam::123456789012:role/r", "--bundle", str(bundle)]
    err = failed(capsys, [*argv, "--state-dir", str(tmp_path / "state")], code)
    assert expected.format(bundle=bundle) in err


def test_an_expired_link(capsys: pytest.CaptureFixture[str], server: tuple[str, Answer], tmp_path: Path) -> None:
    from chalicelib.envelope import generate_recipient_key

    url, answer = server
    answer.status, answer.body = 403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    key = generate_recipient_key(2048)
    pem = tmp_path / "key.pem"
    assert key.private is not None
    pem.write_bytes(bytes(key.private.as_pem(private=True)))
    link = f"{url}/outbox/c/v.jwe?X-Amz-Signature=abc123&X-Amz-Security-Token=SECRET"
    err = failed(capsys, ["transfer", "receive", link, "--key", str(pem)], Exit.REFUSED)
    assert f"the link ({url}/outbox/c/v.jwe) answered HTTP 403, AccessDenied: it may have expired" in err
    assert "SECRET" not in err
    assert "abc123" not in err


def test_an_unexpected_error_is_an_internal_error_with_a_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, server: tuple[str, Answer]
) -> None:
    from client import cli

    def broken(_: Any) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "_token", broken)
    url, _ = server
    err = failed(capsys, ["token", "--endpoint", url], Exit.INTERNAL)
    assert err == "credport: internal error (ZeroDivisionError); run with CREDPORT_DEBUG=1 for the traceback\n"
    monkeypatch.setenv("CREDPORT_DEBUG", "1")
    assert main(["token", "--endpoint", url]) == Exit.INTERNAL
    assert "Traceback" in capsys.readouterr().err


def run_piped(argv: list[str], reader: list[str], env: dict[str, str]) -> tuple[int, str]:
    """``credport argv | reader``: credport's exit status and standard error."""
    writer = subprocess.Popen([str(BIN / "credport"), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert writer.stdout is not None
    assert writer.stderr is not None
    head = subprocess.run(reader, stdin=writer.stdout, capture_output=True, check=False, timeout=60)
    writer.stdout.close()
    err = writer.stderr.read().decode()
    assert writer.wait(timeout=60) is not None
    assert head.returncode == 0
    return writer.returncode, err


def cli_env() -> dict[str, str]:
    return {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}


def test_a_reader_that_stops_early_ends_quietly_with_141(server: tuple[str, Answer]) -> None:
    url, answer = server
    answer.body = json.dumps({"token": "x" * 400_000}).encode()  # more than any pipe buffer holds
    code, err = run_piped(["token", "--json", "--endpoint", url], ["head", "-c", "10"], cli_env())
    assert (code, err) == (Exit.BROKEN_PIPE, "")


def test_help_into_a_closed_pipe(tmp_path: Path) -> None:
    code, err = run_piped(["--help"], ["head", "-c", "1"], cli_env())
    assert code in (Exit.OK, Exit.BROKEN_PIPE)  # help may fit in the pipe before head closes it
    assert "Traceback" not in err
    assert "Exception ignored" not in err


def test_ctrl_c_exits_130_with_one_line() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = threading.Event()

    def hold() -> None:
        conn, _ = listener.accept()  # never answered: credport waits until interrupted
        accepted.set()
        time.sleep(30)
        conn.close()

    threading.Thread(target=hold, daemon=True).start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    process = subprocess.Popen(
        [str(BIN / "credport"), "token", "--endpoint", endpoint], stderr=subprocess.PIPE, env=cli_env(), text=True
    )
    try:
        assert accepted.wait(timeout=30)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        listener.close()
    assert process.returncode == Exit.INTERRUPTED
    assert err == "credport: interrupted\n"


class RawServer:
    """A server on 127.0.0.1 that runs ``serve(connection)`` for each connection (a thread each), and counts them."""

    def __init__(self, serve: Any) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, args=(serve,), daemon=True).start()

    def _accept(self, serve: Any) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(serve, conn), daemon=True).start()

    def _run(self, serve: Any, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)  # the request (small, one read is enough here)
            serve(conn, self.stopped)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[Any]:
    servers: list[RawServer] = []

    def start(serve: Any) -> RawServer:
        servers.append(RawServer(serve))
        return servers[-1]

    yield start
    for started in servers:
        started.close()


def endless(head: bytes) -> Any:
    """Headers, then zeros for as long as the client reads."""

    def serve(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(head)
        block = b"0" * 65536
        while not stopped.is_set():
            conn.sendall(block)

    return serve


def drip(head: bytes, *, headers_too: bool = False) -> Any:
    """A byte every 50 ms: each socket read succeeds, so only a deadline on the whole call ends it."""

    def serve(conn: socket.socket, stopped: threading.Event) -> None:
        if not headers_too:
            conn.sendall(head)
        for byte in (head if headers_too else b"") + b"0" * 100_000:
            if stopped.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    return serve


BODY_OF_NO_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
HUGE_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n"


def timed(capsys: pytest.CaptureFixture[str], argv: list[str], code: Exit) -> tuple[str, float]:
    started = time.monotonic()
    err = failed(capsys, argv, code)
    return err, time.monotonic() - started


def receive_argv(tmp_path: Path, url: str) -> list[str]:
    from chalicelib.envelope import generate_recipient_key

    key = generate_recipient_key(2048)
    assert key.private is not None
    pem = tmp_path / "key.pem"
    pem.write_bytes(bytes(key.private.as_pem(private=True)))
    return ["transfer", "receive", f"{url}/outbox/c/v.jwe?X-Amz-Signature=abc", "--key", str(pem)]


@pytest.mark.parametrize("head", [BODY_OF_NO_LENGTH, HUGE_LENGTH], ids=["streamed", "declared"])
def test_an_endless_answer_is_cut_at_its_limit(
    capsys: pytest.CaptureFixture[str], raw_server: Any, tmp_path: Path, head: bytes
) -> None:
    url = raw_server(endless(head)).url
    err, seconds = timed(capsys, ["token", "--endpoint", url], Exit.UNAVAILABLE)
    assert f"GET {url}/token: the answer exceeded 1048576 bytes" in err
    assert seconds < 10
    session = session_file(tmp_path, b'{"token": "t"}')
    err, seconds = timed(capsys, ["session", "show", "--endpoint", url, "--token-file", str(session)], Exit.UNAVAILABLE)
    assert "the answer exceeded 1048576 bytes" in err
    assert seconds < 10
    err, seconds = timed(capsys, ["verify", "a.b.c", "--issuer", url], Exit.UNAVAILABLE)
    assert "the answer exceeded 65536 bytes" in err  # an issuer's discovery document: client/oidc.py's own limit
    err, seconds = timed(capsys, receive_argv(tmp_path, url), Exit.REFUSED)
    assert "the file is larger than 262144 bytes: not a credport envelope" in err
    assert seconds < 10


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_server_answering_a_byte_at_a_time_meets_the_deadline(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    raw_server: Any,
    tmp_path: Path,
    headers_too: bool,
) -> None:
    from client import http

    monkeypatch.setattr(http, "DEADLINE", 1.0)
    url = raw_server(drip(BODY_OF_NO_LENGTH, headers_too=headers_too)).url
    for argv in (["token", "--endpoint", url], ["verify", "a.b.c", "--issuer", url], receive_argv(tmp_path, url)):
        err, seconds = timed(capsys, argv, Exit.UNAVAILABLE)
        assert "timed out after 1 s: retry later" in err
        assert seconds < 5


def test_a_resolver_that_never_answers_meets_the_deadline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """getaddrinfo runs before any socket exists: a dead resolver (resolv.conf's timeout x attempts) must not hold the
    call past its deadline."""
    import socket

    from client import http

    real = socket.getaddrinfo

    def dead_resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.example.com":
            time.sleep(8)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(http, "DEADLINE", 1.0)
    monkeypatch.setattr(socket, "getaddrinfo", dead_resolver)
    err, seconds = timed(capsys, ["token", "--endpoint", "http://slow-dns.example.com"], Exit.UNAVAILABLE)
    assert "timed out after 1 s (resolving its host name): retry later" in err
    assert seconds < 3


def test_a_redirect_is_never_followed(capsys: pytest.CaptureFixture[str], raw_server: Any, tmp_path: Path) -> None:
    """A signed request redirected elsewhere would carry its X-Amz-Security-Token and signature there."""
    target = raw_server(endless(BODY_OF_NO_LENGTH))
    location = f"{target.url}/steal?X-Amz-Signature=abc".encode()
    redirect = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    url = raw_server(lambda conn, _: conn.sendall(redirect)).url
    session = session_file(tmp_path, b'{"token": "bearer-value"}')
    host = target.url.removeprefix("http://")
    cases = [
        (["token", "--endpoint", url], f"GET {url}/token answered 307 Temporary Redirect (a redirect to {host}"),
        (["session", "show", "--endpoint", url, "--token-file", str(session)], f"a redirect to {host}, not followed"),
        (["verify", "a.b.c", "--issuer", url], f"a redirect to {host}, not followed): is --issuer"),
        (receive_argv(tmp_path, url), f"a redirect to {host}, not followed): is the link complete?"),
    ]
    for argv, expected in cases:
        err = failed(capsys, argv, Exit.CONFIG)
        assert expected in err
        assert "steal" not in err
        assert "abc" not in err
    assert target.connections == 0


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("http://[::1", "it does not parse: Invalid IPv6 URL"),
        ("http://127.0.0.1:99999", "it does not parse: Port out of range"),
        ("http://127.0.0.1:0", "its port is not 1-65535"),
        ("http://127.0.0.1:http", "it does not parse"),
        (f"http://{'a' * 64}.example", "its host name is not a valid name"),
        ("https://", "it names no host"),
        ("http://exa mple.com", "it holds a space or a control character"),
    ],
)
@pytest.mark.parametrize("command", [["token"], ["session", "show"]])
def test_an_endpoint_that_is_not_a_url(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    endpoint: str,
    why: str,
    command: list[str],
) -> None:
    session = ["--token-file", str(session_file(tmp_path, b'{"token": "t"}'))] if command[0] == "session" else []
    err = failed(capsys, [*command, "--endpoint", endpoint, *session], Exit.USAGE)
    assert err.startswith("credport: --endpoint must be an http(s) URL, got '")
    assert why in err
    monkeypatch.setenv("CREDPORT_ENDPOINT", endpoint)
    err = failed(capsys, [*command, *session], Exit.USAGE)
    assert err.startswith("credport: $CREDPORT_ENDPOINT (--endpoint's default) must be an http(s) URL")


@pytest.mark.parametrize("option", ["--key", "--value-file", "--to-key"])
@pytest.mark.parametrize("kind", ["device", "fifo", "large"])
def test_input_files_are_regular_and_bounded(
    capsys: pytest.CaptureFixture[str], server: tuple[str, Answer], tmp_path: Path, option: str, kind: str
) -> None:
    url, answer = server
    regular = tmp_path / "small"
    regular.write_text("small")
    if kind == "device":
        named = Path("/dev/zero")
    elif kind == "fifo":
        named = tmp_path / "fifo"
        os.mkfifo(named)  # no writer: reading would wait forever
    else:
        named = tmp_path / "large"
        named.write_bytes(b"a" * (64 * 1024 + 1))
    from chalicelib.envelope import generate_recipient_key

    public = tmp_path / "public.pem"  # the value file is read after the key it is sealed to: a usable one
    public.write_bytes(bytes(generate_recipient_key(2048).public.as_pem(private=False)))
    files = {"--key": regular, "--value-file": regular, "--to-key": public, option: named}
    if option == "--key":
        argv = ["transfer", "receive", f"{url}/x", "--key", str(files["--key"])]
    else:
        argv = ["transfer", "send-file", "--name", "n", "--to-key", str(files["--to-key"])]
        argv += ["--value-file", str(files["--value-file"])]
    started = time.monotonic()
    err = failed(capsys, argv, Exit.USAGE)
    assert time.monotonic() - started < 5
    expected = "larger than 65536 bytes" if kind == "large" else ": not a regular file (a device, a pipe, a socket)"
    assert f"credport: {option} {named}" in err
    assert expected in err
    assert answer.seen == []


def shell(script: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["sh", "-c", script, str(BIN / "credport"), *args], capture_output=True, env=cli_env(), timeout=60, check=False
    )


def test_standard_output_closed_from_the_start_is_a_broken_pipe(server: tuple[str, Answer]) -> None:
    url, answer = server
    answer.body = b'{"token": "t"}'
    done = shell('"$0" token --endpoint "$1" >&-', url)
    assert (done.returncode, done.stderr) == (Exit.BROKEN_PIPE, b"")
    assert answer.seen == ["GET /token"]


def test_standard_error_closed_writes_nothing_to_standard_output(closed_port: str) -> None:
    done = shell('"$0" token --endpoint "$1" 2>&-', closed_port)
    assert (done.returncode, done.stdout) == (Exit.UNAVAILABLE, b"")
