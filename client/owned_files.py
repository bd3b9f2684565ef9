"""Files the auto-id client trusts on a shared machine: its own, private, regular, reached without a symlink.

A state file decides which entropy the client presents, and a lock file decides who may save: another user who
can plant either (a state directory in ``/tmp``, a lock beside a bundle in a shared directory) could strand the
client or stall every call. So a state directory is used only when it is ours and writable by nobody else (a
shared sticky directory such as ``/tmp`` gets a private ``credport-<uid>`` directory of ours inside it instead),
and everything in it is reached through the directory's descriptor (a rename of the directory after the check
changes nothing), opened with ``O_NOFOLLOW`` and ``O_NONBLOCK`` (never a symlink, never blocked on a FIFO), and
checked on the open descriptor: a regular file, ours, readable and writable by us alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType

__all__ = ["PrivateDir", "Untrusted", "check_private", "private_dir_path", "read_regular"]

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_OTHERS_ANY = stat.S_IRWXG | stat.S_IRWXO


class Untrusted(OSError):
    """A file or directory that is not ours to trust; the message says why (no content of the file)."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EPERM, reason)


def check_private(status: os.stat_result, *, what: str = "it") -> None:
    """Untrusted unless ``status`` is a regular file of our effective user that nobody else may read or write."""
    if not stat.S_ISREG(status.st_mode):
        raise Untrusted(f"{what} is not a regular file")
    _check_owner(status, what)
    if status.st_mode & _OTHERS_ANY:
        raise Untrusted(f"{what} is readable or writable by others (mode {stat.S_IMODE(status.st_mode):04o})")


def _check_owner(status: os.stat_result, what: str) -> None:
    if status.st_uid != os.geteuid():
        raise Untrusted(f"{what} belongs to uid {status.st_uid}, not to this user (uid {os.geteuid()})")


def read_regular(path: Path, *, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The bytes and status of a regular file named by the operator (a symlink to one is fine: a mounted secret
    is one). Untrusted "not a regular file" for a directory, FIFO or device, opened non-blocking so that a FIFO
    never hangs the call; ValueError past ``max_bytes``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise Untrusted(f"{path} is not a regular file")
        return _read_all(fd, max_bytes, path), status
    finally:
        os.close(fd)


def _read_all(fd: int, max_bytes: int, path: Path | str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 1 << 16):
        size += len(chunk)
        if size > max_bytes:
            raise ValueError(f"{path} is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def private_dir_path(given: Path) -> Path:
    """The directory :class:`PrivateDir` uses for ``given``: itself, or ``credport-<uid>`` in a shared sticky one."""
    with contextlib.suppress(OSError):
        if _shared_sticky(os.stat(given)):
            return given / f"credport-{os.geteuid()}"
    return given


def _shared_sticky(status: os.stat_result) -> bool:
    return stat.S_ISDIR(status.st_mode) and bool(status.st_mode & stat.S_ISVTX) and bool(status.st_mode & _OTHERS_WRITE)


class PrivateDir:
    """An open directory of ours that nobody else can write; its files are used by name through its descriptor."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def open(cls, given: Path, *, create: bool) -> PrivateDir:
        """FileNotFoundError when it does not exist (and ``create`` is False); Untrusted (an OSError) when it is
        not ours or others may write it and it is not a sticky directory to make our own inside."""
        if create:
            given.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(given, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            status = os.fstat(fd)
            if _shared_sticky(status):  # /tmp and its like: a private directory of ours inside, never the dir itself
                name = f"credport-{os.geteuid()}"
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o700, dir_fd=fd)
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd, given = inner, given / name
                status = os.fstat(fd)
                _check_owner(status, str(given))
                if status.st_mode & _OTHERS_ANY:
                    raise Untrusted(f"{given} is open to others (mode {stat.S_IMODE(status.st_mode):04o})")
            _check_owner(status, str(given))
            if status.st_mode & _OTHERS_WRITE:
                raise Untrusted(f"{given} is writable by others (mode {stat.S_IMODE(status.st_mode):04o})")
        except BaseException:
            os.close(fd)
            raise
        return cls(given, fd)

    def __enter__(self) -> PrivateDir:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        os.close(self.fd)

    def read(self, name: str, *, max_bytes: int) -> bytes:
        """A private file's bytes (FileNotFoundError if absent; Untrusted if a symlink, not ours or not private)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise Untrusted("it is a symbolic link") from None
            raise
        try:
            check_private(os.fstat(fd))
            return _read_all(fd, max_bytes, self.path / name)
        finally:
            os.close(fd)

    def write(self, name: str, data: bytes) -> None:
        """Replace ``name`` atomically with a file that is 0600 from its first byte and on disk before the rename."""
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600, dir_fd=self.fd)
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)
            raise

    def unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def open_lock(self, name: str) -> int:
        """A descriptor of our private lock file ``name`` (created 0600); Untrusted if it is not ours alone."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=self.fd)
        try:
            check_private(os.fstat(fd), what=str(self.path / name))
        except BaseException:
            os.close(fd)
            raise
        return fd
