"""The local stack honours template.yaml's on-failure destinations: a scheduled or SNS invocation that fails
every attempt (MaximumRetryAttempts + 1) leaves Lambda's invocation record in the stack's AsyncDeadLetterQueue
(Lambda Developer Guide, "Capturing records of Lambda asynchronous invocations")."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.app import ScheduledEventConfig, SNSEventConfig

from chalicelib.aws.clients import ClientFactory
from chalicelib.services import Services
from local.provision import AsyncInvokeConfig, Provisioned
from local.pump import EventPump, PumpSettings
from tests.conftest import ACCOUNT_ID, REGION


@pytest.fixture
def pump(provisioned: Provisioned, factory: ClientFactory) -> Iterator[EventPump]:
    import app

    settings = PumpSettings(
        prefix="credport-dev",
        account_id=ACCOUNT_ID,
        region=REGION,
        poll_interval=0.01,
        retry_delay=0,
        async_configs=provisioned.async_configs,
    )
    running = EventPump(app.app, factory.client, settings, log=lambda _line: None)
    running.wire()
    yield running
    running.stop()


class Broken:
    """A dependency that fails every call, counting them."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        raise RuntimeError("dependency down")


def _records(factory: ClientFactory, provisioned: Provisioned) -> list[dict[str, Any]]:
    url = provisioned.attributes["AsyncDeadLetterQueue"]["QueueUrl"]
    messages = factory.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_the_template_gives_every_sns_and_schedule_function_its_retries_and_queue(provisioned: Provisioned) -> None:
    import app

    asynchronous = {s.name for s in app.app.event_sources if isinstance(s, SNSEventConfig | ScheduledEventConfig)}
    queue = provisioned.attributes["AsyncDeadLetterQueue"]["QueueUrl"]
    assert provisioned.async_configs == {name: AsyncInvokeConfig(2, queue) for name in asynchronous}


def test_a_schedule_failing_every_attempt_leaves_its_invocation_record(
    pump: EventPump,
    provisioned: Provisioned,
    services: Services,
    factory: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = Broken()
    rotations = services.tokens.rotations  # one per enabled algorithm: the schedule runs each
    for rotation in rotations.values():
        monkeypatch.setattr(rotation, "rotate", broken)
    assert pump.fire("rotate_signing_keys") is False
    # MaximumRetryAttempts: 2, after the first attempt; each attempt runs every algorithm's rotation.
    assert broken.calls == 3 * len(rotations)
    (record,) = _records(factory, provisioned)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(":function:rotate_signing_keys:$LATEST")
    assert record["requestPayload"]["detail-type"] == "Scheduled Event"
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"] == {"errorType": "RuntimeError", "errorMessage": "dependency down"}
    sqs = factory.client("sqs")
    emulator_dlq = sqs.get_queue_url(QueueName="credport-dev-local-schedules-dlq")["QueueUrl"]
    assert not sqs.receive_message(QueueUrl=emulator_dlq).get("Messages")  # the template's queue, not the emulator's


def test_an_sns_event_failing_every_attempt_leaves_its_invocation_record(
    pump: EventPump,
    provisioned: Provisioned,
    services: Services,
    factory: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = Broken()
    monkeypatch.setattr(services.key_events, "handle_sns_records", broken)
    message = json.dumps({"type": "signing-key-rotated", "rotation_id": "r1"})
    factory.client("sns").publish(TopicArn=provisioned.outputs["KeyEventsTopicArn"], Message=message)
    pump.start()
    records: list[dict[str, Any]] = []
    pause = threading.Event()  # never set: a pause between looks at the queue
    for _ in range(600):  # each attempt is immediate (retry_delay 0): a bound of 30 s, not a timing assumption
        records = _records(factory, provisioned)
        if records:
            break
        pause.wait(0.05)
    (record,) = records
    assert broken.calls == 3
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(":function:key_events:$LATEST")
    (delivered,) = record["requestPayload"]["Records"]
    assert delivered["EventSource"] == "aws:sns"
    assert delivered["Sns"]["Message"] == message


def test_a_scheduled_rotation_too_soon_after_an_operators_is_skipped_not_failed(
    pump: EventPump, provisioned: Provisioned, services: Services, factory: ClientFactory
) -> None:
    tokens = services.tokens
    tokens.rotate(force=True)  # an operator's rotation (credport-admin token rotate): keys made just now
    current = {alg: keyring.current().kid for alg, keyring in tokens.keyrings.items()}
    calls: list[tuple[str, bool]] = []

    def counted(alg: str, rotate: Any) -> Any:
        def rotate_counted(*, force: bool = False) -> Any:
            calls.append((alg, force))
            return rotate(force=force)

        return rotate_counted

    for alg, rotation in tokens.rotations.items():
        rotation.rotate = counted(alg, rotation.rotate)  # type: ignore[method-assign]
    assert pump.fire("rotate_signing_keys") is True  # nothing to do is a success: no retry, no record, no alarm
    assert calls == [("RS256", False), ("ES384", False)]  # once each, never forced
    assert _records(factory, provisioned) == []
    tokens.invalidate()
    assert {alg: keyring.current().kid for alg, keyring in tokens.keyrings.items()} == current  # nothing rotated


def test_any_other_refusal_of_a_scheduled_rotation_still_fails_and_is_recorded(
    pump: EventPump,
    provisioned: Provisioned,
    services: Services,
    factory: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.tokens import RotationRefused

    def refused(*, force: bool = False) -> Any:
        raise RotationRefused("A token could outlive its key's publication")

    for rotation in services.tokens.rotations.values():
        monkeypatch.setattr(rotation, "rotate", refused)
    assert pump.fire("rotate_signing_keys") is False
    (record,) = _records(factory, provisioned)
    assert record["responsePayload"]["errorType"] == "RotationRefused"
