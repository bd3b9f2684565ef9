"""The local stack as a pytest fixture: ``python -m local`` in a subprocess, on free ports (:mod:`local.launcher`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.launcher import RunningStack, launch

__all__ = ["PLUGIN", "RunningStack", "launch_e2e"]

PLUGIN = "tests.e2e.stack_plugin"
START_TIMEOUT = 90.0  # seconds


def launch_e2e(state_dir: Path, *args: str) -> RunningStack:
    """A local stack with the end-to-end hooks loaded (:mod:`tests.e2e.stack_plugin`); stop it with ``stop()``."""
    return launch(state_dir, *args, plugins=(PLUGIN,), timeout=START_TIMEOUT)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = launch_e2e(tmp_path_factory.mktemp("stack"), "--quiet")
    print(f"\nlocal stack up in {running.started_in:.1f} s at {running.api}")
    yield running
    assert running.stop() == 0, running.log_text()


@pytest.fixture(autouse=True)
def _stack_env_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # End-to-end tests talk to the local stack only, never through moto's in-process mock.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
