"""Command-line arguments are untrusted text too: checked once, right after parsing, before any is used.

On POSIX, Python hands argv bytes that are not UTF-8 over as lone surrogates (``surrogateescape``); botocore, a
JSON document sealed for the server or an HTTP header would then fail on them with a traceback far from the cause.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from chalicelib.untrusted import first_unencodable

__all__ = ["parse_checked"]


def parse_checked(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, then a usage error (exit status 2) for any text argument that is not valid
    UTF-8; the message names the option, never its value. Paths are left alone: the OS takes them as bytes."""
    args = parser.parse_args(argv)
    bad = first_unencodable(vars(args))
    if bad is not None:
        parser.error(f"argument --{bad.replace('_', '-')} is not valid UTF-8 text")
    return args
