"""Event plumbing shared by the capabilities: S3 object events (via SQS) and key events (via SNS).

Each name is imported from its module on first use (PEP 562): the S3 event classes come from Powertools' event
sources, which a cold start serving a token never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.lazy import lazy_attribute

if TYPE_CHECKING:
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

_MODULE_OF = {
    "KeyEventBus": "key_events",
    "MalformedKeyEvent": "key_events",
    "key_event": "key_events",
    "MalformedNotification": "s3_objects",
    "S3ObjectEvent": "s3_objects",
    "S3ObjectRouter": "s3_objects",
    "parse_notification": "s3_objects",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _MODULE_OF, name)
