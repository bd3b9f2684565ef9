"""The app's event handlers fed junk, against moto: S3 notifications through SQS, SNS key events, schedules.

Documented behaviour (chalicelib/events/s3_objects.py): a message that is not an S3 notification raises
``MalformedNotification``, so Lambda fails the batch and SQS dead-letters it for a human; nothing is dropped
silently. A well-formed notification for an object that is not there is a no-op (an earlier delivery handled
it). A key event that is not one raises ``MalformedKeyEvent``. A schedule's event id is only a rotation id:
whatever EventBridge (or anyone invoking the function) puts there, the rotation runs, or is recognised as
already done, and never crashes. ``EXAMPLES`` counts the examples per handler (printed with ``-s``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib import events
from chalicelib.autoid import ClientPolicy
from chalicelib.envelope import RecipientKey, generate_recipient_key
from chalicelib.services import Services
from tests.conftest import EVENTS_DIR, app_services
from tests.unit.test_untrusted_parsers import JSON, JSON_TEXT, mutated_document

EXAMPLES: Counter[str] = Counter()
# Function-scoped fixtures are fine here: the stack is set up once per test, and each example only reads it
# or adds to it (every example is a delivery the stack must survive, whatever came before).
FIXTURES_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
QUEUE = "credport-dev-s3-events"
S3_NOTIFICATION = json.loads((EVENTS_DIR / "s3_object_created.json").read_text())
SNS_MESSAGE = json.loads((EVENTS_DIR / "sns_key_event.json").read_text())["Records"][0]["Sns"]["Message"]
KEYS = ["inbox/x.jwe", "inbox/", "inbox/a%2Fb+c.jwe", "clients/client-one/public.pem", "clients/x", "other/y", ""]


@pytest.fixture(scope="module", autouse=True)
def report_examples() -> Iterator[None]:
    yield
    print("\nhypothesis examples per handler:")
    for name, count in sorted(EXAMPLES.items()):
        print(f"  {name:40} {count}")


@pytest.fixture
def client(services: Services) -> Iterator[Client]:
    import app as credport_app

    with Client(credport_app.app, stage_name="dev") as test_client:
        yield test_client


def _with_key(key: str) -> str:
    document = json.loads(json.dumps(S3_NOTIFICATION))
    document["Records"][0]["s3"]["object"]["key"] = key
    return json.dumps(document)


OBJECT_KEYS = st.sampled_from(KEYS) | st.tuples(st.sampled_from(["inbox/", "clients/", ""]), st.text(max_size=40)).map(
    "".join
)


@st.composite
def notification_bodies(draw: st.DrawFn) -> str:
    """A genuine notification for an arbitrary key under a routed prefix, maybe mutated further; or junk."""
    document = json.loads(json.dumps(S3_NOTIFICATION))
    document["Records"][0]["s3"]["object"]["key"] = draw(OBJECT_KEYS)
    kind = draw(st.sampled_from(["genuine", "genuine", "mutated", "mutated", "junk"]))
    if kind == "mutated":
        document = draw(mutated_document(document))
    return draw(JSON_TEXT) if kind == "junk" else json.dumps(document)


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES_OK)
@given(st.lists(notification_bodies(), min_size=1, max_size=2))
@example([_with_key(key) for key in ("inbox/\ud800", "inbox/%ED%A0%80", "inbox/a\u0000b", "clients/" + "k" * 3000)])
@example(
    [
        '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, '
        '"object": {"key": "inbox/x", "size": Infinity}}}]}'
    ]
)
def test_the_sqs_handler_only_fails_with_malformed_notification_on_junk(client: Client, bodies: list[str]) -> None:
    EXAMPLES["app.s3_object_events (SQS bodies)"] += 1
    event = client.events.generate_sqs_event(message_bodies=bodies, queue_name=QUEUE)
    try:
        client.lambda_.invoke("s3_object_events", event)
    except events.MalformedNotification:
        # Documented: the batch fails so SQS retries it and, at last, dead-letters it. It must be junk.
        assert any(_is_junk(body) for body in bodies)
    else:
        assert not any(_is_junk(body) for body in bodies)  # nothing is dropped silently


def _is_junk(body: str) -> bool:
    try:
        events.parse_notification(body)
    except events.MalformedNotification:
        return True
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURES_OK)
@given(st.one_of(JSON_TEXT, mutated_document(json.loads(SNS_MESSAGE)).map(json.dumps)))
def test_the_sns_handler_only_fails_with_malformed_key_event(client: Client, message: str) -> None:
    EXAMPLES["app.key_events (SNS messages)"] += 1
    try:
        client.lambda_.invoke("key_events", client.events.generate_sns_event(message=message))
    except events.MalformedKeyEvent:
        refused = True
    else:
        refused = False
    assert refused == _is_bad_key_event(message)  # refused exactly when it is not a key event


def _is_bad_key_event(message: str) -> bool:
    try:
        events.KeyEventBus().deliver(message)  # no listeners: only the parsing decides
    except events.MalformedKeyEvent:
        return True
    return False


@pytest.fixture
def fast_server_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """RSA-2048 instead of RSA-4096 server keys (8x faster to generate); still a new key per rotation."""
    from chalicelib.keys import recipient

    def generate(bits: int = 4096) -> RecipientKey:
        return generate_recipient_key(2048)

    monkeypatch.setattr(recipient, "generate_recipient_key", generate)


SCHEDULE_IDS = st.one_of(JSON, st.text(min_size=1, max_size=300), st.integers(10_000, 100_000).map(lambda n: "x" * n))


@settings(max_examples=50, deadline=None, suppress_health_check=FIXTURES_OK)
@given(st.data())
def test_the_autoid_schedule_survives_any_event_id(client: Client, fast_server_keys: None, data: st.DataObject) -> None:
    EXAMPLES["app.rotate_autoid_keys (event ids)"] += 1
    service = app_services().autoid
    if service.registry.get("worker-1") is None:
        service.registry.enroll("worker-1", ClientPolicy(secrets=("credport-dev/autoid/x",)))
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule"]
    )
    event = data.draw(mutated_document(event)) if data.draw(st.booleans()) else event
    if not isinstance(event, dict):
        event = {}
    for name in ("version", "account", "region", "detail", "detail-type", "source", "time", "resources"):
        event.setdefault(name, None)  # the keys chalice's CloudWatchEvent reads; Lambda always sends them
    event["id"] = data.draw(SCHEDULE_IDS)
    before = service.registry.require("worker-1").generation
    first = client.lambda_.invoke("rotate_autoid_keys", event).payload
    assert isinstance(first["rotation_id"], str)
    assert 0 < len(first["rotation_id"]) <= 128
    assert service.registry.require("worker-1").generation == before + first["clients_rotated"]
    if event["id"] not in (None, ""):  # a retried delivery of the same event rotates nobody a second time
        again = client.lambda_.invoke("rotate_autoid_keys", event).payload
        assert again == {"rotation_id": first["rotation_id"], "clients_rotated": 0}


@pytest.mark.parametrize(
    "event_id",
    [None, "", 0, 1.5, True, [], {}, {"a": [1, None]}, "x" * 100_000, "\ud800", "a b\n", "0" * 129, "ok-id"],
)
def test_the_autoid_schedule_with_hostile_event_ids(client: Client, fast_server_keys: None, event_id: Any) -> None:
    event = client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:rule"]
    )
    event["id"] = event_id
    first = client.lambda_.invoke("rotate_autoid_keys", event).payload
    assert isinstance(first["rotation_id"], str)
    assert len(first["rotation_id"]) <= 128
    if event_id not in (None, ""):  # a retried delivery of the same event is the same rotation
        assert client.lambda_.invoke("rotate_autoid_keys", event).payload["rotation_id"] == first["rotation_id"]


def test_an_event_function_works_in_a_fresh_container(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """On AWS each event source is its own function: chalice never sets ``app.lambda_context`` there (it does so
    for HTTP requests only), so the invocation middleware must take the Lambda context from the event."""
    import logging

    import app as credport_app

    monkeypatch.delattr(credport_app.app, "lambda_context", raising=False)
    from chalicelib.observability import logger

    seen: list[dict[str, Any]] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(json.loads(logger.registered_formatter.format(record)))  # type: ignore[method-assign]
    logging.getLogger("credport").addHandler(handler)
    try:
        message = json.dumps({"type": "autoid-keys-rotated"})
        client.lambda_.invoke("key_events", client.events.generate_sns_event(message=message))
        body = (EVENTS_DIR / "s3_test_event.json").read_text()
        client.lambda_.invoke("s3_object_events", client.events.generate_sqs_event([body], queue_name=QUEUE))
    finally:
        logging.getLogger("credport").removeHandler(handler)
    assert seen
    assert all(line.get("invocation_id") for line in seen)  # the Lambda context's request id, from the event
