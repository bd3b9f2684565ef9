"""``python -m local`` — run the local stack (``up``) or talk to a running one.

python -m local [up] [--aws-port N] [--api-port N] [--prefix P] [--ready-file F] [--plugin MODULE]
                    [--token-signer kms|envelope] [--organization]
python -m local status
python -m local trigger SCHEDULE      (or --list)
python -m local rotate SECRET
python -m local env                   (export lines for the developer profile)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chalicelib.config import TOKEN_SIGNERS, Env
from local.stack import REPO_ROOT, LocalStack, StackInfo, StackOptions, read_state

STATE_DIR = Path(os.environ.get("CREDPORT_LOCAL_STATE_DIR", REPO_ROOT / ".local"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description="credport's local stack")
    commands = parser.add_subparsers(dest="command")
    up = commands.add_parser("up", help="start the stack in the foreground (default)")
    _up_arguments(up)
    commands.add_parser("status", help="what the running stack delivers and can trigger")
    trigger = commands.add_parser("trigger", help="fire a schedule now")
    trigger.add_argument("name", nargs="?")
    trigger.add_argument("--list", action="store_true")
    rotate = commands.add_parser("rotate", help="rotate a secret now (runs its rotation function)")
    rotate.add_argument("secret")
    commands.add_parser("env", help="print the exports for the developer profile")
    _up_arguments(parser)
    args = parser.parse_args(argv)
    if args.command in (None, "up"):
        return _up(args)
    if args.command == "env":
        for name, value in _state()["aws_exports"].items():
            print(f"export {name}={value}")
        return 0
    if args.command == "status":
        return _print_control("GET", "status")
    if args.command == "trigger":
        if args.list or not args.name:
            print("\n".join(_state()["schedules"]) or "(no schedules)")
            return 0
        return _print_control("POST", f"trigger/{args.name}")
    return _print_control("POST", f"rotate/{args.secret}")


def _up_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--aws-port", type=int, default=int(os.environ.get("CREDPORT_LOCAL_AWS_PORT", "4566")))
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("CREDPORT_LOCAL_API_PORT", "8000")))
    parser.add_argument("--prefix", default="credport-dev")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
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


def _up(args: argparse.Namespace) -> int:
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
    # The handler only appends to a list: it runs in the main thread between any two bytecodes, and setting a
    # threading.Event there can deadlock on the Event's own lock when the signal lands while the main thread is
    # entering Event.wait() (the lock is not re-entrant). A sleeping loop wakes on the signal all the same.
    stop_requested: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stop_requested.append(signum))
    try:
        info = stack.start()
    except OSError as error:
        print(
            f"credport local stack could not start: {error} (is another stack running? "
            "set --aws-port/--api-port or CREDPORT_LOCAL_AWS_PORT/CREDPORT_LOCAL_API_PORT)",
            file=sys.stderr,
        )
        stack.stop()
        return 1
    print(banner(info), flush=True)
    if args.ready_file:
        # Atomically: whoever waits for the file must never read half of it.
        partial = args.ready_file.with_name(args.ready_file.name + ".partial")
        partial.write_text(json.dumps(info.to_json()))
        partial.replace(args.ready_file)
    while not stop_requested:
        time.sleep(0.2)
    print("\nstopping credport local stack...", flush=True)
    stack.stop()
    print("stopped.", flush=True)
    return 0


def banner(info: StackInfo) -> str:
    exports = " ".join(f"{k}={v}" for k, v in info.developer.exports().items())
    schedules = ", ".join(info.schedules) or "none yet"
    return f"""
credport local stack is up
  API              {info.api_url}      (IAM routes: SigV4 and execute-api:Invoke, as API Gateway)
  embedded AWS     {info.aws_endpoint}  (moto; account {info.account_id}, {info.region})
  developer        {info.developer.user_arn}
  workload role    {info.developer.role_arn}
  schedules        {schedules}

Use the developer identity in another shell:
  export {exports}

Try next:
  curl {info.api_url}/health
  .venv/bin/awscurl --service execute-api --region {info.region} {info.api_url}/whoami
  .venv/bin/credport token --endpoint {info.api_url} | .venv/bin/credport verify - --issuer {info.api_url}
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


def _state() -> dict[str, Any]:
    try:
        return read_state(STATE_DIR)
    except FileNotFoundError as missing:
        sys.exit(str(missing))


def _print_control(method: str, command: str) -> int:
    api_url = _state()["api_url"]
    if not api_url.startswith("http://127.0.0.1:"):
        sys.exit(f"refusing to send control commands to {api_url}: the local stack listens on 127.0.0.1")
    data = b"" if method == "POST" else None
    request = urllib.request.Request(f"{api_url}/_local/{command}", method=method, data=data)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            print(json.dumps(json.load(response), indent=2))
            return 0
    except urllib.error.HTTPError as error:
        print(json.dumps(json.load(error), indent=2))
        return 1


if __name__ == "__main__":
    sys.exit(main())
