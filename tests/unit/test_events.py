"""S3 notifications (via SQS) and key events (via SNS): parsing and routing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.events import (
    KeyEventBus,
    MalformedKeyEvent,
    MalformedNotification,
    S3ObjectEvent,
    S3ObjectRouter,
    key_event,
    parse_notification,
)
from tests.conftest import EVENTS_DIR


def fixture_text(name: str) -> str:
    return (EVENTS_DIR / name).read_text()


def test_object_created_is_parsed_and_key_unquoted() -> None:
    (event,) = parse_notification(fixture_text("s3_object_created.json"))
    assert event == S3ObjectEvent(
        event_name="ObjectCreated:Put",
        bucket="credport-dev-transfer-123456789012",
        key="inbox/team a/secret@one.jwe",
        size=1024,
        etag="d41d8cd98f00b204e9800998ecf8427e",
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
        sequencer="0055AED6DCD90281E5",
    )


def test_s3_test_event_has_no_objects() -> None:
    assert parse_notification(fixture_text("s3_test_event.json")) == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        "{}",
        '{"Records": []}',
        '{"Records": [{"eventSource": "aws:sqs"}]}',
        '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}',
        '{"Records": "nope"}',
    ],
)
def test_malformed_notifications_raise(body: str) -> None:
    with pytest.raises(MalformedNotification):
        parse_notification(body)


def make_event(key: str, name: str = "ObjectCreated:Put") -> S3ObjectEvent:
    return S3ObjectEvent(name, "bucket", key, 1, "etag", None, "")


def test_router_picks_the_longest_prefix() -> None:
    router = S3ObjectRouter()
    seen: list[tuple[str, str]] = []
    router.register("inbox/", lambda e: seen.append(("inbox", e.key)))
    router.register("inbox/special/", lambda e: seen.append(("special", e.key)))
    handled = router.dispatch([make_event("inbox/a"), make_event("inbox/special/b"), make_event("other/c")])
    assert handled == 2
    assert seen == [("inbox", "inbox/a"), ("special", "inbox/special/b")]


def test_router_ignores_non_create_events() -> None:
    router = S3ObjectRouter()
    seen: list[str] = []
    router.register("inbox/", lambda e: seen.append(e.key))
    assert router.dispatch([make_event("inbox/a", "ObjectRemoved:Delete")]) == 0
    assert seen == []


def test_router_propagates_handler_failures() -> None:
    router = S3ObjectRouter()

    def fail(_: S3ObjectEvent) -> None:
        raise RuntimeError("boom")

    router.register("inbox/", fail)
    with pytest.raises(RuntimeError):
        router.dispatch([make_event("inbox/a")])


@pytest.mark.parametrize("prefix", ["", "inbox"])
def test_router_prefixes_must_be_folders(prefix: str) -> None:
    with pytest.raises(ValueError, match="folder"):
        S3ObjectRouter().register(prefix, lambda e: None)


def test_router_refuses_a_second_handler_for_a_prefix() -> None:
    router = S3ObjectRouter()
    router.register("inbox/", lambda e: None)
    with pytest.raises(ValueError, match="already"):
        router.register("inbox/", lambda e: None)


class Record:
    def __init__(self, body: str) -> None:
        self.body = body


def test_sqs_records_are_parsed_then_routed() -> None:
    router = S3ObjectRouter()
    seen: list[str] = []
    router.register("inbox/", lambda e: seen.append(e.key))
    records = [Record(fixture_text("s3_object_created.json")), Record(fixture_text("s3_test_event.json"))]
    assert router.handle_sqs_records(records) == 1
    assert seen == ["inbox/team a/secret@one.jwe"]


def test_key_events_reach_listeners_of_their_type() -> None:
    bus = KeyEventBus()
    seen: list[dict[str, Any]] = []
    bus.subscribe("session-key-rotated", lambda e: seen.append(dict(e)))
    bus.subscribe("other", lambda e: pytest.fail("wrong listener"))
    message = json.loads(fixture_text("sns_key_event.json"))["Records"][0]["Sns"]["Message"]
    assert bus.deliver(message) == 1
    assert seen == [{"type": "session-key-rotated", "version_id": "6b1a2f0c-0a4d-4b49-8b3d-2f1f3c1f0e11"}]


def test_subscribing_twice_runs_a_listener_once() -> None:
    bus = KeyEventBus()
    calls: list[int] = []

    def listener(_: Any) -> None:
        calls.append(1)

    bus.subscribe("t", listener)
    bus.subscribe("t", listener)
    assert bus.deliver(json.dumps(key_event("t"))) == 1
    assert calls == [1]


@pytest.mark.parametrize("message", ["nope", "[]", '{"type": 3}', "{}", "x" * (256 * 1024 + 1)])
def test_malformed_key_events_raise(message: str) -> None:
    with pytest.raises(MalformedKeyEvent):
        KeyEventBus().deliver(message)
