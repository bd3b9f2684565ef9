"""``python -m local status|trigger|rotate|notifications|env``: talk to the stack of a state directory.

They read ``<state dir>/stack.json`` (never importing the stack itself, so they start fast) and call the stack's
control routes (:mod:`local.control`). A problem is one line on stderr, ``python -m local: ...``, and an exit code:
1 a run failed, 2 an unknown name, 4 no stack (no ``stack.json``, or its stack does not answer).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from local.state import NoRunningStack, pid_alive, read_state

__all__ = ["FAILED", "NO_STACK", "UNKNOWN_NAME", "CommandError", "env", "notifications", "rotate", "status", "trigger"]

FAILED, UNKNOWN_NAME, NO_STACK = 1, 2, 4
CONTROL_TIMEOUT = 180.0  # seconds: a trigger runs the schedule with Lambda's retries, a rotation four steps
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class CommandError(Exception):
    """A one-line message for stderr and the exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _state(state_dir: Path) -> dict[str, Any]:
    try:
        return read_state(state_dir)
    except NoRunningStack as missing:
        raise CommandError(NO_STACK, str(missing)) from None


def _control(state_dir: Path, method: str, route: str) -> tuple[int, dict[str, Any]]:
    state = _state(state_dir)
    api = urllib.parse.urlsplit(str(state.get("api_url", "")))
    host = "127.0.0.1" if api.hostname == "0.0.0.0" else api.hostname
    if api.scheme != "http" or host not in LOOPBACK:
        raise CommandError(NO_STACK, f"{state_dir / 'stack.json'} names {api.geturl()!r}: not a local stack's API")
    url = f"http://{host if ':' not in str(host) else f'[{host}]'}:{api.port}/_local/{route}"
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT) as response:  # noqa: S310 (http, built above)
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.load(error)
        except ValueError:
            raise CommandError(FAILED, f"{url} answered {error.code}, not the local stack's JSON") from None
    except TimeoutError:
        raise CommandError(FAILED, f"the local stack did not answer within {CONTROL_TIMEOUT:.0f} s ({url})") from None
    except (urllib.error.URLError, OSError) as error:
        pid = state.get("pid")
        why = "is not running (it did not stop cleanly)" if not pid_alive(pid) else "does not answer"
        reason = getattr(error, "reason", error)
        raise CommandError(
            NO_STACK,
            f"the local stack of {state_dir / 'stack.json'} (pid {pid}, {api.geturl()}) {why}: {reason}; "
            "start one with `make run`",
        ) from None
    except ValueError:
        raise CommandError(FAILED, f"{url} answered something else than the local stack's JSON") from None


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2))


def _unknown(kind: str, name: str, known: list[str]) -> CommandError:
    return CommandError(UNKNOWN_NAME, f"unknown {kind} {name!r}; known: {', '.join(known) or '(none)'}")


def status(args: argparse.Namespace) -> int:
    _, payload = _control(args.state_dir, "GET", "status")
    _print_json(payload)
    return 0


def trigger(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        print("\n".join(_state(args.state_dir)["schedules"]) or "(no schedules)")
        return 0
    code, payload = _control(args.state_dir, "POST", f"trigger/{urllib.parse.quote(args.name, safe='')}")
    if code == 404 and payload.get("error") == "unknown_schedule":
        raise _unknown("schedule", args.name, payload.get("schedules", []))
    _print_json(payload)
    if payload.get("ok") is True:
        return 0
    reason = _reason(payload) + f" (after {payload.get('attempts', '?')} attempts; the event was dead-lettered)"
    print(f"python -m local: trigger {args.name} failed: {reason}", file=sys.stderr)
    return FAILED


def rotate(args: argparse.Namespace) -> int:
    if args.list or not args.secret:
        print("\n".join(_state(args.state_dir).get("rotations", [])) or "(no rotations)")
        return 0
    code, payload = _control(args.state_dir, "POST", f"rotate/{urllib.parse.quote(args.secret, safe='')}")
    if code == 404 and payload.get("error") == "unknown_rotation":
        raise _unknown("secret", args.secret, payload.get("rotations", []))
    _print_json(payload)
    if code == 200:
        return 0
    where = f" (at step {payload['step']}; the next rotate resumes it)" if payload.get("step") else ""
    print(f"python -m local: rotate {args.secret} failed: {_reason(payload)}{where}", file=sys.stderr)
    return FAILED


def _reason(payload: dict[str, Any]) -> str:
    reason = payload.get("reason")
    if isinstance(reason, dict):
        message = reason.get("message")
        return f"{reason.get('type')}: {message}" if message else str(reason.get("type"))
    return str(payload.get("error", "unknown error"))


def notifications(args: argparse.Namespace) -> int:
    after, printed_json = 0, False
    query = {"topic": args.topic} if args.topic else {}
    while True:
        code, payload = _control(
            args.state_dir, "GET", "notifications?" + urllib.parse.urlencode({**query, "after": after})
        )
        if code == 404 and payload.get("error") == "unknown_topic":
            raise _unknown("topic", args.topic, payload.get("topics", []))
        if code != 200:
            raise CommandError(FAILED, f"the stack refused the notifications request: {payload}")
        records = payload.get("notifications", [])
        after = max([after, *(int(r["sequence"]) for r in records)])
        if args.json and not args.follow:
            print(json.dumps([_contract(r) for r in records], indent=2))
            printed_json = True
        else:
            for record in records:
                _print_notification(record, args)
        if not args.follow:
            if not records and not printed_json and not args.links:
                print("(no notifications yet)", file=sys.stderr)
            return 0
        sys.stdout.flush()
        time.sleep(1)


def _contract(record: dict[str, Any]) -> dict[str, Any]:
    """The documented shape: topic_arn, subject, message, timestamp (ISO 8601), links (a list)."""
    return {key: record.get(key) for key in ("topic_arn", "subject", "message", "timestamp", "links")}


def _print_notification(record: dict[str, Any], args: argparse.Namespace) -> None:
    if args.links:
        for link in record.get("links", []):
            print(link)
    elif args.json:  # --follow --json: one object per line
        print(json.dumps(_contract(record)))
    else:
        topic = str(record["topic_arn"]).rsplit(":", 1)[-1]
        subject = f"  subject: {record['subject']}" if record.get("subject") else ""
        print(f"{record['timestamp']}  {topic}{subject}")
        print("  message: " + str(record["message"]))
        for link in record.get("links", []):
            print(f"  LINK: {link}")
        print()


def env(args: argparse.Namespace) -> int:
    state = _state(args.state_dir)
    exports = {
        **state["aws_exports"],
        "CREDPORT_ENDPOINT": state["api_url"],
        "CREDPORT_ISSUER": state["api_url"],
        "CREDPORT_LOCAL_AWS_ENDPOINT": state["aws_endpoint"],
        "CREDPORT_LOCAL_STATE_DIR": str(Path(args.state_dir).resolve()),
    }
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(str(value))}")
    return 0
