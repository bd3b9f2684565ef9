"""``credport token``'s request to ``GET /token`` (token service v2): its options, and the query they make.

The query is a list of pairs, never a dict: ``aud`` repeats (one stays a string claim, several become an array
claim), and each request tag is a parameter of its own, ``tag.<key>=<value>``. :func:`client.aws_call.signed_request`
encodes the pairs as SigV4 canonicalises them, so a repeated key or a tag key holding ``:/=+@`` or a space is signed
as sent.

Only structural mistakes are caught here, those the command line alone already shows and that would otherwise
cost a round trip: a ``--tag`` without ``=``, an empty key, more audiences or tags than the service ever takes.
The rest (which characters, how long, reserved prefixes, keys unique whatever their case, duplicate audiences,
the ttl's range, which algorithms are enabled) is the server's to judge: it is the authority, and may be configured
more narrowly than any copy of its rules here would know; its refusal is printed as one line all the same.
"""

from __future__ import annotations

import argparse

from client.errors import CliError, Exit

__all__ = ["ALGORITHMS", "MAX_AUDIENCES", "MAX_TAGS", "TAG_PREFIX", "add_token_options", "split_tag", "token_query"]

# Every algorithm the service can sign with; a deployment enables some of them (its first is the default), and a
# choice it has not enabled is refused by the server (400 invalid_algorithm or 403 algorithm_not_allowed).
ALGORITHMS = ("RS256", "ES256", "ES384")
MAX_AUDIENCES = 10  # the service's limits, as STS GetWebIdentityToken's: never more, whatever the deployment
MAX_TAGS = 50
TAG_PREFIX = "tag."
_HELP = "(see credport token --help)"


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """``--aud``, ``--alg``, ``--ttl`` and ``--tag``; each left out is the service's own default."""
    parser.add_argument(
        "--aud",
        action="append",
        metavar="AUDIENCE",
        help=f"an audience; repeat for up to {MAX_AUDIENCES} (one is a string aud claim, several an array;"
        " default: the service's default audience)",
    )
    parser.add_argument(
        "--alg",
        choices=ALGORITHMS,
        help="signing algorithm; the deployment decides which are enabled (default: its first enabled one)",
    )
    parser.add_argument(
        "--ttl",
        type=int,
        metavar="SECONDS",
        help="lifetime in seconds, within the deployment's bounds (60-43200 unless configured narrower; default: the"
        " service's default)",
    )
    parser.add_argument(
        "--tag",
        action="append",
        metavar="KEY=VALUE",
        help=f"a request tag, a claim of the token; repeat for up to {MAX_TAGS}. Split at the first '=': the value"
        " may be empty or hold '=', the key cannot. The service checks the rest (AWS tag rules)",
    )


def token_query(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The query pairs for ``GET /token``, in the order given; a usage error (exit 2) for a structural mistake."""
    audiences: list[str] = args.aud or []
    tags: list[str] = args.tag or []
    if len(audiences) > MAX_AUDIENCES:
        raise _usage(f"--aud given {len(audiences)} times: a token has at most {MAX_AUDIENCES} audiences")
    if len(tags) > MAX_TAGS:
        raise _usage(f"--tag given {len(tags)} times: a token request has at most {MAX_TAGS} tags")
    if "" in audiences:  # `--aud "$UNSET"`: never a token for the default audience instead
        raise _usage("--aud is empty (leave --aud out for the service's default audience)")
    pairs = [("aud", audience) for audience in audiences]
    if args.alg is not None:
        pairs.append(("alg", args.alg))
    if args.ttl is not None:
        pairs.append(("ttl", str(args.ttl)))
    pairs.extend((TAG_PREFIX + key, value) for key, value in map(split_tag, tags))
    return pairs


def split_tag(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` split at the first ``=`` (the value may be empty or hold ``=``); a usage error otherwise."""
    key, equals, value = text.partition("=")
    if not equals:
        raise _usage(f"--tag {_shown(text)} is not KEY=VALUE (for an empty value: KEY=)")
    if not key:
        raise _usage(f"--tag {_shown(text)} has an empty key (KEY=VALUE: the key is before the first '=')")
    return key, value


def _usage(message: str) -> CliError:
    return CliError(f"{message} {_HELP}", Exit.USAGE)


def _shown(text: str) -> str:
    # Bounded, so the line's reason is never cut off (one_line bounds the whole line, and shows control characters).
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."
