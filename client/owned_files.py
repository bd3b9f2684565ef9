"""Files the auto-id client trusts on a shared machine: its own, private, regular, reached without a symlink.

A state file decides which entropy the client presents, and a lock file decides who may save: another user who
can plant either (a state directory in ``/tmp``, a lock beside a bundle in a shared directory) could strand the
client or stall every call. So a state directory is used only when it is ours and writable by nobody else (a
shared sticky directory such as ``/tmp`` gets a private ``credport-<uid>`` directory of ours inside it instead),
and everything in it is reached through the directory's descriptor (a rename of the directory after the check
changes nothing), opened with ``O_NOFOLLOW`` and ``O_NONBLOCK`` (never a symlink, never blocked on a FIFO), and
checked on the open descriptor: a regular file, ours, readable and writable by us alone.

The directory's last component is not enough: whoever can write an ancestor (or owns a symlink on the way) can
swap what the path names between our check and our use. So the whole path is walked (:func:`check_path`), as
OpenSSH's ``StrictModes`` does: each directory on the way is ours or root's and writable by nobody else, unless it
is sticky and the next component is ours or root's, and each symlink on the way is ours or root's. Our private
directory inside a sticky one that someone else made first is :class:`Squatted`, for the caller to go elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

__all__ = [
    "PrivateDir",
    "Squatted",
    "Untrusted",
    "check_path",
    "check_private",
    "open_lock_beside",
    "owner_writable",
    "private_dir_path",
    "read_regular",
    "rewrite_refusal",
]

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_OTHERS_ANY = stat.S_IRWXG | stat.S_IRWXO
_MAX_SYMLINKS = 40  # the kernel's own limit (ELOOP)


class Untrusted(OSError):
    """A file or directory that is not ours to trust; the message says why (no content of the file)."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EPERM, reason)


