"""The session-key rotation function against moto, step by step and under traffic from two containers.

Secrets Manager's clock (version created dates) follows the test's clock, so the previous-key window, which is
measured from the current version's creation, is exercised in simulated time.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import moto.secretsmanager.models as moto_secrets
import pytest
from joserfc.util import urlsafe_b64decode

import local.rotation
from chalicelib.aws import AwsNotFound, AwsServices, Publisher
from chalicelib.aws.secrets import CURRENT, PENDING, PREVIOUS
from chalicelib.config import get_settings, reset_settings
from chalicelib.errors import BadRequest, InvalidToken
from chalicelib.sessions.exceptions import RotationRequestRefused
from chalicelib.sessions.keys import SessionKey, decode_key, encode_key
from chalicelib.sessions.rotation import SessionKeyRotation
from chalicelib.sessions.service import SessionService
from chalicelib.sessions.tokens import SESSION_AUDIENCE, sign
from local.provision import Provisioned
from local.rotation import RotationDriver, RotationFailed
from tests.conftest import ACCOUNT_ID, REGION
from tests.support import Clock

Event = dict[str, Any]


class FlakyPublisher(Publisher):
    """SNS that fails the first ``failures`` publishes (after which it publishes for real)."""

    def __init__(self, client: Any, failures: int = 1) -> None:
        super().__init__(client)
        self.failures = failures

    def publish(self, topic_arn: str, message: Any, **kwargs: Any) -> str:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("sns unreachable")
        return super().publish(topic_arn, message, **kwargs)


def failing_once(rotation: SessionKeyRotation, step: str) -> Callable[[Event, Any], None]:
    """The rotation function, with the invocation of ``step`` failing once (a Lambda timeout, say)."""
    fired: list[str] = []

    def function(event: Event, _context: Any) -> None:
        if event["Step"] == step and not fired:
            fired.append(step)
            raise TimeoutError(step)
        rotation.handle(event)

    return function


class Rig:
    def __init__(self, aws: AwsServices, clock: Clock) -> None:
        self.services, self.clock, self.settings = aws, clock, get_settings()
        self.arn = self.settings.resources.session_key_secret_arn
        self.name = aws.secrets.describe(self.arn).name
        self.driver = RotationDriver(ACCOUNT_ID, REGION)
        self.rotation = self.rotation_with(aws.sns)
        self.queue = aws.factory.client("sqs").create_queue(QueueName="session-key-events-tap")["QueueUrl"]
        topic = self.settings.resources.key_events_topic_arn
        aws.sns.subscribe(topic, protocol="sqs", endpoint=aws.sqs.arn_of(self.queue))

    def rotation_with(self, publisher: Publisher) -> SessionKeyRotation:
        topic = self.settings.resources.key_events_topic_arn
        return SessionKeyRotation(
            self.services.secrets,
            publisher,
            secret_arns=(self.arn, self.settings.resources.autoid_session_key_secret_arn),
            key_events_topic=topic,
        )

    def step(self, token: str, step: str, rotation: SessionKeyRotation | None = None) -> None:
        (rotation or self.rotation).handle({"SecretId": self.arn, "ClientRequestToken": token, "Step": step})

    def rotate(self, function: Callable[[Event, Any], None] | None = None) -> str:
        return self.driver.rotate(self.name, function or (lambda event, _c: self.rotation.handle(event))).token

    def stages(self) -> dict[str, set[str]]:
        return {v: set(s) for v, s in self.services.secrets.describe(self.arn).versions.items()}

    def current(self) -> str:
        return self.services.secrets.get_value(self.arn, stage=CURRENT).version_id

    def key(self, stage: str = CURRENT, version_id: str | None = None) -> bytes:
        return decode_key(self.services.secrets.get_value(self.arn, stage=stage, version_id=version_id).value)

    def events(self) -> list[Event]:
        found: list[Event] = []
        for _ in range(3):
            for message in self.services.sqs.receive(self.queue, max_messages=10):
                found.append(json.loads(json.loads(message.body)["Message"]))
                self.services.sqs.delete(self.queue, message.receipt_handle)
        return found

    def container(self) -> SessionService:
        """A server container: its own clients and its own key cache."""
        return SessionService(get_settings(), AwsServices(self.services.factory), clock=self.clock)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Near real time; Secrets Manager (moto) and the rotation driver date their versions by it."""
    fake = Clock(float(int(time.time())))
    monkeypatch.setattr(moto_secrets, "time", SimpleNamespace(time=fake))
    monkeypatch.setattr(local.rotation, "time", SimpleNamespace(time=fake))
    return fake


