"""``python -m local chalice``: `chalice local` against the running local stack, in one command.

`chalice local` runs the app in one process with the environment it is started in; credport's app needs its
resources' names (``CREDPORT_*``, :mod:`chalicelib.config`) and an AWS that holds them. This command takes both from
the stack's state file (``stack.json``: the app environment provisioned from template.yaml, the embedded AWS's
endpoint, the developer profile) and replaces itself with ``chalice local`` (exec: Ctrl-C and exit codes are
chalice's own). Differences from the stack's own API (``make run``):

- every route calls AWS as the developer (an administrator of the embedded AWS), not as its function's role;
- ``CREDPORT_ISSUER`` is chalice local's own URL, so the tokens it would sign verify through its discovery document;
- chalice local checks no SigV4 signature and attaches no caller identity, so the IAM routes refuse every request
  (chalicelib.api.chalice_local_middleware), and ``POST /auto-id`` (a proxy integration of its own function, not a
  chalice route) does not exist there.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from local.state import NoRunningStack, pid_alive, read_state

__all__ = [
    "DEFAULT_PORT",
    "EXIT_NO_STACK",
    "EXIT_USAGE",
    "LOOPBACK_HOSTS",
    "Refused",
    "add_arguments",
    "chalice_command",
    "chalice_environment",
    "issuer_of",
    "run",
    "running_stack",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8001  # beside the stack's API (8000)
EXIT_USAGE = 2
EXIT_NO_STACK = 4
# http issuers are accepted on loopback only (chalicelib.config.parsers.parse_issuer), and chalice local has no TLS;
# its server is IPv4 only (http.server's default address family), so not ::1.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
_STATE_SHAPE: dict[str, type] = {
    "app_env": dict,
    "aws_exports": dict,
    "aws_endpoint": str,
    "region": str,
    "api_url": str,
}


class Refused(Exception):
    """A one-line reason not to start, and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run `chalice local` with the environment the running local stack's functions get (its resources, its"
        " embedded AWS as the developer, CREDPORT_ISSUER = chalice local's URL). Public routes work; IAM routes"
        " answer 403 (chalice local checks no SigV4 signature): call them on the stack's API."
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"chalice local's port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--stage", default="dev", help="the chalice stage of .chalice/config.json (default dev)")
    parser.add_argument(
        "--no-autoreload", action="store_true", help="do not restart when the code changes (chalice's option)"
    )


def run(args: argparse.Namespace, state_dir: Path) -> int:
    """Check everything that can be checked here, then exec chalice local; the exit code of a refusal."""
    try:
        host, port, stage = _checked(args.host, args.port, args.stage)
        state = running_stack(state_dir)
        environ = chalice_environment(state, os.environ, host=host, port=port)
        command = chalice_command(host=host, port=port, stage=stage, autoreload=not args.no_autoreload)
    except Refused as refused:
        print(f"python -m local: {refused}", file=sys.stderr)
        return refused.code
    print(
        f"python -m local: chalice local on {issuer_of(host, port)} (stage {stage}), calling the embedded AWS at"
        f" {state['aws_endpoint']} as the developer; IAM routes need the stack's own API: {state['api_url']}",
        flush=True,
    )
    os.chdir(REPO_ROOT)
    os.execve(command[0], command, environ)  # noqa: S606 (the venv's chalice, a fixed argument list)
    return 0  # not reached but by a test that stands in for os.execve


def _checked(host: str, port: int, stage: str) -> tuple[str, int, str]:
    if host not in LOOPBACK_HOSTS:
        raise Refused(
            f"--host must be a loopback address ({', '.join(LOOPBACK_HOSTS)}): the issuer is plain http", EXIT_USAGE
        )
    if not 1 <= port <= 65535:
        raise Refused(f"--port must be between 1 and 65535, got {port}", EXIT_USAGE)
    stages = _stages()
    if stage not in stages:
        raise Refused(f"no stage {stage!r} in .chalice/config.json (stages: {', '.join(stages)})", EXIT_USAGE)
    if not _port_free(host, port):
        raise Refused(f"port {port} on {host} is in use: choose another with --port", 1)
    return host, port, stage


def _stages() -> list[str]:
    config = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())
    return sorted(config.get("stages", {}))


def running_stack(state_dir: Path) -> dict[str, Any]:
    """The state of the stack running from ``state_dir``: its file, written by a live process whose embedded AWS
    answers (a stack killed without cleanup leaves its file behind)."""
    try:
        state = read_state(state_dir)
    except NoRunningStack:
        _no_stack(state_dir)
    if not all(isinstance(state.get(k), kind) for k, kind in _STATE_SHAPE.items()):
        _no_stack(state_dir)
    if not pid_alive(state.get("pid")) or not _answers(str(state["aws_endpoint"])):
        _no_stack(state_dir)
    return state


def _no_stack(state_dir: Path) -> NoReturn:
    raise Refused(f"no local stack running (looked in {state_dir}): start one with make run", EXIT_NO_STACK)


def _answers(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    if not parts.hostname or not parts.port:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return True
    except OSError:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as chalice's server binds
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def issuer_of(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def chalice_environment(
    state: Mapping[str, Any], environ: Mapping[str, str], *, host: str, port: int
) -> dict[str, str]:
    """The environment the stack's functions get, for one process serving every route as the developer.

    The caller's own ``AWS_*`` variables are dropped (they could name a real account, a profile or pytest's mock, and
    botocore prefers keys in the environment to a profile); its ``CREDPORT_*`` settings stay (the stack's functions
    inherit them from ``make run`` too), under the stack's resource names, which win."""
    kept = {name: value for name, value in environ.items() if not name.startswith("AWS_")}
    region = str(state["region"])
    return {
        "POWERTOOLS_METRICS_DISABLED": "true",  # as the stack: no metrics backend locally (the caller may override)
        **kept,
        **{str(k): str(v) for k, v in state["app_env"].items()},
        **{str(k): str(v) for k, v in state["aws_exports"].items()},  # the developer profile: its files and name
        "AWS_ENDPOINT_URL": str(state["aws_endpoint"]),
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "CREDPORT_ISSUER": issuer_of(host, port),
    }


def chalice_command(*, host: str, port: int, stage: str, autoreload: bool = True) -> list[str]:
    """``chalice local`` of the same environment as this interpreter (the venv's), on the repository."""
    chalice = Path(sys.executable).parent / "chalice"
    if not chalice.exists():
        raise Refused(f"chalice is not installed beside {sys.executable}: run make install", 1)
    command = [str(chalice), "--project-dir", str(REPO_ROOT), "local", "--host", host, "--port", str(port)]
    command += ["--stage", stage]
    if not autoreload:
        command.append("--no-autoreload")
    return command
