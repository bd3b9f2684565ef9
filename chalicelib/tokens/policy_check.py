"""``python -m chalicelib.tokens.policy_check FILE [--max-ttl N] [--algorithms A,B]``: validate a token policy
document before deploying it; every problem on its own line, exit 0 (valid) or 2.

Its own module: run as ``-m``, a module the package already imported (chalicelib.tokens imports the policy) would be
executed twice, with a RuntimeWarning. The command line is here, not in chalicelib.tokens.policy, so a function
serving tokens never imports argparse.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from chalicelib.config.environment import token_policy_limits
from chalicelib.tokens.policy import TokenPolicy
from chalicelib.tokens.policy_document import KNOWN_ALGORITHMS, check_deployment
from chalicelib.tokens.policy_errors import TokenPolicyInvalid

__all__ = ["main"]

_DEFAULT_CLI_ALGORITHMS = "RS256,ES384"  # the settings' default CREDPORT_TOKEN_ALGORITHMS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.tokens.policy_check",
        description="Validate a credport token policy document: 'ok: N rules', or every problem on stderr (exit 2).",
    )
    parser.add_argument("file", type=Path, help="the policy document (JSON)")
    # The deployment's own values when this shell has them (as the function will), else the settings' defaults.
    env_max_ttl, env_algorithms = token_policy_limits()
    parser.add_argument(
        "--max-ttl",
        type=int,
        default=env_max_ttl or "43200",  # a string default goes through type=int: a bad one is a usage error
        help="the deployment's CREDPORT_TOKEN_MAX_TTL (default: $CREDPORT_TOKEN_MAX_TTL, else 43200: %(default)s)",
    )
    parser.add_argument(
        "--algorithms",
        default=env_algorithms or _DEFAULT_CLI_ALGORITHMS,
        help=f"the deployment's enabled algorithms, comma-separated, of {', '.join(KNOWN_ALGORITHMS)}"
        " (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    algorithms = tuple(name.strip() for name in args.algorithms.split(",") if name.strip())
    try:
        check_deployment(args.max_ttl, algorithms)
    except ValueError as exc:
        parser.error(str(exc))  # exits 2 with the usage line
    try:
        policy = TokenPolicy.load(args.file, max_ttl=args.max_ttl, algorithms=algorithms)
    except TokenPolicyInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    count = len(policy.rules)
    print(f"ok: {count} rule{'' if count == 1 else 's'}")
    return 0


if __name__ == "__main__":
    try:
        status = main()
    except KeyboardInterrupt:
        status = 130
    except Exception as exc:  # no traceback, ever: a validator's user wants one line
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 2
    sys.exit(status)
