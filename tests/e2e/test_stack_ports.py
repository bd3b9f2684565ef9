"""Starting the local stack on a port another process holds fails at once, naming the port and the way out."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from local.launcher import REPO_ROOT, child_env, up_command


def _up(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m local up`` run to its end (it must refuse; the timeout only guards the test run)."""
    return subprocess.run(
        up_command(state_dir, *args),
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _held_port() -> socket.socket:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    return holder


@pytest.mark.parametrize(("flag", "label"), [("--aws-port", "embedded AWS"), ("--api-port", "API")])
def test_a_port_in_use_is_a_one_line_error_and_exit_1(flag: str, label: str, tmp_path: Path) -> None:
    with _held_port() as holder:
        port = str(holder.getsockname()[1])
        other = "--api-port" if flag == "--aws-port" else "--aws-port"
        # The timeout only guards the test run: before the fix the stack waited forever for moto to get ready.
        # The launcher's command line, run to its end: its stderr alone must carry the hint (the launcher's log
        # mixes both streams). The options given here come last, so they override the launcher's free ports.
        started = time.monotonic()
        result = _up(tmp_path, flag, port, other, "0")
        took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    (line,) = result.stderr.splitlines()
    # The holder is this test process: named by its pid (Linux) or not at all, never as a credport stack.
    assert line.startswith(f"python -m local: port {port} ({label}) on 127.0.0.1 is in use"), line
    assert "another credport local stack" not in line
    assert line.endswith("choose others with --api-port/--aws-port or CREDPORT_LOCAL_API_PORT/CREDPORT_LOCAL_AWS_PORT")
    assert took < 10, f"refused only after {took:.1f} s"
    assert not (tmp_path / "stack.json").exists()
    assert not (tmp_path / "aws").exists()  # refused before the developer's profile was written


def test_both_ports_busy_are_both_named(tmp_path: Path) -> None:
    with _held_port() as api, _held_port() as aws:
        api_port, aws_port = str(api.getsockname()[1]), str(aws.getsockname()[1])
        result = _up(tmp_path, "--api-port", api_port, "--aws-port", aws_port)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"port {api_port} (API) on 127.0.0.1 is in use" in result.stderr
    assert f"port {aws_port} (embedded AWS) on 127.0.0.1 is in use" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_the_same_port_for_both_is_a_usage_error(tmp_path: Path) -> None:
    result = _up(tmp_path, "--api-port", "18123", "--aws-port", "18123")
    assert result.returncode == 2
    assert "--api-port and --aws-port are both 18123" in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::1"])  # noqa: S104 (refused)
def test_a_host_off_loopback_is_refused_before_any_port_is_bound(host: str, tmp_path: Path) -> None:
    with _held_port() as api:  # were the API's port bound before the refusal, this would be a port error instead
        port = str(api.getsockname()[1])
        started = time.monotonic()
        result = _up(tmp_path / "state", "--host", host, "--api-port", port)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        "python -m local: --host must be a loopback address (127.0.0.1 or localhost): the stack's issuer is plain"
        f" http, which credport accepts on loopback only; not {host!r}"
    ]
    assert time.monotonic() - started < 10
    assert not (tmp_path / "state").exists()
