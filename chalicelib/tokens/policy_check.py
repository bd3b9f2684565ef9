"""``python -m chalicelib.tokens.policy_check FILE [--max-ttl N] [--algorithms A,B]``: validate a token policy
document before deploying it; every problem on its own line, exit 0 (valid) or 2.

Its own module: run as ``-m``, a module the package already imported (chalicelib.tokens imports the policy) would be
executed twice, with a RuntimeWarning.
"""

from __future__ import annotations

import sys

from chalicelib.tokens.policy import main

__all__: list[str] = []

if __name__ == "__main__":
    try:
        status = main()
    except KeyboardInterrupt:
        status = 130
    except Exception as exc:  # no traceback, ever: a validator's user wants one line
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 2
    sys.exit(status)
