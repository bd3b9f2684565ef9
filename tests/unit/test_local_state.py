"""The local stack's state directory (local.state) and what its notification log reads out of messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local.notifications import NotificationLog, links_in
from local.state import NoRunningStack, StateDir, StateDirInUse, read_state


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(done.stdout)


def test_a_second_claim_of_a_locked_state_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = StateDir(tmp_path)
    assert first.claim() == []
    first.write({"api_url": "http://127.0.0.1:8000"})
    with pytest.raises(StateDirInUse) as refused:
        StateDir(tmp_path).claim()
    assert str(refused.value).startswith(
        f"a local stack is already running from state dir {tmp_path}: pid {os.getpid()}, API http://127.0.0.1:8000;"
        " to run a second one, give it its own state dir and ports (--state-dir or CREDPORT_LOCAL_STATE_DIR"
    )
    assert json.loads((tmp_path / "stack.json").read_text())["pid"] == os.getpid()  # untouched
    first.release()
    assert not (tmp_path / "stack.json").exists()
    assert StateDir(tmp_path).claim() == []  # the lock went with the release


def test_a_stale_state_file_is_replaced_with_a_note(tmp_path: Path) -> None:
    pid = _dead_pid()
    (tmp_path / "stack.json").write_text(json.dumps({"pid": pid, "api_url": "http://127.0.0.1:8000"}))
    (note,) = StateDir(tmp_path).claim()
    assert note.startswith(f"replaced the stale {tmp_path}/stack.json of pid {pid}, which is not running")
    assert not (tmp_path / "stack.json").exists()


def test_a_state_file_of_a_live_stack_without_the_lock_is_refused(tmp_path: Path) -> None:
    # A live process whose command line is a stack's (`python -m local up ...`), holding no lock.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "local", "up"])
    try:
        _wait_for_exec(live.pid)
        (tmp_path / "stack.json").write_text(json.dumps({"pid": live.pid, "api_url": "http://127.0.0.1:8000"}))
        with pytest.raises(StateDirInUse) as refused:
            StateDir(tmp_path).claim()
    finally:
        live.kill()
        live.wait()
    assert f"pid {live.pid}, API http://127.0.0.1:8000" in str(refused.value)
    assert f"delete {tmp_path}/stack.json" in str(refused.value)
    assert (tmp_path / "stack.json").exists()


def _wait_for_exec(pid: int) -> None:
    """Until the child has exec'd: between fork and exec its command line is still pytest's."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + 10
    while cmdline.exists() and b"local" not in cmdline.read_bytes().split(b"\0") and time.monotonic() < deadline:
        time.sleep(0.01)


def test_release_leaves_a_state_file_another_stack_wrote(tmp_path: Path) -> None:
    ours = StateDir(tmp_path)
    ours.claim()
    ours.write({"api_url": "http://127.0.0.1:8000"})
    theirs = {"pid": os.getpid(), "nonce": "someone-else", "api_url": "http://127.0.0.1:9000"}
    (tmp_path / "stack.json").write_text(json.dumps(theirs))
    ours.release()
    assert json.loads((tmp_path / "stack.json").read_text()) == theirs


def test_read_state_without_a_file_names_the_state_dir(tmp_path: Path) -> None:
    with pytest.raises(NoRunningStack) as missing:
        read_state(tmp_path)
    assert isinstance(missing.value, FileNotFoundError)  # what the admin CLIs catch
    assert str(tmp_path) in str(missing.value)


@pytest.mark.parametrize(
    ("message", "links"),
    [
        (
            json.dumps({"link": "http://127.0.0.1:4566/b/k?X-Amz-Signature=ab&X-Amz-Expires=60"}),
            ["http://127.0.0.1:4566/b/k?X-Amz-Signature=ab&X-Amz-Expires=60"],
        ),
        ('{"link": "https:\\/\\/example.com\\/a"}', ["https://example.com/a"]),
        (
            "Download it from https://example.com/x. Or https://example.com/y, then (https://example.com/z)",
            ["https://example.com/x", "https://example.com/y", "https://example.com/z"],
        ),
        ("no link here; ftp://example.com is none", []),
        (json.dumps({"a": ["https://e.com/1", {"b": "https://e.com/1"}]}), ["https://e.com/1"]),
    ],
)
def test_links_are_every_http_url_of_a_message(message: str, links: list[str]) -> None:
    assert links_in(message) == links


def test_the_log_keeps_the_newest_and_filters_by_topic() -> None:
    log = NotificationLog(limit=2)
    for n in range(3):
        log.record(f"arn:aws:sns:us-east-1:1:t{n % 2}", None, f"m{n}", f"id{n}")
    assert [r["message"] for r in log.since()] == ["m1", "m2"]
    assert [r["message"] for r in log.since(topic_arn="arn:aws:sns:us-east-1:1:t0")] == ["m2"]
    assert [r["message"] for r in log.since(after=2)] == ["m2"]
