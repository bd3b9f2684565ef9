"""Auto-id sessions through the app against moto: signed with the auto-id session key only, ended by revocation,
``end-grace`` and the end of a rotation's grace within the key-cache interval, a new ``jti`` per token, refreshes
in the audit log. Time is an injected clock, moved, never slept.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from chalice.test import Client

import app as credport_app
from chalicelib import sessions
from chalicelib.autoid import AutoIdService, ClientPolicy, Want, build_request
from chalicelib.aws import AwsServices
from chalicelib.aws.secrets import CURRENT
from chalicelib.config import get_settings
from chalicelib.envelope import decrypt_direct
from chalicelib.errors import InvalidToken
from chalicelib.sessions import SessionService
from chalicelib.sessions.keys import CACHE_TTL
from local.provision import Provisioned
from local.rotation import RotationDriver
from tests.conftest import ACCOUNT_ID, REGION, install_services
from tests.functional.test_autoid import ANSWER_BYTES, current_jwk, seal_to
from tests.functional.test_autoid_attacks import server_key
from tests.support import Clock, proxy_post

SECRET = "credport-dev/autoid/db-password"
UNAUTHORIZED = "Unauthorized"  # what the bearer authorizer raises; API Gateway answers it with its 401


def auto_id(body: Any) -> Any:
    """``POST /auto-id``: the one place these tests reach the auto-id function (its own Lambda function)."""
    return proxy_post("/auto-id", json.dumps(body))


class Rig:
    def __init__(self, autoid_service: AutoIdService, session_service: SessionService, clock: Clock) -> None:
        self.autoid, self.sessions, self.clock = autoid_service, session_service, clock

    def session(self, client: Client, entropy: bytes, generation: int = 1, client_id: str = "worker-1") -> str:
        """A fresh auto-id request proving ``generation``; the session token of the answer."""
        request, response_key = build_request(client_id, generation, entropy, Want(secret_id=SECRET), now=self.clock())
        response = auto_id({"jwe": seal_to(current_jwk(self.autoid), request)})
        assert response.status_code == 200, response.body
        return str(
            json.loads(decrypt_direct(json.loads(response.body)["jwe"], response_key, max_bytes=ANSWER_BYTES))[
                "session"
            ]["token"]
        )


@pytest.fixture
def rig(provisioned: Provisioned, aws: AwsServices, monkeypatch: pytest.MonkeyPatch) -> Rig:
    """Both services as a container builds them, on one injected clock (near real time: moto dates versions)."""
    monkeypatch.setattr("chalicelib.keys.recipient.generate_recipient_key", server_key)
    clock = Clock(float(int(time.time())))
    aws.secrets.create(SECRET, "hunter2-canary")
    services = install_services(clock=clock)
    return Rig(services.autoid, services.sessions, clock)


def part(token: str, index: int) -> dict[str, Any]:
    text = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def show(client: Client, token: str) -> int:
    return status(lambda: client.http.get("/session", headers=bearer(token)))


def refresh(client: Client, token: str) -> int:
    return status(lambda: client.http.post("/session/refresh", headers=bearer(token)))


def status(request: Callable[[], Any]) -> int:
    """The status API Gateway answers: chalice's test client runs the bearer authorizer and lets its
    ``Unauthorized`` through, which API Gateway turns into its 401 (UNAUTHORIZED gateway response)."""
    try:
        response = request()
    except Exception as raised:
        if str(raised) == UNAUTHORIZED:
            return 401
        raise
    assert response.status_code == 200, response.body
    return int(response.status_code)


def rejections(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(getattr(r, "reason", "")) for r in caplog.records if r.getMessage() == "session token rejected"]


def refusing_checks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The check each refusal's log line names: the 401 itself says nothing, the log says which check refused."""
    return [str(getattr(r, "check", "")) for r in caplog.records if r.getMessage() == "session token rejected"]


def test_a_client_gets_a_session_signed_with_the_autoid_key_and_refreshes_are_audited(
    rig: Rig, client: Client, aws: AwsServices, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    entropy = rig.autoid.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,))).entropy
    token = rig.session(client, entropy)
    r = get_settings().resources
    autoid_kid = aws.secrets.get_value(r.autoid_session_key_secret_arn, stage=CURRENT).version_id
    assert part(token, 0)["kid"] == autoid_kid
    assert autoid_kid != aws.secrets.get_value(r.session_key_secret_arn, stage=CURRENT).version_id
    claims = part(token, 1)
    assert (claims["sub"], claims["autoid_client"], claims["autoid_gen"]) == ("autoid:worker-1", "worker-1", 1)

    shown = client.http.get("/session", headers=bearer(token))
    assert json.loads(shown.body)["sub"] == "autoid:worker-1"
    fresh = json.loads(client.http.post("/session/refresh", headers=bearer(token)).body)["token"]
    assert part(fresh, 0)["kid"] == autoid_kid
    assert part(fresh, 1)["jti"] != claims["jti"]
    assert {k: part(fresh, 1)[k] for k in ("sub", "sid", "autoid_client", "autoid_gen")} == {
        k: claims[k] for k in ("sub", "sid", "autoid_client", "autoid_gen")
    }

    started = [r for r in caplog.records if r.getMessage() == "session started"]
    assert [(r.sub, r.sid, r.jti, r.autoid_client) for r in started] == [  # type: ignore[attr-defined]
        ("autoid:worker-1", claims["sid"], claims["jti"], "worker-1")
    ]
    (audit,) = [r for r in caplog.records if r.getMessage() == "session refreshed"]
    assert (audit.sub, audit.sid, audit.autoid_client) == ("autoid:worker-1", claims["sid"], "worker-1")  # type: ignore[attr-defined]
    assert (audit.jti, audit.refreshed_jti) == (part(fresh, 1)["jti"], claims["jti"])  # type: ignore[attr-defined]
    logged = caplog.text + "".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert token not in logged
    assert fresh not in logged
    assert token.split(".")[2] not in logged


