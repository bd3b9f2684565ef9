"""README.md's shell examples run as written against a local stack of their own, like a doctest.

Every ``sh``/``bash``/``shell`` block is marked run or skip (with a reason) on the line before its fence
(:mod:`tests.support.readme_blocks`). The run blocks execute in README order in one bash process, as a reader pasting
them into one shell: cwd a fresh directory holding ``.venv`` (a link to the repository's), HOME another, the
environment the caller's without any ``AWS_*`` plus the stack's state directory, so ``python -m local`` and the
``--local`` CLIs find this stack. The stack is this module's own: the examples rotate keys and revoke things.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.launcher import REPO_ROOT
from tests.e2e.conftest import RunningStack, launch_e2e
from tests.e2e.doc_blocks import run_blocks
from tests.support.readme_blocks import parse

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
    run_blocks(parse(README.read_text()), README.name, readme_stack, tmp_path, timeout=TIMEOUT)
