"""Auto-id client end to end: one ``credport autoid get --format credential-process`` process, as an AWS SDK runs
the ``credential_process`` of ``~/.aws/config``, next to one ``aws sts assume-role`` process for the same role.

Both run against the same local stack (:mod:`local.launcher`, its own, on loopback), timed from spawn to exit and
their output checked:

- subject: the installed console script (``.venv/bin/credport``) with a workload's environment (no AWS credentials,
  a HOME of its own, only its bundle): it loads the bundle, seals a request to the pinned RSA-4096 server key,
  ``POST /auto-id``; the server decrypts it, checks the proof, assumes the role on the embedded AWS and seals the
  answer, which the client opens and prints as ``{"Version": 1, "AccessKeyId", ...}``;
- baseline: the AWS CLI v1 that ``make install`` puts in ``.venv/awscli``, as the stack's developer (its
  profile, ``AWS_ENDPOINT_URL`` the embedded AWS): ``aws sts assume-role`` of the same role.

Uncached: ``credport autoid get`` keeps no credential cache (only ``credport autoid serve`` does, in its own
long-lived process), so every call is the whole path above, what each ``credential_process`` run costs.
Steady state: nothing rotates during the run (the local stack runs its schedules only when told to), and the
bundle is checked unchanged at the end: no call downloaded a new entropy generation or rewrote the bundle. The
first round of each side is a warm-up (a container's first auto-id call loads its keys).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Figure, paired
from bench.load_stack import BIN, enroll_autoid
from local.launcher import REPO_ROOT, RunningStack, child_env, launch

__all__ = ["AWS_CLI", "CREDPORT", "TARGET", "check_credentials", "measure", "run"]

TARGET = 3.0
CREDPORT = BIN / "credport"
AWS_CLI = REPO_ROOT / ".venv" / "awscli" / "bin" / "aws"
CALL_TIMEOUT = 60.0
# Each round spawns two processes on the wall clock (~1.1 s): with 15 rounds, runs stayed within +-10% of each other.
ROUNDS = 15
SESSION_NAME = "bench"
CREDENTIAL_KEYS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


def run(quick: bool = False) -> list[Figure]:
    _check_installed()
    if quick:
        return [_skipped()]
    workdir = Path(tempfile.mkdtemp(prefix="credport-bench-autoid-client-"))
    try:
        stack = launch(workdir / "stack", "--quiet")
        try:
            figure = measure(stack, workdir, rounds=ROUNDS)
        finally:
            stack.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [figure]


def measure(stack: RunningStack, workdir: Path, *, rounds: int, warmup: int = 1) -> Figure:
    """The figure against a running ``stack`` (the caller stops it); ``workdir`` holds the homes and the bundle."""
    role = _create_role(stack)
    home = workdir / "workload-home"
    home.mkdir(mode=0o700)
    bundle = home / "bundle.json"
    enroll_autoid(stack, f"bench-{uuid.uuid4().hex[:10]}", bundle, "--role", role)
    enrolled = _digest(bundle)
    subject = _credport_call(bundle, role)
    baseline = _aws_cli_call(stack, workdir, role)
    # Wall time, spawn to exit: the work is in the child processes and the stack, which this thread's CPU clock
    # (paired()'s default) does not see.
    measured = paired(
        subject, baseline, number=1, rounds=rounds, warmup=warmup, better="cheaper", clock=time.perf_counter
    )
    if _digest(bundle) != enrolled:
        raise RuntimeError("the bundle changed during the run (a rotation?): the figure is not the steady state")
    return Figure(
        key="autoid.client_end_to_end",
        name="auto-id client end to end (credport autoid get --format credential-process)",
        value=measured.subject,
        unit="s",
        baseline="aws sts assume-role (AWS CLI v1, fresh process)",
        baseline_value=measured.baseline,
        ratio=measured.ratio,
        spread=measured.spread,
        rounds=measured.rounds,
        target=f"<= {TARGET:g}x",
        met=measured.ratio <= TARGET,
        note="fresh processes, same stack and role; uncached (get has no cache); steady state (bundle unchanged)",
    )


def _check_installed() -> None:
    for executable, what in ((CREDPORT, "the credport console script"), (AWS_CLI, "the AWS CLI")):
        if not executable.exists():
            reinstall = "rm -f .venv/.installed-* && make install"
            raise RuntimeError(f"{what} not found at {executable}: reinstall with `{reinstall}`")


def _skipped() -> Figure:
    """Quick mode (the smoke run inside ``make test``): a local stack takes too long to start there. The value is
    one ``credport --version`` process (the client's start alone), so the console script is exercised at least."""
    started = time.perf_counter()
    subprocess.run([str(CREDPORT), "--version"], capture_output=True, check=True, timeout=CALL_TIMEOUT)
    return Figure(
        key="autoid.client_end_to_end",
        name="auto-id client end to end (credport autoid get --format credential-process)",
        value=time.perf_counter() - started,
        unit="s",
        target=f"<= {TARGET:g}x",
        met=True,
        note="skipped in quick mode: needs the local stack (value: one credport --version process)",
    )


def _create_role(stack: RunningStack) -> str:
    """A role in the name space auto-id may hand out (``<prefix>-autoid-…``), assumable by the account (the
    developer for the baseline, the auto-id function for the subject)."""
    name = f"{stack.info['prefix']}-autoid-bench-{uuid.uuid4().hex[:8]}"
    account = str(stack.info["account_id"])
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sts:AssumeRole"}],
    }
    role = stack.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    return str(role["Arn"])


