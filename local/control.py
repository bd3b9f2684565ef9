"""The local stack's control routes, under ``/_local/`` of its API (never part of the deployed API).

- ``GET status``: schedules, rotations, deliveries so far, and who serves (pid, state dir, API URL: what a second
  ``up`` names when the port is taken);
- ``POST trigger/<schedule>``: fire a schedule now (with Lambda's retries); a failure says why;
- ``POST rotate/<secret>``: run a secret's rotation now; a failure says at which step and why;
- ``GET notifications[?topic=<name or ARN>&after=<sequence>]``: what SNS published, oldest first.

Unknown names answer 404 with the known ones. Reasons are exception types and first message lines, never values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from local.notifications import NotificationLog
from local.pump import EventPump

__all__ = ["COMMANDS", "ControlRoutes"]

COMMANDS = ["GET status", "POST trigger/NAME", "POST rotate/SECRET", "GET notifications[?topic=T&after=N]"]
Answer = tuple[int, dict[str, Any]]


@dataclass
class ControlRoutes:
    pump: EventPump
    rotate: Callable[[str], Answer]
    rotations: Callable[[], Sequence[str]]
    notifications: NotificationLog
    topics: Callable[[], Sequence[str]]  # the ARNs of the embedded SNS's topics, now
    identity: dict[str, Any]  # pid, state_dir, api_url

    def __call__(self, method: str, path: str, body: bytes) -> Answer:
        route, _, query = path.partition("?")
        command, _, quoted = route.partition("/")
        argument = unquote(quoted)  # a secret's name holds slashes: the CLI quotes them
        if method == "GET" and command == "status":
            return 200, {
                **self.identity,
                "schedules": list(self.pump.schedule_names),
                "rotations": sorted(self.rotations()),
                "deliveries": dict(self.pump.stats),
            }
        if method == "POST" and command == "trigger":
            if argument not in self.pump.schedule_names:
                return 404, {"error": "unknown_schedule", "schedules": list(self.pump.schedule_names)}
            return 200, {"schedule": argument, **self.pump.fire_report(argument).to_json()}
        if method == "POST" and command == "rotate":
            return self.rotate(argument)
        if method == "GET" and command == "notifications" and not argument:
            return self._notifications(parse_qs(query))
        return 404, {"error": "unknown_command", "commands": COMMANDS}

    def _notifications(self, query: dict[str, list[str]]) -> Answer:
        after_text = query.get("after", ["0"])[-1]
        if not after_text.isdigit():
            return 400, {"error": "bad_after", "message": "after is a sequence number (0 or more)"}
        topic_arn = None
        if "topic" in query:
            wanted, arns = query["topic"][-1], sorted(self.topics())
            matches = [arn for arn in arns if wanted in (arn, arn.rsplit(":", 1)[-1])]
            if not matches:
                return 404, {"error": "unknown_topic", "topics": [arn.rsplit(":", 1)[-1] for arn in arns]}
            topic_arn = matches[0]
        return 200, {"notifications": self.notifications.since(int(after_text), topic_arn)}
