"""Both CLIs' argument parsing: one parser class (one-line usage errors, the exit-code table, ``--version``), the
options several commands share with their defaults spelled out in ``--help``, and the check every parsed argument
goes through.

Command-line arguments are untrusted text too: checked once, right after parsing, before any is used. On POSIX,
Python hands argv bytes that are not UTF-8 over as lone surrogates (``surrogateescape``); botocore, a JSON document
sealed for the server or an HTTP header would then fail on them with a traceback far from the cause.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any, NoReturn

from chalicelib.untrusted import first_unencodable
from client.errors import Exit, exit_codes_epilog, one_line
from client.failures import safe_url

__all__ = [
    "Parser",
    "add_aws_options",
    "add_endpoint",
    "add_json",
    "env_default",
    "new_parser",
    "parse_checked",
    "version_of",
]


class Parser(argparse.ArgumentParser):
    """argparse's parser with a one-line usage error, ``<program>: <what is wrong> (see <command> --help)``, exit
    status 2; every subcommand's parser is one too (argparse makes them of the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        program = self.prog.split(" ", 1)[0]
        self.exit(Exit.USAGE, f"{program}: {one_line(message)} (see {self.prog} --help)\n")


def version_of(distribution: str = "credport") -> str:
    """The installed distribution's version (pyproject.toml's ``version``), or ``unknown`` outside an install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def new_parser(prog: str, description: str) -> Parser:
    """A CLI's top-level parser: ``--version``, and the exit-code table as its epilog."""
    parser = Parser(prog=prog, description=description, epilog=exit_codes_epilog())
    parser.add_argument("--version", action="version", version=f"{prog} {version_of()}")
    return parser


def env_default(variable: str, otherwise: str | None = None) -> str:
    """``$VARIABLE`` and what it holds now, for an option's help: ``$CREDPORT_ENDPOINT, now 'https://…'``, or
    ``…, unset`` (then ``otherwise``, if given). Only ever used for names, URLs and paths; a URL is shown without its
    user info, query or fragment (a password, a presigned signature), anything else with credentials redacted."""
    value = os.environ.get(variable)
    if value:
        shown = safe_url(value) if "://" in value else value
        return f"${variable}, now {one_line(shown)!r}"
    return f"${variable}, unset" + (f"; else {otherwise}" if otherwise else "")


def add_endpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("CREDPORT_ENDPOINT"),
        help=f"the API's URL, with its stage (default: {env_default('CREDPORT_ENDPOINT')})",
    )


def add_aws_options(parser: argparse.ArgumentParser, what: str = "to sign with") -> None:
    """``--profile`` and ``--region``, whose defaults are botocore's own."""
    parser.add_argument(
        "--profile",
        help=f"AWS profile {what} (default: {env_default('AWS_PROFILE')}; unset: botocore's default chain,"
        " environment keys, ~/.aws/config's [default], an instance or task role)",
    )
    parser.add_argument(
        "--region",
        help="AWS region (default: an execute-api endpoint's own; else "
        f"{env_default('AWS_DEFAULT_REGION')}, else the profile's)",
    )


def add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as one line of JSON on standard output (errors stay one line on standard error)",
    )


def parse_checked(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, then a usage error (exit status 2) for any text argument that is not valid
    UTF-8; the message names the option, never its value. Paths are left alone: the OS takes them as bytes."""
    args = parser.parse_args(argv)
    bad = first_unencodable(vars(args))
    if bad is not None:
        parser.error(f"argument --{bad.replace('_', '-')} is not valid UTF-8 text")
    return args
