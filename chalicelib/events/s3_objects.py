"""S3 object-created notifications, delivered through SQS, routed to handlers by key prefix.

``chalice package`` cannot express ``@app.on_s3_event``, and SQS gives retries and a dead-letter queue,
so the bucket notifies a queue and one ``@app.on_sqs_message`` handler feeds this router (its routes are
registered in one place, the composition root :mod:`chalicelib.services`). A handler that
raises fails the SQS batch (of one): Lambda leaves the message for retry and, after the queue's
``maxReceiveCount``, SQS moves it to the dead-letter queue. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes import S3Event

from chalicelib.observability import MetricUnit, logger, metrics

__all__ = ["MalformedNotification", "S3ObjectEvent", "S3ObjectRouter", "parse_notification"]

MAX_KEY_LENGTH = 1024


class MalformedNotification(ValueError):
    """The message is not an S3 notification. Raised so it ends in the dead-letter queue for a human."""


@dataclass(frozen=True)
class S3ObjectEvent:
    event_name: str
    bucket: str
    key: str  # already unquoted: S3 sends keys quote_plus-encoded
    size: int  # the event's version's: a handler refuses a file too large to inspect unread (a hint, never trusted
    # as a bound: reads are bounded by themselves)
    etag: str
    version_id: str | None
    sequencer: str


S3ObjectHandler = Callable[[S3ObjectEvent], None]


def parse_notification(body: str) -> list[S3ObjectEvent]:
    """The object events in one SQS message body; ``[]`` for S3's ``s3:TestEvent``."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        raise MalformedNotification("the message body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedNotification("the message body is not a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list) or not records:
        raise MalformedNotification("the message has no S3 records")
    events = []
    for record in S3Event(document).records:
        try:
            key = record.s3.get_object.key
            if record.event_source != "aws:s3" or len(key) > MAX_KEY_LENGTH * 3:
                raise MalformedNotification("the record is not an S3 object event")
            event = S3ObjectEvent(
                event_name=record.event_name,
                bucket=record.s3.bucket.name,
                key=_unquote(key),
                size=record.s3.get_object.size,
                etag=record.s3.get_object.etag,
                version_id=record.s3.get_object.version_id,
                sequencer=str(record.s3.get_object.get("sequencer") or ""),
            )
            if not _well_typed(event):
                raise MalformedNotification("the S3 record has fields of the wrong type")
            events.append(event)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # Overflow: int(Infinity)
            if isinstance(exc, MalformedNotification):
                raise
            raise MalformedNotification("the S3 record is incomplete") from None
    return events


def _well_typed(event: S3ObjectEvent) -> bool:
    """The powertools accessors return whatever JSON holds: the router and handlers need these types, and
    text that encodes as UTF-8 (S3's own; JSON can carry lone surrogates, which no AWS call can send)."""
    texts = [event.event_name, event.bucket, event.key, event.etag]
    if event.version_id is not None:
        texts.append(event.version_id)
    return all(isinstance(text, str) and _utf8(text) for text in texts)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unquote(key: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(key)


class S3ObjectRouter:
    """Routes object-created events to the handler registered for the longest matching key prefix."""

    def __init__(self) -> None:
        self._routes: dict[str, S3ObjectHandler] = {}

    def register(self, prefix: str, handler: S3ObjectHandler) -> None:
        if not prefix or not prefix.endswith("/"):
            raise ValueError("a route prefix must be a non-empty folder ending in '/'")
        if prefix in self._routes and self._routes[prefix] is not handler:
            raise ValueError(f"prefix {prefix!r} already has a handler")
        self._routes[prefix] = handler

    def unregister(self, prefix: str) -> None:
        self._routes.pop(prefix, None)

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(sorted(self._routes))

    def handler_for(self, key: str) -> S3ObjectHandler | None:
        matches = [p for p in self._routes if key.startswith(p)]
        return self._routes[max(matches, key=len)] if matches else None

    def dispatch(self, events: Iterable[S3ObjectEvent]) -> int:
        """Run each event's handler; returns how many were handled. A handler's exception propagates."""
        handled = 0
        for event in events:
            if not event.event_name.startswith("ObjectCreated:"):
                logger.info("s3 event ignored", extra={"event_name": event.event_name})
                continue
            handler = self.handler_for(event.key)
            if handler is None:
                # Notification filters decide what reaches us; an unrouted key is a configuration gap.
                logger.warning("no handler for s3 key", extra={"key_prefix": event.key.split("/", 1)[0]})
                metrics.add_metric(name="S3EventsUnrouted", unit=MetricUnit.Count, value=1)
                continue
            handler(event)
            handled += 1
        return handled

    def handle_sqs_records(self, records: Iterable[Any]) -> int:
        """Entry point for the SQS handler: every record's body is one S3 notification."""
        return sum(self.dispatch(parse_notification(record.body)) for record in records)
