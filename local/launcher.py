"""A local stack in a child process, for the end-to-end tests and the load run: ``python -m local up`` on free
loopback ports, waited for through its ready file, stopped as a developer stops it (Ctrl-C).

Both callers need the same things (a stack isolated from the caller's AWS environment, the log when it did not
start, the developer profile it created), so they share this one launcher instead of each keeping a copy.
"""

from __future__ import annotations

import configparser
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3.session
from botocore.config import Config
from botocore.credentials import Credentials

__all__ = ["REPO_ROOT", "RunningStack", "StackDidNotStart", "child_env", "interrupt", "launch", "up_command"]

# Not imported from local.stack: that module loads moto, which a caller only waiting for a child does not need.
REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120.0  # seconds: a cold start provisions the whole template on moto
STOP_TIMEOUT = 30.0
DEFAULT_PROFILE = "credport-local"


class StackDidNotStart(RuntimeError):
    """The stack exited, or wrote no ready file in time; the message carries its whole log."""

    def __init__(self, returncode: int, output: str) -> None:
        super().__init__(f"the local stack did not start (exit {returncode}):\n{output}")
        self.returncode = returncode
        self.output = output


def interrupt(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> int:
    """Ctrl-C to ``process``, as a developer stops it; its exit code (a kill's negative one when it does not stop
    within ``timeout`` seconds)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any AWS_* variable: a stack (or a client of one) must never reach the
    caller's real AWS account, profile or endpoint, nor pytest's in-process mock."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.startswith("AWS_")}


def up_command(state_dir: Path, *args: str, ready: Path | None = None, plugins: Iterable[str] = ()) -> list[str]:
    """``python -m local up`` on free ports (port 0); ``args`` come last, so they override any default here."""
    command = [sys.executable, "-m", "local", "up", "--aws-port", "0", "--api-port", "0", "--state-dir", str(state_dir)]
    if ready is not None:
        command += ["--ready-file", str(ready)]
    for plugin in plugins:
        command += ["--plugin", plugin]
    return [*command, *args]


@dataclass
class RunningStack:
    """A started ``python -m local up`` child and what it wrote to its ready file."""

    process: subprocess.Popen[bytes]
    info: dict[str, Any]
    state_dir: Path
    log: Path
    started_in: float  # seconds from the launch to the ready file

    @property
    def api(self) -> str:
        return str(self.info["api_url"])

    @property
    def region(self) -> str:
        return str(self.info["region"])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def env(self, **extra: str) -> dict[str, str]:
        """A child environment using the stack's developer profile (as the banner tells users), with this stack's
        state directory, so ``python -m local`` and the ``--local`` CLIs find this stack and no other."""
        return {
            **child_env(),
            **self.info["aws_exports"],
            "CREDPORT_LOCAL_STATE_DIR": str(self.state_dir),
            **extra,
        }

    def credentials(self) -> Credentials:
        exports = self.info["aws_exports"]
        parser = configparser.ConfigParser()
        parser.read(exports["AWS_SHARED_CREDENTIALS_FILE"])
        section = parser[exports.get("AWS_PROFILE", DEFAULT_PROFILE)]
        return Credentials(section["aws_access_key_id"], section["aws_secret_access_key"])

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        """A boto3 client of the embedded AWS, as the developer (or as ``credentials``)."""
        creds = credentials or self.credentials()
        # S3: SigV4 links, as credport's own clients make (the embedded S3 refuses SigV2 as new buckets on AWS do).
        config = Config(signature_version="s3v4") if service == "s3" else None
        return boto3.session.Session(
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            aws_session_token=creds.token,
            region_name=self.region,
        ).client(service, endpoint_url=self.info["aws_endpoint"], config=config)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Ctrl-C, as a developer stops it; its exit code (a kill's negative one when it does not stop in time)."""
        return interrupt(self.process, timeout)

    def __enter__(self) -> RunningStack:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def launch(state_dir: Path, *args: str, plugins: Iterable[str] = (), timeout: float = START_TIMEOUT) -> RunningStack:
    """Start a stack keeping its state, ready file (``ready.json``) and log (``stack.log``) in ``state_dir``;
    ``args`` are more ``python -m local up`` options (``--quiet``, ``--token-signer envelope``, ...)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ready, log = state_dir / "ready.json", state_dir / "stack.log"
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            up_command(state_dir, *args, ready=ready, plugins=plugins),
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )
    deadline = started + timeout
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            code = process.wait()
            raise StackDidNotStart(code, log.read_text(errors="replace"))
        time.sleep(0.05)
    return RunningStack(process, json.loads(ready.read_text()), state_dir, log, time.monotonic() - started)
