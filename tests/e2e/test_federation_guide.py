"""docs/federation-into-aws.md's shell examples run as written against a local stack, as the README's do
(tests/e2e/test_readme.py, with the same block markers: tests/support/readme_blocks.py).

The run blocks execute in order in one bash process, from a fresh directory holding ``.venv`` (a link to the
repository's), HOME another, the caller's environment without any ``AWS_*`` plus the stack's state directory. The
stack is this module's own, started with ``--organization``: the guide's cross-account step uses the member
account's caller profile. The guide's AWS commands are the AWS CLI's: the one `make install` puts in its own
virtualenv (``.venv/awscli``, requirements-tools.txt), first on the PATH; without it the test fails, never skips.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.launcher import REPO_ROOT, child_env
from tests.e2e.conftest import RunningStack, launch_e2e
from tests.e2e.doc_blocks import run_blocks
from tests.support.readme_blocks import parse

pytestmark = pytest.mark.e2e

GUIDE = REPO_ROOT / "docs" / "federation-into-aws.md"
AWS_CLI_BIN = REPO_ROOT / ".venv" / "awscli" / "bin"
TIMEOUT = 300.0  # seconds for every block together


@pytest.fixture(scope="module")
def guide_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = launch_e2e(tmp_path_factory.mktemp("guide-stack"), "--quiet", "--organization")
    yield running
    assert running.stop() == 0, running.log_text()


def test_every_shell_block_is_marked_run_or_skip() -> None:
    guide = parse(GUIDE.read_text())
    assert not guide.problems, "\n".join(str(p).replace("README.md", GUIDE.name) for p in guide.problems)
    assert guide.run, "no block of the guide is marked <!-- readme-test: run -->"
    assert all(block.skip.startswith("AWS-only") for block in guide.blocks if block.skip), "skip only AWS-only blocks"


def test_run_blocks_succeed_in_order(guide_stack: RunningStack, tmp_path: Path) -> None:
    # `make install` puts the AWS CLI in a virtualenv of its own (requirements-tools.txt): the guide's `aws` is it.
    path = f"{AWS_CLI_BIN}:{child_env().get('PATH', '')}"
    assert shutil.which("aws", path=path) is not None, f"no AWS CLI: run make install (it installs {AWS_CLI_BIN})"
    guide = parse(GUIDE.read_text())
    output = run_blocks(guide, GUIDE.name, guide_stack, tmp_path, timeout=TIMEOUT, env={"PATH": path})
    # What the guide's comments say each run block prints.
    member = guide_stack.info["organization"]["member"]["account_id"]
    for expected in (
        "arn:aws:sts::123456789012:assumed-role/credport-federated/guide",
        "arn:aws:sts::123456789012:assumed-role/credport-federated/guide-sdk",
        f"arn:aws:iam::{member}:user/credport-caller",
    ):
        assert expected in output.splitlines(), output
