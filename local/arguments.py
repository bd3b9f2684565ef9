"""``python -m local``'s command line: its parser, and the checks of ``up``'s options that argparse cannot make
(before anything binds; defaults from the environment included, so a bad variable is a usage error of ``up``,
never a traceback of every command)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
from pathlib import Path
from typing import NoReturn

from chalicelib.config import TOKEN_SIGNERS, Env
from client.errors import one_line
from local import chalice_local
from local.banner import MEMORY

__all__ = ["EXIT_CODES", "UsageError", "build_parser", "check_up"]

EXIT_CODES = """exit codes:
  0    done (up: stopped by Ctrl-C or SIGTERM once it was up)
  1    trigger/rotate: the run failed (the reason on stderr); up: could not start (a port or the state dir in use,
       or another failure, named on one line; CREDPORT_DEBUG=1 adds its traceback)
  2    usage, or an unknown schedule, secret or topic (the known ones are listed)
  4    no local stack runs from the state dir (no stack.json, or its stack does not answer)
  130  up: Ctrl-C (SIGINT) before the stack was up; 143: SIGTERM then"""


class UsageError(Exception):
    """A mistake in ``up``'s options, found before anything starts: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser with a one-line usage error, ``python -m local: <what is wrong> (see <command> --help)``,
    exit 2 (its subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"python -m local: {one_line(message)} (see {self.prog} --help)\n")


def check_up(args: argparse.Namespace) -> None:
    """``up``'s options that argparse cannot check, before anything binds (defaults from the environment too)."""
    host = _loopback(args.host)
    if host is None:
        raise UsageError(
            f"--host must be a loopback address ({' or '.join(chalice_local.LOOPBACK_HOSTS)}): the stack's issuer is "
            f"plain http, which credport accepts on loopback only; not {args.host!r}"
        )
    args.host = host
    args.aws_port = _port_setting(args.aws_port, "--aws-port", "CREDPORT_LOCAL_AWS_PORT", 4566)
    args.api_port = _port_setting(args.api_port, "--api-port", "CREDPORT_LOCAL_API_PORT", 8000)
    if args.api_port and args.api_port == args.aws_port:
        raise UsageError(f"--api-port and --aws-port are both {args.api_port}: the API and the embedded AWS need two")
    if args.token_signer is None:
        args.token_signer = os.environ.get(Env.TOKEN_SIGNER) or "kms"
        if args.token_signer not in TOKEN_SIGNERS:
            raise UsageError(
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
        raise UsageError(f"${variable} (the {option} default): {error}") from None


def build_parser() -> argparse.ArgumentParser:
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
    # Every default is in the help; the ports' and the signer's come from the environment, read by check_up (so a
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
