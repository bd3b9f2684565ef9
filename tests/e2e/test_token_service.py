"""Token service end to end: signed calls over HTTP, the CLIs, an independent JOSE library, rotations."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def get_token(stack: RunningStack, query: str = "") -> dict[str, Any]:
    request = AWSRequest(method="GET", url=f"{stack.api}/token{query}")
    SigV4Auth(stack.credentials(), "execute-api", "us-east-1").add_auth(request)
    response = requests.get(request.url, headers=dict(request.headers), timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def run(stack: RunningStack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**stack.env(), "CREDPORT_LOCAL_STATE_DIR": str(stack.state_dir)}
    return subprocess.run(
        list(args), env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )


def identity(stack: RunningStack, claims: dict[str, Any]) -> dict[str, Any]:
    """The caller's AWS identity in a token: one object under the namespace claim, by default ``<issuer>/``."""
    value: dict[str, Any] = claims[f"{stack.api}/"]
    return value


def credport_verify(stack: RunningStack, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(stack, str(BIN / "credport"), "verify", "-", "--issuer", stack.api, *extra, stdin=token)


def test_a_signed_token_request_gives_a_token_credport_verify_accepts(stack: RunningStack) -> None:
    body = get_token(stack, "?aud=sts.amazonaws.com&ttl=900")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    result = credport_verify(stack, body["token"], "--aud", "sts.amazonaws.com")
    assert result.returncode == 0, result.stderr
    claims = json.loads(result.stdout)
    assert claims["sub"] == "arn:aws:iam::123456789012:user/credport-developer"
    assert claims["iss"] == stack.api
    assert claims["exp"] - claims["iat"] == 900


def test_credport_verify_refuses_a_tampered_token_and_a_wrong_audience(stack: RunningStack) -> None:
    token = get_token(stack)["token"]
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload[:-4]}AAAA.{signature}"
    refused = credport_verify(stack, tampered)
    assert refused.returncode == 1
    assert "credport: invalid token" in refused.stderr
    assert "(refused by the signature check" in refused.stderr
    wrong_aud = credport_verify(stack, token, "--aud", "api://someone-else")
    assert wrong_aud.returncode == 1
    expected = "its audience is 'sts.amazonaws.com', not --aud 'api://someone-else' (refused by the aud check"
    assert expected in wrong_aud.stderr


def test_credport_token_signs_with_the_developer_profile(stack: RunningStack) -> None:
    result = run(stack, str(BIN / "credport"), "token", "--aud", "sts.amazonaws.com", "--endpoint", stack.api)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert credport_verify(stack, token).returncode == 0
    role = run(
        stack, str(BIN / "credport"), "token", "--endpoint", stack.api, "--profile", "credport-local-workload", "--json"
    )
    assert role.returncode == 0, role.stderr
    verified = json.loads(credport_verify(stack, json.loads(role.stdout)["token"]).stdout)
    assert verified["sub"] == "arn:aws:iam::123456789012:role/credport-local-workload"
    assert identity(stack, verified)["principal_type"] == "role"


def test_credport_token_reports_refusals(stack: RunningStack) -> None:
    """The local stack allows sts.amazonaws.com and https audiences: the token policy refuses any other (403), and
    the CLI says so in one line, exit 1 (REFUSED); every kind of refusal is in test_token_v2.py."""
    result = run(stack, str(BIN / "credport"), "token", "--aud", "api://not-allowed", "--endpoint", stack.api)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "403 Forbidden: audience_not_allowed" in result.stderr


def test_pyjwt_verifies_through_discovery_over_http(stack: RunningStack) -> None:
    token = get_token(stack)["token"]
    discovery = requests.get(f"{stack.api}/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == stack.api
    client = pyjwt.PyJWKClient(discovery["jwks_uri"], cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    claims = pyjwt.decode(
        token,
        key.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience="sts.amazonaws.com",
        issuer=discovery["issuer"],
    )
    assert identity(stack, claims)["aws_account"] == "123456789012"


def _discovery(stack: RunningStack) -> dict[str, Any]:
    document: dict[str, Any] = requests.get(f"{stack.api}/.well-known/openid-configuration", timeout=5).json()
    return document


def _kids(stack: RunningStack) -> list[str]:
    return [k["kid"] for k in requests.get(f"{stack.api}/.well-known/jwks.json", timeout=5).json()["keys"]]


def _kid(token: str) -> str:
    return str(pyjwt.get_unverified_header(token)["kid"])


def _eventually(check: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def test_rotation_on_demand_keeps_old_tokens_valid_and_reaches_running_containers(stack: RunningStack) -> None:
    before = get_token(stack)["token"]
    old_kids = _kids(stack)
    result = run(stack, str(BIN / "credport-admin"), "token", "rotate", "--force", "--local")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # The running API learns of the rotation through the key-events topic (SNS -> its key_events handler).
    assert _eventually(lambda: _kids(stack) != old_kids), "the API kept serving the old JWKS"
    algorithms = _discovery(stack)["id_token_signing_alg_values_supported"]
    assert len(_kids(stack)) == 3 * len(algorithms)  # previous, current, pending of each enabled algorithm
    assert credport_verify(stack, before).returncode == 0  # signed by what is now the previous key
    after = get_token(stack)["token"]
    assert _kid(after) != _kid(before)
    assert _kid(after) in _kids(stack)
    assert {alg: r["kind"] for alg, r in report.items()} == dict.fromkeys(algorithms, "rotate")  # one per algorithm


def test_revoking_the_current_key_invalidates_its_tokens_at_once(stack: RunningStack) -> None:
    compromised = get_token(stack)["token"]
    result = run(stack, str(BIN / "credport-admin"), "token", "revoke-current", "--local")
    assert result.returncode == 0, result.stderr
    assert _eventually(lambda: _kid(compromised) not in _kids(stack))
    assert credport_verify(stack, compromised).returncode == 1
    fresh = get_token(stack)["token"]  # the API's cached key is disabled: it re-reads the aliases and signs
    assert credport_verify(stack, fresh).returncode == 0
