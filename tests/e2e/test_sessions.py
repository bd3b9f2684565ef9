"""Sessions end to end: start with a signed request, refresh, rotate the key, refresh again."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import jwt as pyjwt
import pytest
import requests

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
SECRET = "credport-dev/session-key"


def credport(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "credport"), *args, "--endpoint", stack.api],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def rotate_session_key(stack: RunningStack) -> dict[str, str]:
    env = {**stack.env(), "CREDPORT_LOCAL_STATE_DIR": str(stack.state_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "local", "rotate", SECRET],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rotated: dict[str, str] = json.loads(result.stdout)
    return rotated


def saved(token_file: Path) -> dict[str, object]:
    session: dict[str, object] = json.loads(token_file.read_text())
    return session


def test_start_refresh_rotate_refresh(stack: RunningStack, tmp_path: Path) -> None:
    token_file = tmp_path / "session.json"
    started = credport(stack, "session", "start", "--token-file", str(token_file))
    assert started.returncode == 0, started.stderr
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "token" not in json.loads(started.stdout)  # never printed unless asked
    first = saved(token_file)
    assert first["expires_in"] == 420

    shown = credport(stack, "session", "show", "--token-file", str(token_file))
    assert json.loads(shown.stdout)["sub"] == "arn:aws:iam::123456789012:user/credport-developer"

    refreshed = credport(stack, "session", "refresh", "--token-file", str(token_file))
    assert refreshed.returncode == 0, refreshed.stderr
    second = saved(token_file)
    assert second["session_id"] == first["session_id"]
    assert second["session_expires_at"] == first["session_expires_at"]

    rotation = rotate_session_key(stack)
    # The token signed before the rotation (now by the previous key) still refreshes, onto the new key.
    again = credport(stack, "session", "refresh", "--token-file", str(token_file))
    assert again.returncode == 0, again.stderr
    third = saved(token_file)
    assert pyjwt.get_unverified_header(str(third["token"]))["kid"] == rotation["token"]
    assert third["session_id"] == first["session_id"]
    assert (
        json.loads(credport(stack, "session", "show", "--token-file", str(token_file)).stdout)["session_id"]
        == (first["session_id"])
    )


@pytest.mark.parametrize("authorization", [None, "Bearer not.a.token", "Basic dXNlcjpwdw==", "Bearer "])
def test_every_bearer_failure_is_the_same_401(stack: RunningStack, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in (("GET", "/session"), ("POST", "/session/refresh")):
        response = requests.request(method, stack.api + path, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json() == {
            "error": "invalid_token",
            "message": "The bearer token is missing, invalid or expired.",
        }
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_an_authorizer_outage_is_a_503_to_retry_not_a_500(stack: RunningStack) -> None:
    # The stack plugin (tests/e2e/stack_plugin.py, OUTAGE_TOKEN) makes the authorizer meet a throttled Secrets
    # Manager for this one token. Not imported here: importing the plugin would add its routes to this process's app.
    outage = {"Authorization": "Bearer e2e-authorizer-outage"}
    response = requests.get(stack.api + "/session", headers=outage, timeout=10)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json()["error"] == "service_unavailable"


def test_a_session_cannot_be_started_without_a_signature(stack: RunningStack) -> None:
    response = requests.post(stack.api + "/session", timeout=10)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
