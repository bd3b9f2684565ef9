"""README.md's shell examples run as written against a local stack of their own, like a doctest.

Every ``sh``/``bash``/``shell`` block is marked run or skip (with a reason) on the line before its fence
(:mod:`tests.support.readme_blocks`). The run blocks execute in README order in one bash process, as a reader pasting
them into one shell: cwd a fresh directory holding ``.venv`` (a link to the repository's), HOME another, the
environment the caller's without any ``AWS_*`` plus the stack's state directory, so ``python -m local`` and the
``--local`` CLIs find this stack. The stack is this module's own: the examples rotate keys and revoke things.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.launcher import REPO_ROOT, child_env
from tests.e2e.conftest import RunningStack, launch_e2e
from tests.support.readme_blocks import find_failure, parse, script

pytestmark = pytest.mark.e2e

README = REPO_ROOT / "README.md"
TIMEOUT = 600.0  # seconds for every block together


@pytest.fixture(scope="module")
def readme_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = launch_e2e(tmp_path_factory.mktemp("readme-stack"), "--quiet")
    yield running
    assert running.stop() == 0, running.log_text()


def test_every_shell_block_is_marked_run_or_skip() -> None:
    readme = parse(README.read_text())
    assert not readme.problems, "\n".join(map(str, readme.problems))
    assert readme.run, "no README block is marked <!-- readme-test: run -->"


def test_run_blocks_succeed_in_order(readme_stack: RunningStack, tmp_path: Path) -> None:
    readme = parse(README.read_text())
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (work / ".venv").symlink_to(REPO_ROOT / ".venv")
    env = {**child_env(), "HOME": str(home), "CREDPORT_LOCAL_STATE_DIR": str(readme_stack.state_dir)}
    token = f"readme-test-{secrets.token_hex(8)}"
    (tmp_path / "readme.sh").write_text(script(readme.run, token))
    output_file = tmp_path / "output.txt"
    with output_file.open("wb") as sink:
        # A session of its own: on a timeout the whole group goes, background children included.
        process = subprocess.Popen(
            ["bash", str(tmp_path / "readme.sh")],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode: int | None = process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = None
    output = output_file.read_text(errors="replace")
    failure = find_failure(readme.run, output, token, returncode)
    if failure is not None:
        timed_out = f"\n(stopped after {TIMEOUT:.0f} s)" if returncode is None else ""
        stack_log = "\n".join(readme_stack.log_text().splitlines()[-30:])
        pytest.fail(f"{failure}{timed_out}\n--- the stack's log, last lines ---\n{stack_log}", pytrace=False)
