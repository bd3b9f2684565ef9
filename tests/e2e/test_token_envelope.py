"""The token service end to end with the envelope signer: a local stack started with ``--token-signer envelope``
(template parameter TokenSigner), signed calls over HTTP, the operator CLI, and an independent JOSE library."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jwt as pyjwt
import pytest
import requests

from tests.e2e.conftest import RunningStack, launch_e2e
from tests.e2e.test_token_service import BIN, _eventually, _kid, _kids, credport_verify, get_token, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def envelope_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = launch_e2e(tmp_path_factory.mktemp("envelope-stack"), "--quiet", "--token-signer", "envelope")
    yield running
    assert running.stop() == 0, running.log_text()


def _signing_secrets(stack: RunningStack) -> dict[str, str]:
    """Each signing-key secret's ARN and its key's thumbprint, read straight from the embedded AWS."""
    from joserfc.jwk import RSAKey

    client = stack.client("secretsmanager")
    found = {}
    for listed in client.list_secrets(MaxResults=100)["SecretList"]:
        if listed["Name"].startswith("credport-dev/token-signing/"):
            pem = client.get_secret_value(SecretId=listed["ARN"])["SecretString"]
            found[listed["ARN"]] = RSAKey.import_key(pem).thumbprint()
    return found


def test_the_stack_signs_with_envelope_keys_that_verify_through_discovery(envelope_stack: RunningStack) -> None:
    stack = envelope_stack
    token = get_token(stack, "?aud=sts.amazonaws.com&ttl=900")["token"]
    assert stack.info["app_env"]["CREDPORT_TOKEN_SIGNER"] == "envelope"
    assert _kid(token) in _signing_secrets(stack).values()  # signed by a key kept in Secrets Manager
    aliases = [alias["AliasName"] for alias in stack.client("kms").list_aliases()["Aliases"]]
    assert not [name for name in aliases if "/signing/" in name]  # and no KMS signing key was made
    discovery = requests.get(f"{stack.api}/.well-known/openid-configuration", timeout=5).json()
    key = pyjwt.PyJWKClient(discovery["jwks_uri"], cache_keys=False).get_signing_key_from_jwt(token)
    claims = pyjwt.decode(token, key.key, algorithms=["RS256"], audience="sts.amazonaws.com", issuer=stack.api)
    assert claims["exp"] - claims["iat"] == 900
    assert credport_verify(stack, token, "--aud", "sts.amazonaws.com").returncode == 0


def test_rotation_and_revocation_from_the_operator_cli(envelope_stack: RunningStack) -> None:
    stack = envelope_stack
    before = get_token(stack)["token"]
    old_kids = _kids(stack)
    result = run(stack, str(BIN / "credport-admin"), "token", "rotate", "--force", "--local")
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)  # one per enabled algorithm
    assert sorted(reports) == ["ES384", "RS256"]
    for report in reports.values():
        assert ":secretsmanager:" in report["current"]  # the CLI followed the stack's signer (a stack output)
    assert _eventually(lambda: _kids(stack) != old_kids), "the API kept serving the old JWKS"
    assert len(_kids(stack)) == 6  # previous, current and pending of each algorithm
    assert credport_verify(stack, before).returncode == 0  # signed by what is now the previous key
    after = get_token(stack)["token"]
    assert _kid(after) != _kid(before)

    result = run(stack, str(BIN / "credport-admin"), "token", "revoke-current", "--alg", "RS256", "--local")
    assert result.returncode == 0, result.stderr
    assert _eventually(lambda: _kid(after) not in _kids(stack))
    assert credport_verify(stack, after).returncode == 1
    fresh = get_token(stack)["token"]  # the API heard the key event and dropped the revoked key
    assert _kid(fresh) != _kid(after)
    assert credport_verify(stack, fresh).returncode == 0
    log = Path(stack.log).read_text()
    assert "PRIVATE KEY" not in log
