"""Run a document's ``readme-test: run`` shell blocks in order against a local stack, as a reader pasting them
into one shell would (tests/e2e/test_readme.py, tests/e2e/test_federation_guide.py).

The blocks execute in one bash process: cwd a fresh directory holding ``.venv`` (a link to the repository's), HOME
another, the caller's environment without any ``AWS_*`` plus the stack's state directory, so ``python -m local``
and the ``--local`` CLIs find that stack. A timeout kills the whole process group, background children included.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from local.launcher import REPO_ROOT, child_env
from tests.e2e.conftest import RunningStack
from tests.support.readme_blocks import Readme, find_failure, script

__all__ = ["run_blocks"]


def run_blocks(
    document: Readme,
    name: str,
    stack: RunningStack,
    tmp_path: Path,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> str:
    """The blocks' output; a failing block (or the timeout) fails the test, naming the block, with the stack's
    last log lines."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / ".venv").symlink_to(REPO_ROOT / ".venv")
    environment = {
        **child_env(),
        "HOME": str(home),
        "CREDPORT_LOCAL_STATE_DIR": str(stack.state_dir),
        **(env or {}),
    }
    token = f"doc-test-{secrets.token_hex(8)}"
    (tmp_path / "blocks.sh").write_text(script(document.run, token))
    output_file = tmp_path / "output.txt"
    with output_file.open("wb") as sink:
        process = subprocess.Popen(
            ["bash", str(tmp_path / "blocks.sh")],
            cwd=work,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = None
    output = output_file.read_text(errors="replace")
    failure = find_failure(document.run, output, token, returncode)
    if failure is not None:
        timed_out = f"\n(stopped after {timeout:.0f} s)" if returncode is None else ""
        stack_log = "\n".join(stack.log_text().splitlines()[-30:])
        message = str(failure).replace("README.md", name)
        pytest.fail(f"{message}{timed_out}\n--- the stack's log, last lines ---\n{stack_log}", pytrace=False)
    return output