@pytest.fixture
def rig(provisioned: Provisioned, aws: AwsServices, clock: Clock) -> Rig:
    return Rig(aws, clock)


def refusing_checks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The check each session-token refusal's log line names (the caller only sees the one 401)."""
    return [str(getattr(r, "check", "")) for r in caplog.records if r.getMessage() == "session token rejected"]


def kid_of(token: str) -> str:
    return str(json.loads(urlsafe_b64decode(token.split(".", maxsplit=1)[0].encode()))["kid"])


def rotated(token: str, previous: str) -> Event:
    return {"type": "session-key-rotated", "version_id": token, "previous_version_id": previous}


# 1. The four steps, one at a time, then through the driver.


def test_each_step_does_its_part_and_only_once(rig: Rig) -> None:
    old, old_key = rig.current(), rig.key()
    token, resumed = rig.driver.stage_pending(rig.name)
    assert not resumed
    rig.step(token, "createSecret")
    pending = rig.key(PENDING, token)
    assert len(pending) == 32
    assert pending != old_key
    rig.step(token, "createSecret")
    assert rig.key(PENDING, token) == pending
    staged = rig.stages()
    assert staged[token] == {PENDING}
    rig.step(token, "setSecret")
    rig.step(token, "testSecret")
    assert rig.stages() == staged
    assert rig.events() == []
    rig.step(token, "finishSecret")
    finished = rig.stages()
    assert CURRENT in finished[token]
    assert finished[old] == {PREVIOUS}
    assert (rig.key(), rig.key(PREVIOUS)) == (pending, old_key)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        rig.step(token, step)  # the token is AWSCURRENT: no step changes anything again
    assert rig.stages() == finished
    assert rig.key() == pending
    # finishSecret's retry announces again: the first announcement may have been lost (listeners are idempotent).
    assert rig.events() == [rotated(token, old), rotated(token, old)]


def test_driver_rotations_reach_the_same_end_state(rig: Rig) -> None:
    first_key, first = rig.key(), rig.current()
    second = rig.rotate()
    third = rig.rotate()
    stages = rig.stages()
    assert CURRENT in stages[third]
    assert PREVIOUS in stages[second]
    assert not stages[first] & {CURRENT, PREVIOUS}
    keys = {first_key, rig.key(PREVIOUS), rig.key()}
    assert len(keys) == 3
    assert len(rig.key()) == 32
    assert rig.events() == [rotated(second, first), rotated(third, second)]


# 2. Requests the function refuses.


@pytest.mark.parametrize(
    "case", ["unknown-token", "previous-version", "unknown-step", "other-secret", "no-token", "no-secret"]
)
def test_requests_that_are_not_this_rotation_are_refused(rig: Rig, case: str) -> None:
    previous = rig.current()
    rig.rotate()
    rig.events()
    token, _ = rig.driver.stage_pending(rig.name)
    current, before = rig.current(), rig.stages()
    event: Event = {"SecretId": rig.arn, "ClientRequestToken": token, "Step": "createSecret"}
    if case == "unknown-token":
        event["ClientRequestToken"] = str(uuid.uuid4())
    elif case == "previous-version":
        event["ClientRequestToken"] = previous
    elif case == "unknown-step":
        event["Step"] = "rotateSecret"
    elif case == "other-secret":
        other_arn, _ = rig.services.secrets.create("credport-dev/other", encode_key(secrets.token_bytes(32)))
        event["SecretId"] = other_arn
        event["ClientRequestToken"], _ = rig.driver.stage_pending("credport-dev/other")
    elif case == "no-token":
        del event["ClientRequestToken"]
    else:
        del event["SecretId"]
    for step in ("createSecret", "finishSecret") if case != "unknown-step" else ("rotateSecret",):
        with pytest.raises(RotationRequestRefused) as refused:
            rig.rotation.handle({**event, "Step": step})
        assert isinstance(refused.value, BadRequest)
    assert rig.current() == current
    assert rig.stages() == before
    with pytest.raises(AwsNotFound):  # nothing was written under the staged token
        rig.services.secrets.get_value(rig.arn, version_id=token, stage=PENDING)
    assert rig.events() == []


