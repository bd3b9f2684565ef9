"""Starting the local stack on a port another process holds fails at once with the README's hint, whichever port."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _held_port() -> socket.socket:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    return holder


@pytest.mark.parametrize("flag", ["--aws-port", "--api-port"])
def test_a_port_in_use_is_a_one_line_error_and_exit_1(flag: str, tmp_path: Path) -> None:
    with _held_port() as holder:
        port = str(holder.getsockname()[1])
        other = "--api-port" if flag == "--aws-port" else "--aws-port"
        # The timeout only guards the test run: before the fix the stack waited forever for moto to get ready.
        result = subprocess.run(
            [sys.executable, "-m", "local", "up", flag, port, other, "0", "--state-dir", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "credport local stack could not start" in result.stderr
    assert "--aws-port/--api-port" in result.stderr
    assert "Traceback" not in result.stderr
