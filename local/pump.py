"""Deliver S3 (via SQS), SNS and schedule events to the handlers Lambda would invoke, as Lambda would.

- SQS event sources (``@app.on_sqs_message``): poll the queue, invoke with the Lambda SQS event shape;
  on success delete, on failure leave the message for retry. The queue's own redrive policy moves it to
  its dead-letter queue after ``maxReceiveCount`` deliveries, exactly as on AWS. Locally the retry comes
  after ``retry_delay`` seconds instead of the full visibility timeout.
- SNS subscriptions (``@app.on_sns_message``): Lambda's asynchronous invocation is emulated with a plumbing
  queue per handler subscribed to the topic. These ``<prefix>-local-*`` queues are the emulator's, not
  template resources.
- Schedules (``@app.schedule``): rate expressions fire every period; any schedule fires on demand
  (:meth:`EventPump.fire`).
- Both are asynchronous invocations: a function with an EventInvokeConfig in template.yaml gets its
  ``MaximumRetryAttempts`` retries, then its on-failure destination receives Lambda's invocation record
  (Lambda Developer Guide, "Capturing records of Lambda asynchronous invocations"). Without one: three
  attempts, then the bare event goes to the emulator's ``<prefix>-local-schedules-dlq`` or
  ``<prefix>-local-<handler>-dlq``. Retries come after ``retry_delay`` seconds, not Lambda's minutes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalice.app import Chalice, ScheduledEventConfig, SNSEventConfig, SQSEventConfig
from chalice.local import LambdaContext

from chalicelib.aws.sqs import QueueClient, QueueMessage
from local.provision import AsyncInvokeConfig

__all__ = ["EventPump", "FireReport", "PumpSettings", "rate_seconds", "reason_of"]

_RATE_RE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation by default: the first try and two retries
REASON_LIMIT = 300  # characters of an exception's message in a control answer


def reason_of(error: BaseException) -> dict[str, str]:
    """An exception as a control answer reports it: its type and the first line of its message, bounded. The app's
    exceptions never carry secret values (their messages are written for logs), and nothing else is added."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return {"type": type(error).__name__, "message": message[:REASON_LIMIT]}


def rate_seconds(expression: str) -> int | None:
    """Seconds between firings of a ``rate(...)`` expression; None for cron (fired on demand only)."""
    match = _RATE_RE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


@dataclass(frozen=True)
class FireReport:
    """One on-demand delivery of a schedule: its outcome, how many tries it took, the last try's exception."""

    ok: bool
    attempts: int
    error: Exception | None = None

    def to_json(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True}
        assert self.error is not None
        return {"ok": False, "attempts": self.attempts, "reason": reason_of(self.error)}


@dataclass(frozen=True)
class PumpSettings:
    prefix: str
    account_id: str
    region: str
    poll_interval: float = 0.1
    retry_delay: int = 1
    async_configs: Mapping[str, AsyncInvokeConfig] = field(default_factory=dict)  # template.yaml's, by handler