def test_a_request_for_the_current_version_changes_nothing(rig: Rig) -> None:
    current, before = rig.current(), rig.stages()
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        rig.step(current, step)  # AWSCURRENT, not AWSPENDING: the documented early return, not a refusal
    assert (rig.current(), rig.stages()) == (current, before)
    assert rig.events() == []


# 3. A pending value that fails testSecret, then a resumed rotation.


@pytest.mark.parametrize("bad", ["short", "same-as-current", "not-json"])
def test_a_failing_test_keeps_current_and_the_resumed_rotation_completes(rig: Rig, bad: str) -> None:
    old = rig.current()
    value = {
        "short": encode_key(secrets.token_bytes(16)),
        "same-as-current": encode_key(rig.key()),
        "not-json": "not a key",
    }[bad]
    token, _ = rig.driver.stage_pending(rig.name)
    rig.services.secrets.put_value(rig.arn, value, client_request_token=token, stages=(PENDING,))
    with pytest.raises(RotationFailed) as failed:
        rig.rotate()
    assert (failed.value.step, failed.value.token) == ("testSecret", token)
    assert rig.current() == old
    assert rig.events() == []
    fixed = secrets.token_bytes(32)
    rig.services.secrets.put_value(rig.arn, encode_key(fixed), client_request_token=token, stages=(PENDING,))
    result = rig.driver.rotate(rig.name, lambda event, _c: rig.rotation.handle(event))
    assert (result.resumed, result.token) == (True, token)
    assert (rig.current(), rig.key()) == (token, fixed)
    assert rig.events() == [rotated(token, old)]


def test_a_rotation_resumed_later_keeps_the_previous_key_in_force(rig: Rig, clock: Clock) -> None:
    with pytest.raises(RotationFailed):
        rig.rotate(failing_once(rig.rotation, "testSecret"))  # createSecret done, then a timeout
    clock.advance(3600)
    session = rig.container().start("alice")  # signed with the key still AWSCURRENT
    rig.rotate()
    clock.advance(1)
    assert rig.container().show(session["token"])["sub"] == "alice"


# 4. finishSecret fails after moving AWSCURRENT (the announcement cannot be published).


def publish_fails_in_finish(rig: Rig) -> tuple[str, str]:
    old = rig.current()
    flaky = rig.rotation_with(FlakyPublisher(rig.services.factory.client("sns")))
    token, _ = rig.driver.stage_pending(rig.name)
    for step in ("createSecret", "setSecret", "testSecret"):
        rig.step(token, step, flaky)
    with pytest.raises(ConnectionError):
        rig.step(token, "finishSecret", flaky)
    assert rig.current() == token  # the label moved before the publish failed
    rig.step(token, "finishSecret", flaky)  # Secrets Manager's retry: completes without error
    return token, old


def test_a_retried_finish_after_a_failed_publish_is_idempotent(rig: Rig) -> None:
    token, old = publish_fails_in_finish(rig)
    stages = rig.stages()
    assert CURRENT in stages[token]
    assert stages[old] == {PREVIOUS}
    session = rig.container().start("alice")
    assert kid_of(session["token"]) == token


def test_a_retried_finish_publishes_the_lost_announcement(rig: Rig) -> None:
    token, old = publish_fails_in_finish(rig)
    assert rig.events() == [rotated(token, old)]


# 5. Two containers under continuous traffic while the key rotates three times.


