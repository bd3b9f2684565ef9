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
import ipaddress
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from chalicelib.config import TOKEN_SIGNERS, Env
from client.errors import DEBUG_VARIABLE, one_line
from local import chalice_local, commands
from local.banner import MEMORY, banner

if TYPE_CHECKING:
    from local.stack import LocalStack

__all__ = ["banner", "main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
EXIT_CODES = """exit codes:
  0    done (up: stopped by Ctrl-C or SIGTERM once it was up)
  1    trigger/rotate: the run failed (the reason on stderr); up: could not start (a port or the state dir in use,
       or another failure, named on one line; CREDPORT_DEBUG=1 adds its traceback)
  2    usage, or an unknown schedule, secret or topic (the known ones are listed)
  4    no local stack runs from the state dir (no stack.json, or its stack does not answer)
  130  up: Ctrl-C (SIGINT) before the stack was up; 143: SIGTERM then"""
STOP_TIMEOUT = 20.0  # seconds: then the process leaves anyway (a stop must never hang)


def main(argv: list[str] | None = None) -> int:
    if signal.getsignal(signal.SIGINT) is _leave:  # every command but `up` takes Ctrl-C as Python does
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parser = _parser()
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir or Path(os.environ.get("CREDPORT_LOCAL_STATE_DIR") or REPO_ROOT / ".local")
    if args.command in (None, "up"):
        try:
            _check_up(args)
        except _UsageError as mistake:
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


class _UsageError(Exception):
    """A mistake in ``up``'s options, found before anything starts: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser with a one-line usage error, ``python -m local: <what is wrong> (see <command> --help)``,
    exit 2 (its subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"python -m local: {one_line(message)} (see {self.prog} --help)\n")


def _check_up(args: argparse.Namespace) -> None:
    """``up``'s options that argparse cannot check, before anything binds (defaults from the environment too)."""
    host = _loopback(args.host)
    if host is None:
        raise _UsageError(
            f"--host must be a loopback address ({' or '.join(chalice_local.LOOPBACK_HOSTS)}): the stack's issuer is "
            f"plain http, which credport accepts on loopback only; not {args.host!r}"
        )
    args.host = host
    args.aws_port = _port_setting(args.aws_port, "--aws-port", "CREDPORT_LOCAL_AWS_PORT", 4566)
    args.api_port = _port_setting(args.api_port, "--api-port", "CREDPORT_LOCAL_API_PORT", 8000)
    if args.api_port and args.api_port == args.aws_port:
        raise _UsageError(f"--api-port and --aws-port are both {args.api_port}: the API and the embedded AWS need two")
    if args.token_signer is None:
        args.token_signer = os.environ.get(Env.TOKEN_SIGNER) or "kms"
        if args.token_signer not in TOKEN_SIGNERS:
            raise _UsageError(
                f"${Env.TOKEN_SIGNER} is {args.token_signer!r}: the --token-signer default must be one of "
                + ", ".join(TOKEN_SIGNERS)
            )


def _loopback(host: str) -> str | None:
    """``host`` as the stack names it in its URLs, if it is a loopback address an http issuer may have (chalicelib
    config's parse_issuer) and both servers can bind: 127.0.0.1 or localhost (::1 not yet: the API binds IPv4 only,
    and the stack's URLs do not bracket an IPv6 address)."""
    text = host.strip().lower().removeprefix("[").removesuffix("]")
    with contextlib.suppress(ValueError):
        text = ipaddress.ip_address(text).compressed
    return text if text in chalice_local.LOOPBACK_HOSTS else None


def _port_setting(given: int | None, option: str, variable: str, default: int) -> int:
    if given is not None:
        return given
    raw = os.environ.get(variable) or str(default)
    try:
        return _port(raw)
    except argparse.ArgumentTypeError as error:
        raise _UsageError(f"${variable} (the {option} default): {error}") from None


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="python -m local",
        description=f"credport's local stack. {MEMORY}",
        epilog=EXIT_CODES,
        formatter_class=formatter,
    )
    sub = parser.add_subparsers(dest="command")
    up = sub.add_parser("up", help="start the stack in the foreground (default)", description=MEMORY, epilog=EXIT_CODES)
    up.formatter_class = formatter
    _up_arguments(up, state_dir_default=argparse.SUPPRESS)
    _state_dir(sub.add_parser("status", help="what the running stack delivers and can trigger"))
    trigger = _state_dir(sub.add_parser("trigger", help="fire a schedule now (with Lambda's retries)"))
    trigger.add_argument("name", nargs="?", help="the schedule (none, or --list: list them)")
    trigger.add_argument("--list", action="store_true")
    rotate = _state_dir(sub.add_parser("rotate", help="rotate a secret now (runs its rotation function)"))
    rotate.add_argument("secret", nargs="?", help="the secret's name (none, or --list: list them)")
    rotate.add_argument("--list", action="store_true")
    notes = _state_dir(
        sub.add_parser(
            "notifications",
            help="what SNS published (a transfer's download link: no email leaves the local stack)",
            description="What the embedded SNS published, oldest first; every http(s) link in a message is listed.",
        )
    )
    notes.add_argument("--topic", help="only this topic (its name or ARN)")
    shape = notes.add_mutually_exclusive_group()
    shape.add_argument(
        "--json", action="store_true", help="a JSON array of {topic_arn, subject, message, timestamp, links}"
    )
    shape.add_argument("--links", action="store_true", help="only the links, one per line, newest last")
    notes.add_argument("--follow", action="store_true", help="keep printing new ones (with --json: one per line)")
    _state_dir(sub.add_parser("env", help="print the exports: developer profile, CREDPORT_ENDPOINT/ISSUER"))
    chalice = _state_dir(sub.add_parser("chalice", help="chalice local with the running stack's env"))
    chalice_local.add_arguments(chalice)
    _up_arguments(parser, state_dir_default=None)
    return parser


