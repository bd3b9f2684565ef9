"""Event plumbing shared by the capabilities: S3 object events (via SQS) and key events (via SNS)."""

from __future__ import annotations

from chalicelib.events.key_events import KeyEventBus, MalformedKeyEvent, key_event
from chalicelib.events.s3_objects import (
    MalformedNotification,
    S3ObjectEvent,
    S3ObjectRouter,
    parse_notification,
)

__all__ = [
    "KeyEventBus",
    "MalformedKeyEvent",
    "MalformedNotification",
    "S3ObjectEvent",
    "S3ObjectRouter",
    "key_event",
    "parse_notification",
]
