"""A local stack's state directory: one stack per directory, and ``stack.json``, where other commands find it.

``StateDir.claim()`` runs before the stack touches anything. It takes an exclusive ``flock`` on ``stack.lock`` and
holds it for the life of the process: the kernel drops it when the process ends, however it ends, so a crashed stack
never leaves a lock behind, and a second ``up`` in the same directory is refused before it overwrites the first
one's developer credentials or state file. ``stack.json`` carries the writer's pid and a nonce of this start;
``release()`` removes it only while it still holds both, so a stack never deletes another stack's file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["LOCK_FILE", "STATE_FILE", "NoRunningStack", "StateDir", "StateDirInUse", "pid_alive", "read_state"]

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"


class NoRunningStack(FileNotFoundError):
    """No ``stack.json`` in the state directory (a FileNotFoundError: the admin CLIs catch that)."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / STATE_FILE
        super().__init__(
            f"no local stack is running from state dir {state_dir} ({path} is missing): start one with `make run`"
        )
        self.state_dir = state_dir


class StateDirInUse(RuntimeError):
    """Another live stack runs from this state directory; the message names it."""


def read_state(state_dir: Path) -> dict[str, Any]:
    """What a running stack wrote about itself (endpoints, app environment, developer exports)."""
    path = state_dir / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NoRunningStack(state_dir) from None
    try:
        state = json.loads(text)
    except ValueError:
        raise NoRunningStack(state_dir) from None  # half-written or damaged: no stack can be reached through it
    if not isinstance(state, dict):
        raise NoRunningStack(state_dir)
    return state


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _maybe_a_stack(pid: int) -> bool:
    """False only when the process is provably something else (Linux: its command line); elsewhere, assume it is."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return b"local" in args or any(a.endswith(b"local/__main__.py") for a in args)


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path / STATE_FILE
        self._nonce = secrets.token_hex(8)
        self._lock: int | None = None

    def claim(self) -> list[str]:
        """Lock the directory for this process, or raise :class:`StateDirInUse`; notes about what was replaced."""
        self.path.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip()
            os.close(descriptor)
            raise StateDirInUse(self._running(int(holder) if holder.isdigit() else None)) from None
        notes: list[str] = []
        try:
            existing = self._existing()
            pid = existing.get("pid") if existing is not None else None
            if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid) and _maybe_a_stack(pid):
                # A live process that wrote this file without the lock (a stack of an older credport).
                raise StateDirInUse(self._running(pid) + f" (if pid {pid} is no credport stack, delete {self.file})")
            if existing is not None:
                notes.append(f"replaced the stale {self.file} of pid {pid}, which is not running (it did not stop)")
                self.file.unlink(missing_ok=True)
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._lock = descriptor
        return notes

    def write(self, state: dict[str, Any]) -> None:
        """Atomically: a reader never sees half a file."""
        partial = self._partial()
        partial.write_text(json.dumps({**state, "pid": os.getpid(), "nonce": self._nonce}, indent=2) + "\n")
        partial.replace(self.file)

    def release(self) -> None:
        """Remove ``stack.json`` if it is still ours, then unlock (the lock file stays: removing it would race)."""
        existing = self._existing()
        if existing is not None and existing.get("pid") == os.getpid() and existing.get("nonce") == self._nonce:
            self.file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # a write interrupted before its rename (a signal, then os._exit)
            self._partial().unlink(missing_ok=True)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None

    def _partial(self) -> Path:
        return self.file.with_name(f"{STATE_FILE}.{os.getpid()}.partial")

    def _existing(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _running(self, pid: int | None) -> str:
        existing = self._existing() or {}
        api = existing.get("api_url") if existing.get("pid") == pid else None
        where = f"API {api}" if api else "still starting"
        who = f"pid {pid}" if pid is not None else "another process"
        return (
            f"a local stack is already running from state dir {self.path}: {who}, {where}; to run a second one, give"
            " it its own state dir and ports (--state-dir or CREDPORT_LOCAL_STATE_DIR, --api-port, --aws-port)"
        )
