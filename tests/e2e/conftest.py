"""The local stack as a pytest fixture: ``python -m local`` in a subprocess, on free ports."""

from __future__ import annotations

import configparser
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.conftest import REPO_ROOT

PLUGIN = "tests.e2e.stack_plugin"


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    info: dict[str, Any]
    state_dir: Path
    started_in: float
    log: Path

    @property
    def api(self) -> str:
        return str(self.info["api_url"])

    def env(self, **extra: str) -> dict[str, str]:
        """A child-process environment using the stack's developer profile (as the banner tells users)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return {**env, **self.info["aws_exports"], **extra}

    def credentials(self) -> Credentials:
        parser = configparser.ConfigParser()
        parser.read(self.info["aws_exports"]["AWS_SHARED_CREDENTIALS_FILE"])
        section = parser["credport-local"]
        return Credentials(section["aws_access_key_id"], section["aws_secret_access_key"])

    def client(self, service: str, credentials: Credentials | None = None) -> Any:
        creds = credentials or self.credentials()
        # S3: SigV4 links, as credport's own clients make (the embedded S3 refuses SigV2 as new buckets on AWS do).
        config = Config(signature_version="s3v4") if service == "s3" else None
        return boto3.session.Session(
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            aws_session_token=creds.token,
            region_name=self.info["region"],
        ).client(service, endpoint_url=self.info["aws_endpoint"], config=config)


def start_stack(tmp: Path, *extra: str) -> RunningStack:
    ready = tmp / "ready.json"
    log = tmp / "stack.log"
    started = time.monotonic()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local",
                "up",
                "--aws-port",
                "0",
                "--api-port",
                "0",
                "--state-dir",
                str(tmp),
                "--ready-file",
                str(ready),
                "--plugin",
                PLUGIN,
                *extra,
            ],
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
    deadline = time.monotonic() + 90
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"local stack did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return RunningStack(process, json.loads(ready.read_text()), tmp, time.monotonic() - started, log)


def stop_stack(stack: RunningStack) -> int:
    stack.process.send_signal(signal.SIGINT)
    try:
        return stack.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        raise


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("stack"), "--quiet")
    print(f"\nlocal stack up in {running.started_in:.1f} s at {running.api}")
    yield running
    assert stop_stack(running) == 0, running.log.read_text()


@pytest.fixture(autouse=True)
def _stack_env_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # End-to-end tests talk to the local stack only, never through moto's in-process mock.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
