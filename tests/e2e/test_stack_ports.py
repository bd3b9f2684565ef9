"""Starting the local stack on a port another process holds fails at once with the README's hint, whichever port."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from local.launcher import REPO_ROOT, child_env, up_command


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
        # The launcher's command line, run to its end: its stderr alone must carry the hint (the launcher's log
        # mixes both streams). The options given here come last, so they override the launcher's free ports.
        result = subprocess.run(
            up_command(tmp_path, flag, port, other, "0"),
            cwd=REPO_ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "credport local stack could not start" in result.stderr
    assert "--aws-port/--api-port" in result.stderr
    assert "Traceback" not in result.stderr