def test_two_containers_accept_every_valid_token_across_three_rotations(
    rig: Rig, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = rig.container(), rig.container()
    a.keys.current()  # a has been up for a while: its key cache expires at other times than b's
    clock.advance(150)
    start, rotations = clock.now, [clock.now + 615 + 1000 * i for i in range(3)]
    live: list[tuple[str, int]] = []
    signed_with: set[str] = set()
    rejected: list[tuple[int, str, str]] = []
    versions = [rig.current()]
    for n in range(140):  # a token every 30 s, alternately from each container, for 70 minutes
        if rotations and rotations[0] <= start + 30 * n:
            clock.now = rotations.pop(0)
            versions.append(rig.rotate(lambda event, _c: a.rotation.handle(event)))
        clock.now = start + 30 * n
        session = (a, b)[n % 2].start(f"user-{n}")
        live.append((session["token"], int(clock.now) + session["expires_in"]))
        signed_with.add(kid_of(session["token"]))
        live = [(token, exp) for token, exp in live if exp >= clock.now]
        for token, _exp in live:
            for name, container in (("a", a), ("b", b)):
                try:
                    container.show(token)
                except InvalidToken:
                    rejected.append((n, name, kid_of(token)))
    assert rejected == []
    assert len(versions) == 4
    assert signed_with == set(versions)
    assert a.keys.refreshes <= 4200 / 300 + 4
    assert b.keys.refreshes <= 4200 / 300 + 4
    # A key two rotations old: refused by both, however far off its token's exp.
    now = int(clock.now)
    claims = {"iss": rig.settings.issuer, "sub": "mallory", "aud": SESSION_AUDIENCE, "iat": now, "exp": now + 400}
    claims |= {"sid": "s", "sess_exp": now + 3600, "jti": secrets.token_urlsafe(16)}
    caplog.set_level(logging.INFO)
    caplog.clear()
    for version, accepted in ((versions[-3], False), (versions[-1], True)):
        secret = decode_key(rig.services.secrets.get_value(rig.arn, version_id=version).value)
        token = sign(SessionKey(version_id=version, stage=CURRENT, created_at=0, secret=secret), claims)
        for container in (a, b):
            if accepted:
                assert container.show(token)["sub"] == "mallory"
            else:
                with pytest.raises(InvalidToken):
                    container.show(token)
    assert refusing_checks(caplog) == ["kid", "kid"]  # no longer AWSCURRENT nor AWSPREVIOUS: an unknown kid


def test_a_container_that_just_reloaded_accepts_the_new_key_at_once(rig: Rig, clock: Clock) -> None:
    b = rig.container()
    b.keys.current()  # b loads its keys
    clock.advance(2)
    new = rig.rotate()
    clock.advance(1)
    session = rig.container().start("alice")  # a container started after the rotation
    assert kid_of(session["token"]) == new
    assert b.show(session["token"])["sub"] == "alice"


# 6. Refresh across a rotation.


def test_refresh_across_a_rotation_never_outlives_the_session(
    rig: Rig, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("CREDPORT_SESSION_MAX_AGE", "600")
    monkeypatch.setenv("CREDPORT_SESSION_TOKEN_TTL", "420")
    reset_settings()
    t0 = int(clock.now)
    session = rig.container().start("alice")
    assert (session["expires_in"], session["session_expires_at"]) == (420, t0 + 600)
    clock.advance(60)
    new = rig.rotate()
    clock.advance(10)
    server = rig.container()
    refreshed = server.refresh(session["token"])
    assert kid_of(refreshed["token"]) == new
    assert (refreshed["session_id"], refreshed["session_expires_at"]) == (session["session_id"], t0 + 600)
    assert refreshed["expires_in"] == 420
    clock.now = t0 + 400
    capped = server.refresh(refreshed["token"])
    assert capped["expires_in"] == 200
    assert server.show(capped["token"])["token_expires_at"] == t0 + 600
    clock.now = t0 + 600
    caplog.clear()
    with pytest.raises(InvalidToken):
        server.refresh(capped["token"])
    assert refusing_checks(caplog) == ["sess_exp"]


@pytest.mark.parametrize("rotate", [False, True], ids=["same-key", "rotated"])
def test_refresh_of_an_expired_token_is_bounded_by_the_refresh_window(
    rig: Rig, clock: Clock, rotate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = get_settings()
    issuer = rig.container()
    early, late = issuer.start("alice"), issuer.start("bob")
    exp = int(clock.now) + settings.session_token_ttl
    if rotate:
        clock.advance(1)
        rig.rotate()
    server = rig.container()
    clock.now = exp + settings.session_refresh_window - 1
    assert kid_of(server.refresh(early["token"])["token"]) == rig.current()
    clock.now = exp + settings.session_refresh_window + 6  # past the window and its leeway
    caplog.clear()
    with pytest.raises(InvalidToken):
        server.refresh(late["token"])
    assert refusing_checks(caplog) == ["exp"]


def test_a_token_from_a_container_yet_to_see_the_rotation_can_be_refreshed(rig: Rig, clock: Clock) -> None:
    settings = get_settings()
    stale = rig.container()
    stale.keys.current()  # keys cached now, for the cache ttl (300 s)
    old = rig.current()
    clock.advance(10)
    rig.rotate()
    clock.advance(250)
    session = stale.start("carol")
    assert kid_of(session["token"]) == old
    clock.advance(session["expires_in"] + settings.session_refresh_window - 100)  # well inside the window
    assert kid_of(rig.container().refresh(session["token"])["token"]) == rig.current()
