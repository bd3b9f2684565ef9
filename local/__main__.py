"""``python -m local`` — run the local stack (``up``) or talk to a running one.

python -m local [up] [--aws-port N] [--api-port N] [--prefix P] [--ready-file F] [--plugin MODULE]
                    [--token-signer kms|envelope] [--organization]
python -m local status
python -m local trigger SCHEDULE      (or --list)
python -m local rotate SECRET         (or --list)
python -m local notifications [--topic T] [--json | --links] [--follow]   (what SNS published: transfer links)
python -m local env                   (export lines for the developer profile and the API)
python -m local chalice [--port 8001] [--stage dev] [--no-autoreload]   (chalice local against the running stack)

Every command takes --state-dir (default $CREDPORT_LOCAL_STATE_DIR, else .local in the repository).
"""

# ruff: noqa: E402 (the signal handlers go in before the imports: see _leave)
from __future__ import annotations

import os
import signal
from types import FrameType


def _leave(signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM before ``main`` took over: nothing started yet, so leave at once and quietly (the default
    handler would print a KeyboardInterrupt traceback out of whichever import the signal interrupted)."""
    os._exit(128 + signum)


if __name__ == "__main__":
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _leave)

import argparse
import contextlib
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from client.errors import DEBUG_VARIABLE, one_line
from local import chalice_local, commands
from local.arguments import UsageError, build_parser, check_up
from local.banner import banner

if TYPE_CHECKING:
    from local.stack import LocalStack

__all__ = ["banner", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT = 20.0  # seconds: then the process leaves anyway (a stop must never hang)


def main(argv: list[str] | None = None) -> int:
    if signal.getsignal(signal.SIGINT) is _leave:  # every command but `up` takes Ctrl-C as Python does
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir or Path(os.environ.get("CREDPORT_LOCAL_STATE_DIR") or REPO_ROOT / ".local")
    if args.command in (None, "up"):
        try:
            check_up(args)
        except UsageError as mistake:
            print(f"python -m local: {mistake}", file=sys.stderr)
            return 2
        return _up(args)
    if args.command == "chalice":
        return chalice_local.run(args, args.state_dir)
    handlers = {
        "status": commands.status,
        "trigger": commands.trigger,
        "rotate": commands.rotate,
        "notifications": commands.notifications,
        "env": commands.env,
    }
    try:
        return handlers[args.command](args)
    except commands.CommandError as error:
        print(f"python -m local: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:  # notifications --follow: Ctrl-C ends it
        return 0


class _Signals:
    """SIGINT and SIGTERM, by phase. While starting, leave at once: raising into the start instead proved unsafe (a
    signal landing in a ``__del__`` or any code that swallows exceptions was lost, with a traceback, and the stack
    came up and stopped at once with exit 0); nothing a start holds outlives the process but ``stack.json``, which
    :attr:`abandon` removes. While serving, note it (the main loop stops the stack: stopping inside the handler could
    deadlock on a lock the interrupted code holds). While stopping, a second signal leaves at once."""

    def __init__(self) -> None:
        self.phase = "starting"
        self.received: list[int] = []
        self.abandon: Callable[[], None] = lambda: None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.phase == "serving":
            return
        if self.phase == "starting":
            # os.write, not print: the signal may have interrupted a write to sys.stderr (a reentrant call raises)
            name = signal.Signals(signum).name
            os.write(2, f"\npython -m local: {name} while starting; stopping\n".encode())
            with contextlib.suppress(Exception):
                self.abandon()
        _flush()
        os._exit(128 + signum)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe, or a write the signal interrupted
            stream.flush()


def _up(args: argparse.Namespace) -> int:
    signals = _Signals()  # first: the stack's imports take seconds, and a signal then must end them too
    stack: LocalStack | None = None
    try:
        from local.ports import PortUnavailable
        from local.state import StateDirInUse

        stack = _new_stack(args)
        signals.abandon = stack.abandon
        try:
            info = stack.start()
        except (PortUnavailable, StateDirInUse) as refused:
            print(f"python -m local: {refused}", file=sys.stderr)
            _stop(stack, signals)
            return 1
        signals.phase = "serving"  # from here a signal is noted, and the loop below stops the stack
        print(banner(info, args.state_dir), flush=True)
        if args.ready_file and not _write_ready_file(args.ready_file, info.to_json()):
            _stop(stack, signals)
            return 1
        while not signals.received:
            time.sleep(0.2)
        print("\nstopping credport local stack...", flush=True)
        _stop(stack, signals)
        print("stopped.", flush=True)
        return 0
    except Exception as error:  # not the user's mistake: one line (the traceback with CREDPORT_DEBUG=1), exit 1
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            traceback.print_exc()
        print(f"python -m local: could not start: {type(error).__name__}: {one_line(str(error))}", file=sys.stderr)
        if stack is not None:
            _stop(stack, signals)
        return 1


def _new_stack(args: argparse.Namespace) -> LocalStack:
    from local.stack import LocalStack, StackOptions

    return LocalStack(
        StackOptions(
            host=args.host,
            aws_port=args.aws_port,
            api_port=args.api_port,
            prefix=args.prefix,
            region=args.region,
            state_dir=args.state_dir,
            plugins=tuple(args.plugin),
            quiet=args.quiet,
            retry_delay=args.retry_delay,
            token_signer=args.token_signer,
            organization=args.organization,
        )
    )


def _write_ready_file(path: Path, details: dict[str, object]) -> bool:
    try:  # atomically: whoever waits for the file must never read half of it
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(details))
        partial.replace(path)
    except OSError as error:
        print(f"python -m local: cannot write --ready-file {path}: {error.strerror}", file=sys.stderr)
        return False
    return True


def _stop(stack: LocalStack, signals: _Signals) -> None:
    """Stop within STOP_TIMEOUT, whatever a part of the stack does; past it, leave (daemon threads die with us)."""
    signals.phase = "stopping"
    worker = threading.Thread(target=stack.stop, name="stop", daemon=True)
    worker.start()
    worker.join(STOP_TIMEOUT)
    if worker.is_alive():
        print(f"python -m local: the stack did not stop within {STOP_TIMEOUT:.0f} s; leaving anyway", file=sys.stderr)
        _flush()
        os._exit(1)


if __name__ == "__main__":
    code = main()
    # Leave without the interpreter's shutdown: after `up` the servers' and the pump's daemon threads may still run,
    # and tearing modules down under them prints tracebacks; what the stack holds it released when it stopped.
    _flush()
    os._exit(code)