class Squatted(Untrusted):
    """Our private ``credport-<uid>`` directory in a shared sticky one exists and is not ours alone: another user
    can make it before we do, so this is no fault of the operator's and the caller may use another directory."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path


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


def rewrite_refusal(path: Path) -> str | None:
    """Why the file at ``path`` must not be replaced, from its mode bits (os.access says yes to root for
    everything): a file or directory without its owner's write bit is read-only, the operator's word. A file with
    other hard links is not replaced either: a rename gives ``path`` a new file and leaves the others the old one."""
    try:
        status = os.lstat(path)
    except OSError as error:
        return error.strerror or str(error)
    if stat.S_ISLNK(status.st_mode):
        return "it is a symbolic link, which a rewrite would replace"
    if status.st_uid != os.geteuid():
        return f"it belongs to uid {status.st_uid}"
    if not status.st_mode & stat.S_IWUSR:
        return "the file is read-only"
    if status.st_nlink > 1:
        return (
            f"it has {status.st_nlink - 1} other hard link(s), which a rewrite would leave on the old generation; "
            "calls through them read this state file too when they use the same state directory, else they "
            "present the old generation, accepted only until the grace period ends"
        )
    if not owner_writable(path.parent):
        return "its directory is read-only"
    return None


def owner_writable(directory: Path) -> bool:
    with contextlib.suppress(OSError):
        return bool(os.stat(directory).st_mode & stat.S_IWUSR)
    return False


def open_lock_beside(lock: Path, *, create: bool, warn: Callable[[str], None]) -> int | None:
    """A descriptor of the lock file ``lock`` beside a bundle, or None (the caller uses one in its state directory).
    Created only where the bundle itself may be rewritten (``create``); an existing one of ours is used even
    read-only (flock works on a descriptor opened read-only). One that is not ours alone is ignored, with a
    warning, never waited on: anybody able to open it could hold it for ever."""
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for mode in [os.O_RDWR | os.O_CREAT, os.O_RDONLY] if create else [os.O_RDONLY]:
        try:
            fd = os.open(lock, flags | mode, 0o600)
        except OSError as error:
            if error.errno == errno.ELOOP:
                warn(f"ignoring the lock file {lock}: it is a symbolic link; using one in the state directory")
                return None
            continue
        try:
            check_private(os.fstat(fd))
        except Untrusted as error:
            os.close(fd)
            warn(f"ignoring the lock file {lock}: {error.strerror}; using one in the state directory")
            return None
        return fd
    return None


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


def check_path(given: Path, *, missing_ok: bool = False) -> os.stat_result | None:
    """Untrusted unless nobody but us and root can change what ``given`` names (see the module docstring); the
    status of the directory it names, or None when a component is missing and ``missing_ok`` (what is still to be
    made is made by us, in a directory checked here). Relative paths are walked from the (physical) working dir."""
    trusted = {os.geteuid(), 0}
    current, status = "/", os.lstat("/")
    pending = list(reversed(Path(os.getcwd(), given).parts[1:]))
    links = 0
    while pending:
        name = pending.pop()
        if name == "..":  # after a symlink, the parent of where it led, as the kernel does
            current = os.path.dirname(current)
            status = os.lstat(current)
            continue
        child = os.path.join(current, name)
        try:
            child_status = os.lstat(child)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise
        _check_step(current, status, child, child_status, trusted)
        if stat.S_ISLNK(child_status.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(given))
            target = Path(os.readlink(child))
            if target.is_absolute():
                current, status = "/", os.lstat("/")
            pending.extend(reversed(target.parts[1:] if target.is_absolute() else target.parts))
            continue
        current, status = child, child_status
    return status


def _check_step(
    parent: str, status: os.stat_result, child: str, child_status: os.stat_result, trusted: set[int]
) -> None:
    if status.st_uid not in trusted:
        raise Untrusted(f"{parent} belongs to uid {status.st_uid}, not to this user or root")
    if stat.S_ISLNK(child_status.st_mode) and child_status.st_uid not in trusted:
        raise Untrusted(f"{child} is a symbolic link of uid {child_status.st_uid}, not of this user or root")
    if status.st_mode & _OTHERS_WRITE:
        mode = f"mode {stat.S_IMODE(status.st_mode):04o}"
        if not status.st_mode & stat.S_ISVTX:
            raise Untrusted(f"{parent} is writable by others ({mode}), so {child} could be swapped")
        if child_status.st_uid not in trusted:
            owner = child_status.st_uid
            raise Untrusted(f"{child} belongs to uid {owner} in {parent}, which others can write ({mode})")


def _private_inside(parent: int, path: Path, *, create: bool) -> int:
    """The descriptor of our private directory ``path`` in the shared sticky directory ``parent``."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.name, 0o700, dir_fd=parent)
    try:
        fd = os.open(path.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Squatted(path, "is not a directory (a symbolic link or a file)") from None
        raise
    status = os.fstat(fd)
    if status.st_uid != os.geteuid() or status.st_mode & _OTHERS_ANY:
        os.close(fd)
        if status.st_uid != os.geteuid():
            raise Squatted(path, f"belongs to uid {status.st_uid}, not to this user (uid {os.geteuid()})")
        raise Squatted(path, f"is open to others (mode {stat.S_IMODE(status.st_mode):04o})")
    return fd


class PrivateDir:
    """An open directory of ours that nobody else can write; its files are used by name through its descriptor."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def open(cls, given: Path, *, create: bool) -> PrivateDir:
        """FileNotFoundError when it does not exist (and ``create`` is False); Untrusted (an OSError) when it is
        not ours, others may write it and it is not a sticky directory to make our own inside, or others could
        change what its path names (:func:`check_path`); Squatted when our own one inside is not ours alone."""
        if create:
            check_path(given, missing_ok=True)  # never make directories where someone else's symlink leads
            given.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(given, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            status, path = os.fstat(fd), given
            if _shared_sticky(status):  # /tmp and its like: a private directory of ours inside, never the dir itself
                path = given / f"credport-{os.geteuid()}"
                shared, fd = fd, _private_inside(fd, path, create=create)
                os.close(shared)
            else:
                _check_owner(status, str(given))
                if status.st_mode & _OTHERS_WRITE:
                    raise Untrusted(f"{given} is writable by others (mode {stat.S_IMODE(status.st_mode):04o})")
            # After the directory's own checks, so that they are the ones to speak for it; the walk must then
            # end at the very directory opened, or the path changed in between.
            walked = check_path(given)
            if walked is None or (walked.st_dev, walked.st_ino) != (status.st_dev, status.st_ino):
                raise Untrusted(f"{given} changed while it was opened")
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

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