def test_the_autoid_path_never_reads_the_main_session_key(
    rig: Rig, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    entropy = rig.autoid.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,))).entropy
    store, read = credport_app.services().aws.secrets, []
    for method in ("get_value", "describe"):
        original = getattr(store, method)

        def spy(secret_id: str, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            read.append(secret_id)
            return _original(secret_id, *args, **kwargs)

        monkeypatch.setattr(store, method, spy)
    rig.session(client, entropy)
    r = get_settings().resources
    assert r.autoid_session_key_secret_arn in read  # the auto-id session key signed the session
    assert r.session_key_secret_arn not in read
    assert store.describe(r.session_key_secret_arn).name not in read


def test_revoking_a_client_ends_its_sessions_within_the_cache_interval(
    rig: Rig, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    entropy = rig.autoid.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,))).entropy
    token = rig.session(client, entropy)
    assert show(client, token) == 200  # the record is now cached in this container
    rig.autoid.registry.revoke("worker-1")
    rig.clock.advance(CACHE_TTL - 1)
    assert show(client, token) == 200  # a container may know only after its cache interval...
    rig.clock.advance(1)
    caplog.clear()
    assert (refresh(client, token), show(client, token)) == (401, 401)  # ...and not a moment longer
    for view in (rig.sessions.refresh, rig.sessions.show):  # the views verify again, and refuse too
        with pytest.raises(InvalidToken):
            view(token)
    assert rejections(caplog) == ["auto-id client revoked"] * 4
    assert refusing_checks(caplog) == ["client"] * 4


def test_end_grace_ends_sessions_of_older_generations_only(
    rig: Rig, client: Client, aws: AwsServices, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gen1 = rig.autoid.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,))).entropy
    record = rig.autoid.registry.rotate("worker-1", "r1")
    gen2 = aws.s3.get(get_settings().resources.transfer_bucket, record.object_key(2)).body
    old, current = rig.session(client, gen1, 1), rig.session(client, gen2, 2)
    assert (part(old, 1)["autoid_gen"], part(current, 1)["autoid_gen"]) == (1, 2)
    assert show(client, old) == show(client, current) == 200

    rig.autoid.registry.end_grace("worker-1")
    rig.clock.advance(CACHE_TTL)
    caplog.clear()
    assert (refresh(client, old), show(client, old)) == (401, 401)
    assert rejections(caplog) == ["auto-id generation no longer accepted"] * 2
    assert refusing_checks(caplog) == ["client"] * 2
    assert show(client, current) == 200
    assert refresh(client, current) == 200


def test_a_rotations_grace_end_ends_older_generation_sessions_on_time(
    rig: Rig, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gen1 = rig.autoid.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,))).entropy
    rig.autoid.registry.rotate("worker-1", "r1")
    rig.clock.advance(get_settings().autoid_grace_period - 60)
    old = rig.session(client, gen1, 1)
    assert show(client, old) == 200  # its record is cached from here on...
    rig.clock.advance(61)
    # ...but the generation's grace is judged at each check: past it, the session is over at once.
    caplog.clear()
    assert (refresh(client, old), show(client, old)) == (401, 401)
    assert refusing_checks(caplog) == ["client"] * 2


def test_a_main_key_session_never_reads_a_client_record(rig: Rig, client: Client) -> None:
    started = rig.sessions.start("arn:aws:iam::123456789012:role/app")
    clients = rig.sessions.tokens._autoid_clients  # the cache behind the check
    assert isinstance(clients, sessions.CachedClientStanding)
    assert show(client, started["token"]) == refresh(client, started["token"]) == 200
    assert clients.reads == 0


def test_the_rotation_function_rotates_the_autoid_session_key_too(rig: Rig, client: Client, aws: AwsServices) -> None:
    entropy = rig.autoid.registry.enroll("worker-1", ClientPolicy(secrets=(SECRET,))).entropy
    before = rig.session(client, entropy)
    r = get_settings().resources
    main_before = aws.secrets.get_value(r.session_key_secret_arn, stage=CURRENT).version_id
    name = aws.secrets.describe(r.autoid_session_key_secret_arn).name
    handler = credport_app.app.handler_map["rotate_session_key"]
    token = RotationDriver(ACCOUNT_ID, REGION).rotate(name, handler).token
    assert aws.secrets.get_value(r.autoid_session_key_secret_arn, stage=CURRENT).version_id == token
    assert aws.secrets.get_value(r.session_key_secret_arn, stage=CURRENT).version_id == main_before
    rig.clock.advance(CACHE_TTL + 1)  # the starter's key cache expires like any container's
    after = rig.session(client, entropy)
    assert part(after, 0)["kid"] == token
    assert show(client, after) == 200
    assert show(client, before) == 200  # the previous key stays honoured for its window
