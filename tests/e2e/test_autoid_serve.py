"""``credport autoid serve`` against the local stack, used by an unmodified boto3 through its container provider.

The SDK process gets nothing but ``AWS_CONTAINER_CREDENTIALS_FULL_URI``, ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``
and ``AWS_ENDPOINT_URL`` (the embedded AWS): no keys, no profile, no config file.
"""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import RunningStack
from tests.e2e.test_autoid import _role, enroll, workload_env

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
ACCOUNT = "123456789012"
SDK_SCRIPT = "import boto3; print(boto3.client('sts', region_name={region!r}).get_caller_identity()['Arn'])"


class Served:
    def __init__(self, process: subprocess.Popen[str], exports: dict[str, str]) -> None:
        self.process, self.exports = process, exports
        self.url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        self.token_file = Path(exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])


def start_serve(bundle: Path, home: Path, *args: str) -> Served:
    process = subprocess.Popen(
        [str(BIN / "credport"), "autoid", "serve", "--bundle", str(bundle), *args],
        env=workload_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    exports = {}
    for _ in range(2):
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            process.kill()
            pytest.fail(f"serve printed no exports: {process.communicate()[1]}")
        assert line.startswith("export "), line
        name, value = line.removeprefix("export ").strip().split("=", 1)
        exports[name] = value
    return Served(process, exports)


def sdk(stack: RunningStack, home: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in workload_env(home).items() if not k.startswith("AWS_")}
    env.update(variables, AWS_ENDPOINT_URL=stack.info["aws_endpoint"])
    return subprocess.run(
        [sys.executable, "-c", SDK_SCRIPT.format(region=stack.info["region"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def served(stack: RunningStack, tmp_path: Path) -> Iterator[tuple[Served, str, str]]:
    role = _role(stack)
    client_id, bundle = enroll(stack, tmp_path, "--role", f"arn:aws:iam::{ACCOUNT}:role/credport-dev-autoid-*")
    home = tmp_path / "home"
    home.mkdir()
    serve = start_serve(bundle, home, "--role-arn", role, "--token-file", str(tmp_path / "serve.token"))
    yield serve, role, client_id
    if serve.process.poll() is None:
        serve.process.kill()
        serve.process.communicate()


def test_an_unmodified_boto3_gets_the_role_through_the_container_provider(
    stack: RunningStack, served: tuple[Served, str, str], tmp_path: Path
) -> None:
    serve, role, client_id = served
    assert serve.url.startswith("http://127.0.0.1:")
    assert serve.token_file == (tmp_path / "serve.token").resolve()
    assert serve.token_file.stat().st_mode & 0o777 == 0o600
    assert "\n" not in serve.token_file.read_text()  # botocore refuses a token holding a newline
    expected = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[1]}/autoid-{client_id}"
    ok = sdk(stack, tmp_path, **serve.exports)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == expected

    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token")
    refused = sdk(stack, tmp_path, **{**serve.exports, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(wrong)})
    assert refused.returncode != 0
    assert "CredentialRetrievalError" in refused.stderr
    assert "403" in refused.stderr
    no_token = sdk(stack, tmp_path, AWS_CONTAINER_CREDENTIALS_FULL_URI=serve.url)
    assert no_token.returncode != 0
    assert "401" in no_token.stderr

    assert serve.process.poll() is None  # it survives refused callers
    assert sdk(stack, tmp_path, **serve.exports).stdout.strip() == expected
    direct = requests.get(serve.url, headers={"Authorization": serve.token_file.read_text()}, timeout=10)
    assert set(direct.json()) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}

    serve.process.send_signal(signal.SIGTERM)
    _, err = serve.process.communicate(timeout=15)
    assert serve.process.returncode == 0, err
    assert "Traceback" not in err
    assert all(line.startswith("credport: ") for line in err.splitlines())


def test_sigint_stops_it_cleanly_and_a_default_token_file_is_removed(stack: RunningStack, tmp_path: Path) -> None:
    role = _role(stack)
    _, bundle = enroll(stack, tmp_path, "--role", role)
    home = tmp_path / "home"
    home.mkdir()
    serve = start_serve(bundle, home, "--role-arn", role, "--state-dir", str(tmp_path / "state"))
    assert serve.token_file.parent == (tmp_path / "state").resolve()
    assert serve.token_file.exists()
    serve.process.send_signal(signal.SIGINT)
    _, err = serve.process.communicate(timeout=15)
    assert serve.process.returncode == 0, err
    assert not serve.token_file.exists()


def test_the_broker_unreachable_is_a_503_with_a_json_error(stack: RunningStack, tmp_path: Path) -> None:
    role = _role(stack)
    _, bundle = enroll(stack, tmp_path, "--role", role)
    home = tmp_path / "home"
    home.mkdir()
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    serve = start_serve(bundle, home, "--role-arn", role, "--endpoint", closed, "--state-dir", str(tmp_path / "s"))
    try:
        answer = requests.get(serve.url, headers={"Authorization": serve.token_file.read_text()}, timeout=30)
        assert answer.status_code == 503
        assert answer.json() == {"error": "broker_unreachable", "message": "the credport endpoint could not be reached"}
        assert serve.process.poll() is None
    finally:
        serve.process.send_signal(signal.SIGTERM)
        _, err = serve.process.communicate(timeout=15)
    assert serve.process.returncode == 0
    assert "no credentials yet" in err


def test_a_rebound_host_escapes_in_the_request_and_a_slowloris_get_nowhere(
    stack: RunningStack, served: tuple[Served, str, str], tmp_path: Path
) -> None:
    serve, _, _ = served
    token = serve.token_file.read_text()
    port = int(serve.url.rsplit(":", 1)[1].split("/", 1)[0])
    rebound = requests.get(serve.url, headers={"Authorization": token, "Host": f"attacker.example:{port}"}, timeout=10)
    assert (rebound.status_code, rebound.json()["error"]) == (403, "bad_host")
    # More idle connections than it serves at once: the oldest make way for newcomers, a caller holding the token
    # is answered within botocore's 2 s, and none of them is held past its 2 s for the headers.
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        started = time.monotonic()
        held = requests.get(serve.url, headers={"Authorization": token}, timeout=2)
        assert held.status_code == 200
        assert time.monotonic() - started < 2
        for connection in idle:
            connection.settimeout(max(0.1, started + 4 - time.monotonic()))
            assert connection.recv(100) == b""  # closed, not answered
    finally:
        for connection in idle:
            connection.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"GET /\x1b[2J\x1b]0;PWNED\x07/x HTTP/1.0\r\n\r\n")
        assert connection.recv(100).startswith(b"HTTP/1.0 401")
    ok = sdk(stack, tmp_path, **serve.exports)
    assert ok.returncode == 0, ok.stderr
    serve.process.send_signal(signal.SIGTERM)
    _, err = serve.process.communicate(timeout=15)
    assert serve.process.returncode == 0, err
    assert "\x1b" not in err
    assert "\x07" not in err
    assert "credport: serve: GET /?[2J?]0;PWNED?/x -> 401" in err.splitlines()
