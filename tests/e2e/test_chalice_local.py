"""End to end over HTTP: ``python -m local chalice`` serves the app with `chalice local` against the local stack, and
plain `chalice local` without it names what is missing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from chalicelib.api import NO_IAM_UNDER_CHALICE_LOCAL
from chalicelib.config import Env
from local.launcher import REPO_ROOT, interrupt
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
START_TIMEOUT = 60.0  # seconds: chalice imports the app, then binds
STOP_TIMEOUT = 15.0


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(command: list[str], env: dict[str, str], port: int, log: Path) -> Served:
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    served = Served(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if requests.get(served.url + "/health", timeout=2).status_code == 200:
                return served
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(served)
            pytest.fail(f"chalice local did not serve /health:\n{served.log_text()}")
        time.sleep(0.2)


def stop(served: Served) -> int:
    """Ctrl-C, as a developer stops it (a kill's negative code when it does not stop in time)."""
    return interrupt(served.process, STOP_TIMEOUT)


def local_chalice(stack: RunningStack, tmp_path: Path, *args: str) -> Served:
    port = free_port()
    command = [sys.executable, "-m", "local", "chalice", "--port", str(port), *args]
    return start(command, stack.env(CREDPORT_LOCAL_STATE_DIR=str(stack.state_dir)), port, tmp_path / "chalice.log")


@pytest.fixture
def served(stack: RunningStack, tmp_path: Path) -> Iterator[Served]:
    # The stack's own API makes the signing keys first, as its API handler's role (their key policies name their
    # creator, which tests/e2e/test_local_iam.py checks): chalice local runs as the developer and would otherwise
    # create them itself on its first JWKS read.
    from requests_aws4auth import AWS4Auth

    creds = stack.credentials()
    auth = AWS4Auth(creds.access_key, creds.secret_key, stack.region, "execute-api")
    assert requests.get(stack.api + "/token", auth=auth, timeout=30).status_code == 200
    # No autoreload: an edit anywhere in the checkout would restart the server in the middle of a test.
    running = local_chalice(stack, tmp_path, "--no-autoreload")
    yield running
    stop(running)


def test_public_documents_name_chalice_locals_own_issuer(stack: RunningStack, served: Served) -> None:
    discovery = requests.get(served.url + "/.well-known/openid-configuration", timeout=10)
    assert discovery.status_code == 200, served.log_text()
    assert discovery.json()["issuer"] == served.url
    assert discovery.json()["jwks_uri"] == served.url + "/.well-known/jwks.json"
    jwks = requests.get(served.url + "/.well-known/jwks.json", timeout=10)
    assert jwks.status_code == 200
    kids = {key["kid"] for key in jwks.json()["keys"]}
    assert kids  # the stack's signing keys, read from its embedded KMS as the developer
    assert kids == {key["kid"] for key in requests.get(stack.api + "/.well-known/jwks.json", timeout=10).json()["keys"]}
    for path in ("/transfer/import-key", "/auto-id/keys"):
        response = requests.get(served.url + path, timeout=10)
        assert response.status_code == 200, path
        assert response.json()["keys"], path


def test_an_iam_route_says_it_needs_the_stacks_api_even_when_signed(stack: RunningStack, served: Served) -> None:
    """chalice local checks no signature and passes no identity: a SigV4-signed request is refused all the same."""
    request = AWSRequest(method="GET", url=served.url + "/token")
    SigV4Auth(stack.credentials(), "execute-api", stack.region).add_auth(request)
    response = requests.get(request.url, headers=dict(request.headers), timeout=10)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "message": NO_IAM_UNDER_CHALICE_LOCAL}
    start_session = requests.post(served.url + "/session", timeout=10)
    assert start_session.status_code == 403
    assert start_session.json()["message"] == NO_IAM_UNDER_CHALICE_LOCAL


def test_a_bearer_route_answers_401_for_a_session_of_another_issuer(stack: RunningStack, served: Served) -> None:
    """The bearer authorizer runs under chalice local; a session started on the stack's API names the stack as its
    issuer, so chalice local refuses it, with API Gateway's 401 (not a dropped connection)."""
    request = AWSRequest(method="POST", url=stack.api + "/session", data=b"")
    SigV4Auth(stack.credentials(), "execute-api", stack.region).add_auth(request)
    started = requests.post(request.url, headers=dict(request.headers), timeout=10)
    assert started.status_code == 200, started.text
    token = started.json()["token"]
    assert requests.get(stack.api + "/session", headers={"authorization": f"Bearer {token}"}, timeout=10).ok
    response = requests.get(served.url + "/session", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_auto_id_is_not_a_chalice_route(served: Served) -> None:
    """POST /auto-id is its own function behind API Gateway's proxy integration, which chalice local does not have."""
    response = requests.post(served.url + "/auto-id", json={}, timeout=10)
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_ctrl_c_stops_it_with_autoreload_too(stack: RunningStack, tmp_path: Path) -> None:
    """chalice's default: a parent that restarts a worker on code changes; Ctrl-C stops both, freeing the port."""
    running = local_chalice(stack, tmp_path)
    assert stop(running) == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", int(running.url.rsplit(":", 1)[1])))  # raises if the worker still listens


def test_without_a_stack_it_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local", "chalice"],
        cwd=REPO_ROOT,
        env={**os.environ, "CREDPORT_LOCAL_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4
    assert result.stderr == f"python -m local: no local stack running (looked in {tmp_path}): start one with make run\n"


def test_plain_chalice_local_without_the_stack_names_the_missing_variables(tmp_path: Path) -> None:
    port = free_port()
    chalice = str(Path(sys.executable).parent / "chalice")
    served = start(
        [chalice, "local", "--port", str(port), "--no-autoreload"],
        {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # an empty environment: no AWS, no credport variable
        port,
        tmp_path / "plain.log",
    )
    try:
        response = requests.get(served.url + "/.well-known/openid-configuration", timeout=10)
    finally:
        stop(served)
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "configuration_error"
    assert body["message"].startswith(
        f"The service is misconfigured: missing {Env.TRANSFER_BUCKET}, {Env.PUBLIC_BUCKET}, "
    ), body
    assert f"{Env.LINK_SIGNER_ROLE_ARN}." in body["message"]
    assert "`.venv/bin/python -m local chalice`" in body["message"]