class EventPump:
    def __init__(
        self,
        app: Chalice,
        client: Callable[[str], Any],
        settings: PumpSettings,
        log: Callable[[str], None] = print,
    ) -> None:
        self._app = app
        self._raw_sqs = client("sqs")
        self._sqs = QueueClient(self._raw_sqs)
        self._sns = client("sns")
        self._settings = settings
        self._log = log
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._schedules: dict[str, ScheduledEventConfig] = {}
        self._schedule_dlq: str | None = None
        self.stats: Counter[str] = Counter()

    # Wiring ---------------------------------------------------------------------------------------

    def wire(self) -> None:
        """Connect every event source the app declares; a source whose queue or topic the template
        does not declare is an error (the template and the app must agree)."""
        for source in self._app.event_sources:
            if isinstance(source, SQSEventConfig):
                url = self._sqs.url_for(str(source.queue))
                arn = self._sqs.arn_of(url)
                self._spawn(
                    f"sqs:{source.name}",
                    self._poll_loop,
                    source.name,
                    url,
                    lambda m, arn=arn: _sqs_event([m], arn, self._settings.region),
                )
            elif isinstance(source, SNSEventConfig):
                self._wire_sns(source)
            elif isinstance(source, ScheduledEventConfig):
                self._schedules[source.name] = source
            else:
                raise RuntimeError(f"the local stack cannot deliver {type(source).__name__} ({source.name})")
        if self._schedules:
            self._schedule_dlq = self._plumbing_queue("schedules-dlq", None)
            for name, source in self._schedules.items():
                period = rate_seconds(_expression(source))
                if period:
                    self._spawn(f"schedule:{name}", self._schedule_loop, name, period)

    def _wire_sns(self, source: SNSEventConfig) -> None:
        topic_arn = f"arn:aws:sns:{self._settings.region}:{self._settings.account_id}:{source.topic}"
        if not any(t["TopicArn"] == topic_arn for t in self._sns.list_topics()["Topics"]):
            raise RuntimeError(f"handler {source.name} subscribes to topic {source.topic}, which is not provisioned")
        dlq_url = self._plumbing_queue(f"{source.name}-dlq", None)
        url = self._plumbing_queue(source.name, (self._sqs.arn_of(dlq_url), self._attempts(source.name)))
        subscription = self._sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=self._sqs.arn_of(url), ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        self._spawn(
            f"sns:{source.name}", self._poll_loop, source.name, url, lambda m: _sns_event(m, subscription), True
        )

    def _plumbing_queue(self, suffix: str, redrive: tuple[str, int] | None) -> str:
        attributes = {"VisibilityTimeout": "30"}
        if redrive:
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": redrive[0], "maxReceiveCount": redrive[1]})
        name = f"{self._settings.prefix}-local-{suffix}".replace("_", "-")[:80]
        return str(self._raw_sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self._threads.append(threading.Thread(target=target, args=args, name=name, daemon=True))

    # Running --------------------------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:  # started (a pump may be wired and fired without running its loops)
                thread.join(timeout=5)

    @property
    def schedule_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._schedules))

    def _poll_loop(
        self,
        handler_name: str,
        url: str,
        make_event: Callable[[QueueMessage], dict[str, Any]],
        asynchronous: bool = False,
    ) -> None:
        while not self._stop.is_set():
            try:
                messages = self._sqs.receive(url, max_messages=1, wait_seconds=0)
            except Exception as exc:  # the embedded AWS is shutting down, or a transient error
                self._log(f"pump {handler_name}: receive failed ({type(exc).__name__})")
                self._stop.wait(self._settings.retry_delay)
                continue
            if not messages:
                self._stop.wait(self._settings.poll_interval)
                continue
            message = messages[0]
            event = make_event(message)
            error = self._invoke(handler_name, event)
            if error is None:
                self._sqs.delete(url, message.receipt_handle)
            elif (
                asynchronous
                and message.receive_count >= self._attempts(handler_name)
                and self._record_failure(handler_name, event, error, message.receive_count)
            ):
                self._sqs.delete(url, message.receipt_handle)  # its invocation record is in the on-failure queue
            else:
                # Lambda leaves a failed message for retry; the queue's redrive policy ends it in the DLQ.
                self._sqs.change_visibility(url, message.receipt_handle, self._settings.retry_delay)

    def _schedule_loop(self, name: str, period: int) -> None:
        while not self._stop.wait(period):
            self.fire(name)

    def fire(self, name: str) -> bool:
        """Deliver one scheduled event now, with Lambda's async retries; True when a try succeeded."""
        return self.fire_report(name).ok

    def fire_report(self, name: str) -> FireReport:
        """:meth:`fire`, telling why it failed: the last try's exception (after the event was dead-lettered)."""
        source = self._schedules.get(name)
        if source is None:
            raise KeyError(name)
        event = _scheduled_event(source, self._settings)
        attempts = self._attempts(name)
        error: Exception | None = None
        for attempt in range(1, attempts + 1):
            error = self._invoke(name, event)
            if error is None:
                return FireReport(ok=True, attempts=attempt)
            if attempt < attempts:
                self._stop.wait(self._settings.retry_delay)
            elif not self._record_failure(name, event, error, attempts):
                assert self._schedule_dlq is not None
                self._sqs.send(self._schedule_dlq, json.dumps(event))
        return FireReport(ok=False, attempts=attempts, error=error)

    def _attempts(self, handler_name: str) -> int:
        config = self._settings.async_configs.get(handler_name)
        return ASYNC_ATTEMPTS if config is None else config.max_retries + 1

    def _record_failure(self, handler_name: str, event: dict[str, Any], error: Exception, attempts: int) -> bool:
        """Send Lambda's invocation record to the function's on-failure destination; False when it has none."""
        config = self._settings.async_configs.get(handler_name)
        if config is None or config.on_failure_queue_url is None:
            return False
        region, account = self._settings.region, self._settings.account_id
        record = {
            "version": "1.0",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{region}:{account}:function:{handler_name}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": type(error).__name__, "errorMessage": str(error)},
        }
        self._sqs.send(config.on_failure_queue_url, json.dumps(record))
        self._log(f"event {handler_name} -> failed {attempts} times, recorded in its on-failure queue")
        return True

    def _invoke(self, handler_name: str, event: dict[str, Any]) -> Exception | None:
        """Run the handler as Lambda would; the exception it raised, or None on success."""
        handler = self._app.handler_map[handler_name]
        context = LambdaContext(function_name=handler_name, memory_size=512, max_runtime_ms=30_000)
        try:
            handler(event, context)
        except Exception as exc:
            self.stats[f"{handler_name}.failed"] += 1
            self._log(f"event {handler_name} -> failed ({type(exc).__name__}), will retry")
            return exc
        self.stats[f"{handler_name}.ok"] += 1
        self._log(f"event {handler_name} -> ok")
        return None


def _expression(source: ScheduledEventConfig) -> str:
    expression = source.schedule_expression
    return expression if isinstance(expression, str) else expression.to_string()


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sqs_event(messages: list[QueueMessage], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": dict(m.attributes),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value.get("DataType", "String"),
                    }
                    for name, value in m.message_attributes.items()
                },
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def _sns_event(message: QueueMessage, subscription_arn: str) -> dict[str, Any]:
    envelope = json.loads(message.body)
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId", message.message_id),
                    "TopicArn": envelope.get("TopicArn", ""),
                    "Subject": envelope.get("Subject"),
                    "Message": envelope.get("Message", ""),
                    "Timestamp": envelope.get("Timestamp", _now()),
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", ""),
                    "SigningCertUrl": envelope.get("SigningCertURL", ""),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
                    "MessageAttributes": envelope.get("MessageAttributes", {}),
                },
            }
        ]
    }


def _scheduled_event(source: ScheduledEventConfig, settings: PumpSettings) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": settings.account_id,
        "time": _now(),
        "region": settings.region,
        "resources": [f"arn:aws:events:{settings.region}:{settings.account_id}:rule/{settings.prefix}-{source.name}"],
        "detail": {},
    }
