"""What the embedded SNS published, kept for ``python -m local notifications``.

On AWS a notification leaves for an inbox (the transfer link arrives by email); locally nothing subscribes an email
address, so the link would be lost. :class:`NotificationLog` records every ``Publish`` and ``PublishBatch`` to a
topic as moto's ``Topic.publish`` runs it (whoever publishes, to whichever topic, created whenever): topic, subject,
message and the time, plus every http(s) link the message holds. moto's own ``Topic.sent_notifications`` has no
time and grows without bound; this log keeps the newest :data:`LIMIT`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

__all__ = ["LIMIT", "NotificationLog", "links_in"]

LIMIT = 1000
_URL = re.compile(r"https?://[^\s\"'<>\\]+")
_TRAILING = ".,;:!?)]}"


def links_in(message: str) -> list[str]:
    """Every http(s) URL in ``message``, first seen first; a JSON message is read as JSON (escaped slashes too)."""
    try:
        parsed: Any = json.loads(message)
    except ValueError:
        parsed = message
    links: list[str] = []
    for text in _strings(parsed):
        for found in _URL.findall(text):
            link = found.rstrip(_TRAILING)
            if link not in links:
                links.append(link)
    return links


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


class NotificationLog:
    def __init__(self, limit: int = LIMIT) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self._sequence = 0
        self._original: Any = None

    def install(self) -> None:
        """Record what moto's topics publish from now on (one log per process: the stack is one per process)."""
        from moto.sns.models import Topic

        if self._original is not None:
            return
        original = Topic.publish
        log = self

        def publish(topic: Any, message: str, subject: str | None = None, *args: Any, **kwargs: Any) -> str:
            message_id: str = original(topic, message, subject, *args, **kwargs)
            log.record(topic.arn, subject, message, message_id)
            return message_id

        Topic.publish = publish  # type: ignore[method-assign,assignment]
        self._original = original

    def uninstall(self) -> None:
        from moto.sns.models import Topic

        if self._original is not None:
            Topic.publish = self._original  # type: ignore[method-assign]
            self._original = None

    def record(self, topic_arn: str, subject: str | None, message: str, message_id: str) -> None:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock:
            self._sequence += 1
            self._records.append(
                {
                    "sequence": self._sequence,
                    "topic_arn": topic_arn,
                    "subject": subject,
                    "message": message,
                    "timestamp": now,
                    "links": links_in(message),
                    "message_id": message_id,
                }
            )

    def since(self, after: int = 0, topic_arn: str | None = None) -> list[dict[str, Any]]:
        """Recorded notifications (oldest first) with a sequence number above ``after``, of one topic or all."""
        with self._lock:
            records = list(self._records)
        return [r for r in records if r["sequence"] > after and topic_arn in (None, r["topic_arn"])]