def _state_dir(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> argparse.ArgumentParser:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default,
        help="where the stack writes stack.json and the developer profile "
        "(default: $CREDPORT_LOCAL_STATE_DIR, else .local in the repository)",
    )
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535; 0: any free port)")
    return int(text)


def _up_arguments(parser: argparse.ArgumentParser, state_dir_default: object = None) -> None:
    # Every default is in the help; the ports' and the signer's come from the environment, read by _check_up (so a
    # bad variable is a usage error of `up`, never a traceback of every command).
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the loopback address both servers listen on: 127.0.0.1 or localhost (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--aws-port",
        type=_port,
        help="the embedded AWS's port; 0: any free one (default: $CREDPORT_LOCAL_AWS_PORT, else 4566)",
    )
    parser.add_argument(
        "--api-port",
        type=_port,
        help="the API's port; 0: any free one (default: $CREDPORT_LOCAL_API_PORT, else 8000)",
    )
    parser.add_argument(
        "--prefix", default="credport-dev", help="the template's Prefix: names every resource (default: credport-dev)"
    )
    parser.add_argument("--region", default="us-east-1", help="the embedded AWS's Region (default: us-east-1)")
    _state_dir(parser, state_dir_default)
    parser.add_argument(
        "--ready-file", type=Path, help="write the stack's details here (JSON) once it serves (default: none)"
    )
    parser.add_argument(
        "--plugin", action="append", default=[], help="module to import after start, repeatable (tests; default: none)"
    )
    parser.add_argument(
        "--retry-delay", type=int, default=1, help="seconds before a failed event is retried (default: 1)"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per request or event (default: off)")
    parser.add_argument(
        "--token-signer",
        choices=TOKEN_SIGNERS,
        help="where token signing keys live (template parameter TokenSigner;"
        " default: $CREDPORT_TOKEN_SIGNER, else kms)",
    )
    parser.add_argument(
        "--organization",
        action="store_true",
        help="an AWS Organization of the stack's account, a member account and an outsider (template OrganizationId;"
        " default: off)",
    )


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
