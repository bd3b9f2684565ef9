"""`make install` on a first run says what it does before each slow step; once installed it prints nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(stamp: Path) -> list[str]:
    # Run from `make test` too: a parent make's flags and level would add "make[1]: Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "install", f"STAMP={stamp}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_a_first_install_announces_the_dependency_install_and_shows_pip_progress(tmp_path: Path) -> None:
    lines = _dry_run(tmp_path / "missing-stamp")
    big = next(i for i, line in enumerate(lines) if "-r requirements-dev.txt" in line)
    assert lines[big - 1].startswith('echo "make: installing Python dependencies into .venv (first run: about')
    assert "--quiet" not in lines[big]  # pip's "Collecting ..." lines are the progress
    assert "--progress-bar off" in lines[big]  # ... without bars redrawn over each other in a log
    assert lines[-1].endswith(f'touch {tmp_path / "missing-stamp"} && echo "make: .venv is ready."')


def test_an_installed_venv_prints_nothing(tmp_path: Path) -> None:
    stamp = tmp_path / "stamp"
    stamp.touch()
    newer = max(
        os.stat(REPO / name).st_mtime
        for name in ("requirements.txt", "requirements-dev.txt", "requirements-tools.txt", "pyproject.toml")
    )
    os.utime(stamp, (newer + 60, newer + 60))
    assert [line for line in _dry_run(stamp) if "pip" in line or "echo" in line] == []
