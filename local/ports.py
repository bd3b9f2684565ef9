"""The local stack's two ports: both checked before anything starts, a busy one named with what holds it.

The second ``make run`` used to hang: moto's ``ThreadedMotoServer.start()`` binds in a thread of its own and waits,
without a timeout, for an event set only after a successful bind; when the bind failed, the thread died and the
main thread waited forever (and the stack's signal handler only noted Ctrl-C). :class:`BoundAwsServer` binds in the
caller's thread, so a port taken between the check and the bind is the same :class:`PortUnavailable`, at once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from local.aws_server import EmbeddedAwsServer, guarded
from local.state import STATE_FILE, pid_alive

__all__ = ["PORT_HINT", "BoundAwsServer", "PortUnavailable", "binding", "check_ports", "holder_of"]

PORT_HINT = "choose others with --api-port/--aws-port or CREDPORT_LOCAL_API_PORT/CREDPORT_LOCAL_AWS_PORT"


class PortUnavailable(OSError):
    """A port the stack needs cannot be bound; the message is one line, ready for the user (an OSError with the
    bind's errno, so a caller catching OSError still does)."""

    def __init__(self, message: str, code: int = errno.EADDRINUSE) -> None:
        super().__init__(message)
        self.errno = code


def check_ports(host: str, ports: Mapping[str, int], state_dirs: Iterable[Path] = ()) -> None:
    """Raise :class:`PortUnavailable` naming every port of ``ports`` (label -> port) that cannot be bound now."""
    problems = []
    for label, port in ports.items():
        try:
            with binding(label, host, port, state_dirs):
                _probe(host, port)
        except PortUnavailable as unavailable:
            problems.append(str(unavailable).removesuffix(f"; {PORT_HINT}"))
    if problems:
        raise PortUnavailable("; ".join(problems) + f"; {PORT_HINT}")


@contextlib.contextmanager
def binding(label: str, host: str, port: int, state_dirs: Iterable[Path] = ()) -> Iterator[None]:
    """Translate a failed bind of the block into :class:`PortUnavailable` (what holds the port, if knowable)."""
    try:
        yield
    except PortUnavailable:
        raise
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            holder = holder_of(host, port, state_dirs)
            message = f"port {port} ({label}) on {host} is in use" + (f" ({holder})" if holder else "")
        elif error.errno in (errno.EACCES, errno.EPERM):
            message = f"port {port} ({label}) on {host} cannot be bound: permission denied (ports below 1024?)"
        else:
            message = f"port {port} ({label}) on {host} cannot be bound: {error.strerror or error}"
        raise PortUnavailable(f"{message}; {PORT_HINT}", error.errno or errno.EADDRINUSE) from None


def _probe(host: str, port: int) -> None:
    if port == 0:  # any free port, always
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no conflict
        probe.bind((host, port))


def holder_of(host: str, port: int, state_dirs: Iterable[Path] = ()) -> str | None:
    """Who holds ``port``: a credport stack of a known state dir, a stack whose control route says so, or a pid."""
    for state_dir in state_dirs:
        state = _state(state_dir)
        endpoints = (state.get("api_url"), state.get("aws_endpoint"))
        if f"http://{host}:{port}" in endpoints and pid_alive(state.get("pid")):
            return _stack(state.get("pid"), state_dir)
    status = _control_status(host, port)
    if status is not None:
        return _stack(status.get("pid"), Path(str(status.get("state_dir"))))
    pid = _listening_pid(port)
    if pid is None:
        return None
    args = _cmdline(pid)
    if "local" in args or any(a.endswith("local/__main__.py") for a in args):
        named = _flag(args, "--state-dir") or _environment(pid).get("CREDPORT_LOCAL_STATE_DIR")
        return _stack(pid, _absolute(pid, named) if named else None)
    return f"held by pid {pid}: {' '.join(args)[:120]}" if args else f"held by pid {pid}"


def _stack(pid: object, state_dir: Path | None) -> str:
    where = f", state dir {state_dir}? check {state_dir / STATE_FILE}" if state_dir else ""
    return f"another credport local stack, pid {pid}{where}"


def _state(state_dir: Path) -> dict[str, Any]:
    try:
        state = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _control_status(host: str, port: int) -> dict[str, Any] | None:
    """The ``/_local/status`` of a credport stack's API on the port; None for anything else (or no answer)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/_local/status", timeout=1) as response:
            status = json.load(response)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and "pid" in status and "state_dir" in status else None


def _listening_pid(port: int) -> int | None:
    """Linux only, best effort: the pid whose socket listens on ``port`` (only this user's processes are visible)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _environment(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (a.decode(errors="replace").partition("=") for a in raw.split(b"\0") if a)
    return {name: value for name, _, value in pairs}


def _flag(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _absolute(pid: int, path: str) -> Path:
    with contextlib.suppress(OSError):
        return Path(os.readlink(f"/proc/{pid}/cwd")) / path
    return Path(path)


class BoundAwsServer(EmbeddedAwsServer):
    """The embedded AWS, bound in the caller's thread (a busy port raises here), served from a daemon thread."""

    def __init__(self, *, ip_address: str, port: int, state_dirs: Iterable[Path] = ()) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self._state_dirs = tuple(state_dirs)

    def start(self) -> None:
        import threading

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = guarded(DomainDispatcherApplication(create_backend_app))
        with binding("embedded AWS", self._ip_address, self._port, self._state_dirs):
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="embedded-aws", daemon=True)
        self._thread.start()
        self._server_ready_event.set()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
