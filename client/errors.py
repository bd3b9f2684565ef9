"""How both command lines end: one exit-code table, one stderr line per failure, never a traceback.

Every command of ``credport`` and ``credport-admin`` runs inside :func:`run`. A failure a user can act on (a
:class:`CliError`, or a known error of requests, botocore or credport's own code: :mod:`client.failures`) becomes
one line ``<program>: <what happened>: <what to do>`` on standard error and an :class:`Exit` code; anything else is
an internal error (70, EX_SOFTWARE from sysexits.h), its traceback shown only with ``CREDPORT_DEBUG=1``. Standard
output carries only a command's result, so a script reading it (``--json``) never has to tell an error from an
answer: on failure it is left empty and the exit code says which kind of failure it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import traceback
import unicodedata
from collections.abc import Callable
from enum import IntEnum

__all__ = ["DEBUG_VARIABLE", "MEANINGS", "CliError", "Exit", "exit_codes_epilog", "one_line", "redact", "run"]

DEBUG_VARIABLE = "CREDPORT_DEBUG"
_MAX_MESSAGE = 600  # one terminal line or a few: a longer message is cut, never a page of server text


class Exit(IntEnum):
    """The exit codes of both CLIs (README "Exit codes"; a test keeps the two equal)."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    UNAVAILABLE = 3
    CONFIG = 4
    INTERNAL = 70
    INTERRUPTED = 130
    BROKEN_PIPE = 141


MEANINGS: dict[Exit, str] = {
    Exit.OK: "done",
    Exit.REFUSED: "a definite no: the service or AWS refused the request, or the token is invalid",
    Exit.USAGE: "usage error (a bad option), or bad local input (a file or value named on the command line)",
    Exit.UNAVAILABLE: "cannot reach the service, or it failed (network, DNS, TLS, timeout, 5xx): retrying may help",
    Exit.CONFIG: "configuration or credentials: AWS profile, credentials or region, no such stack, no local"
    " stack, no session yet, an endpoint or issuer that is not credport's",
    Exit.INTERNAL: "internal error (a bug): run again with CREDPORT_DEBUG=1 for the traceback",
    Exit.INTERRUPTED: "interrupted (Ctrl-C)",
    Exit.BROKEN_PIPE: "standard output was closed early (… | head) or from the start (>&-): nothing more is"
    " written, quietly",
}


class CliError(Exception):
    """A failure the user can act on; its message is the whole line after ``<program>: `` (no secret in it)."""

    exit_code: Exit = Exit.USAGE

    def __init__(self, message: str, exit_code: Exit | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def exit_codes_epilog() -> str:
    """The exit-code table for a parser's ``--help`` epilog (use argparse.RawDescriptionHelpFormatter)."""
    rows = "\n".join(f"  {int(code):>3}  {MEANINGS[code]}" for code in Exit)
    return (
        "exit codes:\n"
        f"{rows}\n"
        "Errors are one line on standard error; standard output holds only results (empty on failure, --json too)."
    )


# What a server (API Gateway's IncompleteSignatureException echoes the whole Authorization header), AWS or a library
# may put in a message that must never reach a terminal or a log: request signatures, security tokens, access key
# ids, JWTs. Matched by shape, wherever they stand in the text.
# A name, then '=' ':' or '%3D' (URL-encoded), quotes allowed around either: a query, a header line, JSON, a repr.
_NAMED = (
    r"(?i)(?<![A-Za-z0-9-])[\"']?(Credential|Signature|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token"
    r"|aws_session_token|aws_secret_access_key|SessionToken|SecretAccessKey|Cookie|Set-Cookie|password)"
    r"[\"']?\s*(?:=|:|%3D)\s*[\"']?"
)
_SECRETS = (
    # Authorization's value is a scheme, then its credential (SigV4's further parameters are caught by name below).
    re.compile(
        r"(?i)(?<![A-Za-z0-9-])[\"']?(Authorization)[\"']?\s*(?:=|:|%3D)\s*[\"']?(?!<redacted>)[A-Za-z0-9-]+\s+[^\s\"',:]+"
    ),
    re.compile(_NAMED + r"[^\s,&'\"})\]:]+"),
    re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # Signatures and digests as hex.
    re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{40,}(?![0-9A-Za-z])"),
)
_OPAQUE = re.compile(r"[A-Za-z0-9+/=]{60,}")  # base64's alphabet: a session token is hundreds of these


def _opaque(match: re.Match[str]) -> str:
    """An opaque run, whatever its name (or none): redacted when it has the mix of a credential (digits and capitals
    throughout, as base64 of random bytes does), kept when it reads like a path or words."""
    run = match.group(0)
    digits = sum(c.isdigit() for c in run)
    upper = sum(c.isupper() for c in run)
    return "<redacted>" if digits >= 6 and upper >= 6 else run


def redact(text: str) -> str:
    """``text`` with every credential-shaped value replaced by ``<redacted>`` (its name, where it has one, kept)."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: f"{m.group(1)}=<redacted>" if m.groups() else "<redacted>", text)
    return _OPAQUE.sub(_opaque, text)


def one_line(text: str) -> str:
    """``text`` as one bounded line: control, bidi and other format characters (from a server's answer, say) are
    shown as '?', so nothing can rewrite the terminal or hide part of the line; credentials are redacted."""
    text = redact(text)
    cleaned = "".join(
        " " if char in "\t\r\n" else "?" if unicodedata.category(char) in ("Cc", "Cf", "Cs") else char for char in text
    )
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= _MAX_MESSAGE else cleaned[: _MAX_MESSAGE - 1] + "…"


def run(program: str, command: Callable[[], int]) -> int:
    """``command()``'s exit code, or the code of the failure it raised, reported as one line on standard error."""
    from client.failures import describe

    try:
        code = command()
        if sys.stdout is None:  # closed from the start (>&-): the result went nowhere, as into a closed pipe
            return Exit.BROKEN_PIPE if code == Exit.OK else code
        sys.stdout.flush()  # a reader that went away (| head) shows here, not in the interpreter's own final flush
    except KeyboardInterrupt:
        _say(program, "interrupted")
        return Exit.INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return Exit.BROKEN_PIPE
    except Exception as error:  # every failure ends here: known ones as their line, the rest as an internal error
        known = describe(error)
        if _debug():
            traceback.print_exc()
        if known is None:
            _say(program, f"internal error ({type(error).__name__}); run with {DEBUG_VARIABLE}=1 for the traceback")
            return Exit.INTERNAL
        exit_code, message = known
        _say(program, message)
        return exit_code
    return code


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _say(program: str, message: str) -> None:
    # Standard error closed (2>&-: sys.stderr is None, and print(file=None) would write to standard output, which
    # holds results only) or gone: the exit code is all that is left to say it.
    if sys.stderr is None:
        return
    with contextlib.suppress(OSError):
        print(f"{program}: {one_line(message)}", file=sys.stderr, flush=True)


def _quiet_stdout() -> None:
    """Python's advice (library docs, signal module, "Note on SIGPIPE"): point standard output at /dev/null, so the
    interpreter's last flush at exit cannot fail a second time on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real descriptor (captured in-process, or None): nothing to flush
        pass
