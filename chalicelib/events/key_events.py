"""Key events (rotations, revocations), published on the key-events SNS topic.

Every container subscribes through one ``@app.on_sns_message`` handler; the composition root
(:mod:`chalicelib.services`) subscribes a listener per event ``type`` (a session-key rotation drops that
container's cached keys, for instance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from chalicelib.observability import logger
from chalicelib.untrusted import UntrustedInput, loads

__all__ = ["KeyEventBus", "MalformedKeyEvent", "key_event"]

KeyEventListener = Callable[[Mapping[str, Any]], None]
MAX_MESSAGE_BYTES = 256 * 1024


class MalformedKeyEvent(ValueError):
    pass


def key_event(event_type: str, **fields: Any) -> dict[str, Any]:
    """The message body of a key event: ``{"type": ..., **fields}`` (never a key or secret value)."""
    return {"type": event_type, **fields}


class KeyEventBus:
    def __init__(self) -> None:
        self._listeners: dict[str, list[KeyEventListener]] = {}

    def subscribe(self, event_type: str, listener: KeyEventListener) -> None:
        listeners = self._listeners.setdefault(event_type, [])
        if listener not in listeners:
            listeners.append(listener)

    def unsubscribe(self, event_type: str, listener: KeyEventListener) -> None:
        listeners = self._listeners.get(event_type, [])
        if listener in listeners:
            listeners.remove(listener)

    def deliver(self, message: str) -> int:
        """Hand one SNS message to the listeners of its type; returns how many ran."""
        if len(message) > MAX_MESSAGE_BYTES:
            raise MalformedKeyEvent("the key event is too large")
        try:
            event = loads(message)  # strict: its type is logged, so it must be text a log line can carry
        except UntrustedInput:
            raise MalformedKeyEvent("the key event is not JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise MalformedKeyEvent("the key event has no type")
        listeners = self._listeners.get(event["type"], [])
        logger.info("key event", extra={"type": event["type"], "listeners": len(listeners)})
        for listener in listeners:
            listener(event)
        return len(listeners)

    def handle_sns_records(self, messages: Iterable[str]) -> int:
        return sum(self.deliver(message) for message in messages)