def _credport_call(bundle: Path, role: str) -> Callable[[], None]:
    command = [str(CREDPORT), "autoid", "get", "--bundle", str(bundle), "--role-arn", role]
    command += ["--format", "credential-process"]
    # A workload's environment: no AWS credentials or configuration, no CREDPORT_* setting, a HOME of its own.
    env = {k: v for k, v in child_env().items() if not k.startswith("CREDPORT_")}
    env |= {"HOME": str(bundle.parent), "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}

    def call() -> None:
        document = _run("credport autoid get", command, env)
        if document.get("Version") != 1:
            raise RuntimeError("credport autoid get printed no credential_process document (Version 1)")
        check_credentials("credport autoid get", document)

    return call


def _aws_cli_call(stack: RunningStack, workdir: Path, role: str) -> Callable[[], None]:
    command = [str(AWS_CLI), "sts", "assume-role", "--role-arn", role, "--role-session-name", SESSION_NAME]
    command += ["--output", "json"]
    home = workdir / "aws-cli-home"
    home.mkdir(mode=0o700)
    # The developer's profile the stack wrote, pointed at its embedded AWS: never a real account.
    env = stack.env(AWS_ENDPOINT_URL=str(stack.info["aws_endpoint"]), AWS_DEFAULT_REGION=stack.region, HOME=str(home))
    assumed = f":assumed-role/{role.rsplit('/', 1)[1]}/{SESSION_NAME}"

    def call() -> None:
        document = _run("aws sts assume-role", command, env)
        if not str(document.get("AssumedRoleUser", {}).get("Arn", "")).endswith(assumed):
            raise RuntimeError(f"aws sts assume-role did not assume the role as {assumed}")
        check_credentials("aws sts assume-role", document.get("Credentials", {}))

    return call


def _run(what: str, command: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False)
    if result.returncode != 0:
        # Standard error only: standard output would hold credentials.
        raise RuntimeError(f"{what} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    try:
        document = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(f"{what} printed no JSON") from None
    if not isinstance(document, dict):
        raise RuntimeError(f"{what} printed no JSON object")
    return document


def check_credentials(what: str, credentials: object) -> None:
    """Temporary AWS credentials: every field a non-empty string, an ``ASIA`` key id, an expiry to come."""
    if not isinstance(credentials, dict):
        raise RuntimeError(f"{what} printed no credentials")
    missing = [key for key in CREDENTIAL_KEYS if not isinstance(credentials.get(key), str) or not credentials[key]]
    if missing:
        raise RuntimeError(f"{what} printed credentials without {', '.join(missing)}")
    if not credentials["AccessKeyId"].startswith("ASIA"):
        raise RuntimeError(f"{what} printed long-term credentials, not a role's temporary ones")
    expiration = dt.datetime.fromisoformat(credentials["Expiration"])
    if expiration.tzinfo is None:  # an ISO 8601 time without an offset: STS's times are UTC
        expiration = expiration.replace(tzinfo=dt.UTC)
    if expiration <= dt.datetime.now(dt.UTC):
        raise RuntimeError(f"{what} printed credentials that have expired")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
