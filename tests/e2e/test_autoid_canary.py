"""The auto-id canary, end to end with the envelope signer: a local stack started with ``--token-signer envelope``
keeps the token-signing private keys as secrets; a client enrolled (with ``credport-admin``) with the broadest
policy enrolment allows asks, over HTTP and with no AWS credentials, for every secret in the account outside the
serving prefixes, and gets 403 for each; enrolment of ``<prefix>/*`` is refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.internal_secrets import TOKEN_SIGNING, internal_kind
from tests.e2e.conftest import RunningStack, launch_e2e
from tests.e2e.test_autoid import admin, get
from tests.e2e.test_token_service import BIN, get_token, run

pytestmark = pytest.mark.e2e
PREFIX = "credport-dev"


@pytest.fixture(scope="module")
def envelope_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = launch_e2e(tmp_path_factory.mktemp("canary-stack"), "--quiet", "--token-signer", "envelope")
    yield running
    assert running.stop() == 0, running.log_text()


def test_the_broadest_client_gets_403_for_every_internal_secret(envelope_stack: RunningStack, tmp_path: Path) -> None:
    stack = envelope_stack
    assert stack.info["app_env"]["CREDPORT_TOKEN_SIGNER"] == "envelope"
    get_token(stack)  # the first signing keys, then a rotation: current, pending and previous keys as secrets
    rotated = run(stack, str(BIN / "credport-admin"), "token", "rotate", "--force", "--local")
    assert rotated.returncode == 0, rotated.stderr
    served = f"{PREFIX}/autoid/canary-{uuid.uuid4().hex[:6]}"
    stack.client("secretsmanager").create_secret(Name=served, SecretString="canary-served")

    refused = admin(stack, "enroll", "canary-greedy", "--secret", f"{PREFIX}/*", "--out", str(tmp_path / "no.json"))
    assert refused.returncode == 2
    assert "refused" in refused.stderr
    assert f"{PREFIX}/autoid/" in refused.stderr
    assert not (tmp_path / "no.json").exists()

    serving = (f"{PREFIX}/autoid/", f"{PREFIX}/imported/")  # the default serving prefixes
    bundle = tmp_path / "bundle.json"
    enrolled = admin(
        stack, "enroll", "canary-broadest", *(a for p in serving for a in ("--secret", p + "*")), "--out", str(bundle)
    )
    assert enrolled.returncode == 0, enrolled.stderr
    answer = get(bundle, "--secret-id", served, "--format", "value")
    assert answer.stdout == "canary-served\n", answer.stderr  # the client does get what it may

    listed = stack.client("secretsmanager").list_secrets(MaxResults=100, IncludePlannedDeletion=True)["SecretList"]
    internal = sorted(s["Name"] for s in listed if not s["Name"].startswith(serving))
    assert sum(TOKEN_SIGNING.contains(PREFIX, name) for name in internal) >= 3  # the private signing keys
    for name in internal:
        assert internal_kind(PREFIX, name) is not None, f"{name} is not in chalicelib/internal_secrets.py"
        result = get(bundle, "--secret-id", name)
        assert result.returncode == 1, (name, result.stdout)
        assert "403" in result.stderr, (name, result.stderr)
        assert "forbidden" in result.stderr, (name, result.stderr)
        assert "PRIVATE KEY" not in result.stdout + result.stderr
    log = Path(stack.log).read_text()
    assert "PRIVATE KEY" not in log
    assert json.loads(bundle.read_text())["client_id"] == "canary-broadest"
