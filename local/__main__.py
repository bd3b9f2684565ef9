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

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from chalicelib.config import TOKEN_SIGNERS, Env
from local import chalice_local, commands

if TYPE_CHECKING:
    from local.stack import LocalStack, StackInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
MEMORY = (
    "The local stack keeps everything in memory: stopping it forgets every secret, key, client and token "
    "(each start makes a new developer access key)."
)
EXIT_CODES = """exit codes:
  0    done (up: stopped by Ctrl-C or SIGTERM once it was up)
  1    trigger/rotate: the run failed (the reason on stderr); up: could not start (a port or the state dir in use)
  2    usage, or an unknown schedule, secret or topic (the known ones are listed)
  4    no local stack runs from the state dir (no stack.json, or its stack does not answer)
  130  up: Ctrl-C (SIGINT) before the stack was up; 143: SIGTERM then"""
STOP_TIMEOUT = 20.0  # seconds: then the process leaves anyway (a stop must never hang)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir or Path(os.environ.get("CREDPORT_LOCAL_STATE_DIR") or REPO_ROOT / ".local")
    if args.command in (None, "up"):
        if args.api_port and args.api_port == args.aws_port:
            parser.error(f"--api-port and --aws-port are both {args.api_port}: the API and the embedded AWS need two")
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


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
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
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--aws-port",
        type=_port,
        default=_port(os.environ.get("CREDPORT_LOCAL_AWS_PORT") or "4566"),
        help="the embedded AWS's port (default: $CREDPORT_LOCAL_AWS_PORT or 4566)",
    )
    parser.add_argument(
        "--api-port",
        type=_port,
        default=_port(os.environ.get("CREDPORT_LOCAL_API_PORT") or "8000"),
        help="the API's port (default: $CREDPORT_LOCAL_API_PORT or 8000)",
    )
    parser.add_argument("--prefix", default="credport-dev")
    parser.add_argument("--region", default="us-east-1")
    _state_dir(parser, state_dir_default)
    parser.add_argument("--ready-file", type=Path, help="write the stack's details here once it serves")
    parser.add_argument("--plugin", action="append", default=[], help="module to import after start (tests)")
    parser.add_argument("--retry-delay", type=int, default=1, help="seconds before a failed event is retried")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--token-signer",
        choices=TOKEN_SIGNERS,
        default=os.environ.get(Env.TOKEN_SIGNER) or "kms",
        help="where token signing keys live (template parameter TokenSigner; default: $CREDPORT_TOKEN_SIGNER or kms)",
    )
    parser.add_argument(
        "--organization",
        action="store_true",
        help="an AWS Organization of the stack's account, a member account and an outsider (template OrganizationId)",
    )


class _Interrupted(BaseException):
    """SIGINT or SIGTERM while the stack starts: unwinds the start (a BaseException: no ``except Exception`` in
    the start-up code swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """SIGINT and SIGTERM, by phase: while starting, unwind the start at once; while serving, note it (the main
    loop stops the stack: the handler runs between any two bytecodes, and stopping there could deadlock on a lock the
    interrupted code holds); while stopping, a second signal leaves at once."""

    def __init__(self) -> None:
        self.phase = "starting"
        self.received: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.phase == "starting":
            self.phase = "stopping"
            raise _Interrupted(signum)
        if self.phase == "stopping":
            os._exit(128 + signum)


def _up(args: argparse.Namespace) -> int:
    try:
        signals = _Signals()  # first: the stack's imports take seconds, and a signal then must end them too
        started = _started(args, signals)
    except _Interrupted as interrupted:
        return 128 + interrupted.signum
    if isinstance(started, int):
        return started
    stack, info = started
    print(banner(info), flush=True)
    if args.ready_file:
        try:  # atomically: whoever waits for the file must never read half of it
            partial = args.ready_file.with_name(args.ready_file.name + ".partial")
            partial.write_text(json.dumps(info.to_json()))
            partial.replace(args.ready_file)
        except OSError as error:
            print(f"python -m local: cannot write --ready-file {args.ready_file}: {error.strerror}", file=sys.stderr)
            _stop(stack, signals)
            return 1
    while not signals.received:
        time.sleep(0.2)
    print("\nstopping credport local stack...", flush=True)
    _stop(stack, signals)
    print("stopped.", flush=True)
    return 0


def _started(args: argparse.Namespace, signals: _Signals) -> tuple[LocalStack, StackInfo] | int:
    """The started stack, or the exit code of a start that failed (after stopping what started; one line on
    stderr). A signal stops what started, then raises :class:`_Interrupted`."""
    from local.ports import PortUnavailable
    from local.stack import LocalStack, StackOptions
    from local.state import StateDirInUse

    stack = LocalStack(
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
    try:
        info = stack.start()
        signals.phase = "serving"  # from here a signal is noted, and the main loop stops the stack
    except _Interrupted as interrupted:
        print(f"\npython -m local: {signal.Signals(interrupted.signum).name} while starting; stopping", file=sys.stderr)
        _stop(stack, signals)
        raise
    except (PortUnavailable, StateDirInUse) as refused:
        print(f"python -m local: {refused}", file=sys.stderr)
        _stop(stack, signals)
        return 1
    except Exception as error:
        traceback.print_exc()  # not a mistake of the user's: the whole story, then the one line
        print(f"python -m local: the local stack could not start: {type(error).__name__}: {error}", file=sys.stderr)
        _stop(stack, signals)
        return 1
    return stack, info


def _stop(stack: LocalStack, signals: _Signals) -> None:
    """Stop within STOP_TIMEOUT, whatever a part of the stack does; past it, leave (daemon threads die with us)."""
    signals.phase = "stopping"
    worker = threading.Thread(target=stack.stop, name="stop", daemon=True)
    worker.start()
    worker.join(STOP_TIMEOUT)
    if worker.is_alive():
        print(f"python -m local: the stack did not stop within {STOP_TIMEOUT:.0f} s; leaving anyway", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def banner(info: StackInfo) -> str:
    exports = " ".join(f"{k}={v}" for k, v in info.developer.exports().items())
    schedules = ", ".join(info.schedules) or "none yet"
    width = max(len(info.api_url), len(info.aws_endpoint)) + 2
    return f"""
credport local stack is up
  API              {info.api_url:<{width}}(IAM routes: SigV4 and execute-api:Invoke, as API Gateway)
  embedded AWS     {info.aws_endpoint:<{width}}(moto; account {info.account_id}, {info.region})
  developer        {info.developer.user_arn}
  workload role    {info.developer.role_arn}
  schedules        {schedules}

{MEMORY}

Use the developer identity in another shell:
  export {exports}
  (or: eval "$(.venv/bin/python -m local env)", which also sets CREDPORT_ENDPOINT and CREDPORT_ISSUER)

Try next:
  curl {info.api_url}/health
  .venv/bin/awscurl --service execute-api --region {info.region} {info.api_url}/whoami
  .venv/bin/credport token --endpoint {info.api_url} | .venv/bin/credport verify - --issuer {info.api_url}
  .venv/bin/python -m local notifications     (what SNS sent: a transfer's download link)
{_organization_lines(info)}
Ctrl-C stops everything.
"""


def _organization_lines(info: StackInfo) -> str:
    """With --organization: the organization, and the two callers' profiles (the developer's exports first)."""
    org = info.organization
    if org is None:
        return ""
    lines = [
        "",
        f"Organization {org.id} (management account {org.management_account}); callers of other accounts:",
        *(f"  {profile:<25} {arn}" for profile, arn in org.callers.items()),
        "  AWS_PROFILE=<profile> .venv/bin/credport token --endpoint " + info.api_url,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
