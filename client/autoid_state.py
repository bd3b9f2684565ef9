"""Where a workload keeps what the server handed back when its bundle cannot be rewritten.

The README keeps the bundle in ``/etc/credport``, often read-only to the workload. A newer entropy generation (or
newer pinned server keys) must then still be kept somewhere, or every call presents the old generation until its
grace period ends and the workload is stranded. So the news goes to a *state file* in a directory the workload can
write (:func:`default_state_dir`), keyed per bundle (client id + a hash of the bundle's resolved path), 0600 and
replaced atomically. Every call presents the state's generation when it is newer than the bundle's.

A state file is a claim, not a fact: it is read only from a directory of ours that nobody else can write, only
when it is ours alone (:mod:`client.owned_files`), and it reaches the bundle only after the server accepted its
generation. If the server refuses it (401), the call is made once more with the bundle's own generation, and the
state file is removed when that one is accepted: a state file can never make the bundle worse.

One lock per bundle serialises the whole request and save of concurrent calls (an SDK runs ``credential_process``
from several processes at once): the first call saves the new generation, the ones waiting behind it then present
it and get no second copy. The lock file sits next to the bundle (ours, 0600; one that is not is ignored, or
anybody able to open it could stall every call), else in the state directory. The wait is bounded; a call that
could not have the lock still gets its credential, and tries once more, briefly, to have it for the save. A
filesystem that cannot lock at all (NFS without lockd, some FUSE) is said once and the call goes on unserialised.

A bundle with other hard links is not rewritten (a rename would give this path a new file and leave the old
generation to the others): its state is keyed by device and inode, so every link reads the same state file.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chalicelib.autoid.protocol import ENTROPY_BYTES
from client.autoid import MAX_BUNDLE_BYTES, Bundle, BundleError, write_bundle
from client.owned_files import PrivateDir, Squatted, open_lock_beside, owner_writable, private_dir_path, rewrite_refusal

__all__ = ["LOCK_WAIT_SECONDS", "SAVE_LOCK_WAIT_SECONDS", "BundleFiles", "Warn", "default_state_dir", "stderr_warning"]

LOCK_WAIT_SECONDS = 30.0  # before the request: long enough for the calls queued ahead of this one
SAVE_LOCK_WAIT_SECONDS = 2.0  # after a request made without the lock: only for the save
_POLL_SECONDS = 0.05
Warn = Callable[[str], None]
Request = Callable[[Bundle], dict[str, Any]]


def stderr_warning(message: str) -> None:
    print(f"credport: warning: {message}", file=sys.stderr, flush=True)


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$CREDPORT_STATE_DIR``, else ``$XDG_STATE_HOME/credport``, else ``~/.local/state/credport`` (the XDG base
    directory specification's default; an empty or relative ``XDG_STATE_HOME`` is ignored, as it says)."""
    environ = os.environ if environ is None else environ
    if environ.get("CREDPORT_STATE_DIR"):
        return Path(environ["CREDPORT_STATE_DIR"])
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "credport"
    return Path.home() / ".local" / "state" / "credport"


def _keys_fingerprint(server_keys: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(server_keys, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _reason(error: OSError) -> str:
    return error.strerror or errno.errorcode.get(error.errno or 0, type(error).__name__)


@dataclass(frozen=True)
class Loaded:
    bundle: Bundle  # the bundle file as it is
    state: Bundle | None  # a newer generation (or newer keys) from the state file: presented first


@dataclass(frozen=True)
class BundleFiles:
    """The bundle at ``bundle`` and its state file under ``state_dir``."""

    bundle: Path
    state_dir: Path
    warn: Warn = stderr_warning
    _said: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def _warn_once(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self.warn(message)

    @property
    def _key(self) -> str:
        # The resolved path: ./autoid.json and /etc/credport/autoid.json are one bundle when they are one file;
        # the file itself when it has hard links, whose paths all name it (and are never rewritten: _keep).
        with contextlib.suppress(OSError):
            if (status := os.stat(self.bundle)).st_nlink > 1:
                return hashlib.sha256(f"inode:{status.st_dev}:{status.st_ino}".encode()).hexdigest()[:16]
        return hashlib.sha256(os.fsencode(self.bundle.resolve())).hexdigest()[:16]

    def _state_name(self, client_id: str) -> str:
        return f"autoid-{client_id}-{self._key}.json"

    def state_path(self, client_id: str) -> Path:
        with contextlib.suppress(OSError), self._state_directory(create=False) as directory:
            return directory.path / self._state_name(client_id)
        return private_dir_path(self.state_dir) / self._state_name(client_id)

    def _state_directory(self, *, create: bool) -> PrivateDir:
        """The state directory; when another user made our private directory in a shared sticky one first, the
        default one that ``$CREDPORT_STATE_DIR`` would override, said once (squatting must not lose a generation)."""
        try:
            return PrivateDir.open(self.state_dir, create=create)
        except Squatted as error:
            fallback = default_state_dir({k: v for k, v in os.environ.items() if k != "CREDPORT_STATE_DIR"})
            if private_dir_path(fallback) == error.path:
                raise
            self._warn_once(f"the state directory {error.strerror}, made by another user; using {fallback} instead")
            return PrivateDir.open(fallback, create=create)

    # The whole call -------------------------------------------------------------------------------

    def call(self, request: Request) -> dict[str, Any]:
        """``request`` for the bundle (or its newer state), and what the answer brings saved, under the lock."""
        with self.locked(LOCK_WAIT_SECONDS) as held:
            loaded = self.load()
            presented, answer = self._ask(loaded, request)
            updated = _with_news(presented, answer)
            if held:
                self._keep(loaded, presented, updated)
                return answer
        if updated == presented:
            return answer
        with self.locked(SAVE_LOCK_WAIT_SECONDS) as held:
            if held:
                self._keep(self.load(), presented, updated)
                return answer
        self.warn(
            f"the save of generation {updated.generation} was skipped: another process held the lock on "
            f"{self.bundle} ({LOCK_WAIT_SECONDS:g} s before the request, {SAVE_LOCK_WAIT_SECONDS:g} s after it); "
            "a later call saves it"
        )
        return answer

    def _ask(self, loaded: Loaded, request: Request) -> tuple[Bundle, dict[str, Any]]:
        from client.aws_call import CallError

        if loaded.state is None:
            return loaded.bundle, request(loaded.bundle)
        try:
            return loaded.state, request(loaded.state)
        except CallError as error:
            if error.status != 401:
                raise
        answer = request(loaded.bundle)  # refused too: the state file stays (the client may be disabled, say)
        self._remove_state(loaded.bundle.client_id)
        self.warn(
            f"the server refused generation {loaded.state.generation} of the state file "
            f"{self.state_path(loaded.bundle.client_id)}; it is removed, and the bundle's generation "
            f"{loaded.bundle.generation} was used"
        )
        return loaded.bundle, answer

    # Locking --------------------------------------------------------------------------------------

    @contextmanager
    def locked(self, wait: float | None = None) -> Iterator[bool]:
        """Hold the bundle's lock for the block; yields False if it could not be had within ``wait`` seconds
        (the caller then must not save). No place for a lock file at all is not a reason to fail: yields True
        then, since every process of this user is in the same position and a save never goes backwards."""
        wait = LOCK_WAIT_SECONDS if wait is None else wait
        fd = self._open_lock()
        if fd is None:
            yield True
            return
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(_POLL_SECONDS)
                except OSError as error:  # ENOLCK (NFS without lockd), EOPNOTSUPP (some FUSE): no lock to wait for
                    self._warn_once(
                        f"cannot lock {self.bundle} ({_reason(error)}): concurrent calls are not serialised on this "
                        "filesystem"
                    )
                    break
            yield True
        finally:
            os.close(fd)

    def _open_lock(self) -> int | None:
        beside = self.bundle.with_name(self.bundle.name + ".lock")
        if (fd := open_lock_beside(beside, create=owner_writable(self.bundle.parent), warn=self.warn)) is not None:
            return fd
        with contextlib.suppress(OSError), self._state_directory(create=True) as directory:
            return directory.open_lock(f"autoid-{self._key}.lock")
        return None

    # Loading --------------------------------------------------------------------------------------

    def load(self) -> Loaded:
        """The bundle, and its state file's content if that is newer (a stale state file is removed)."""
        bundle = Bundle.load(self.bundle)
        state = self._read_state(bundle)
        if state is None:
            return Loaded(bundle, None)
        if not state:  # stale: the bundle caught up (or moved on); the file has no use any more
            self._remove_state(bundle.client_id)
            return Loaded(bundle, None)
        return Loaded(bundle, replace(state[0], endpoint=bundle.endpoint))

    def _read_state(self, bundle: Bundle) -> tuple[Bundle] | tuple[()] | None:
        """None: no (usable) state file; (): one that is not newer; (state,): one newer than the bundle."""
        name = self._state_name(bundle.client_id)
        try:
            directory = self._state_directory(create=False)
        except FileNotFoundError:
            return None
        except OSError as error:  # Untrusted included: not ours, or others may write it
            self.warn(f"the state directory {self.state_dir} cannot be used ({_reason(error)}); no state file read")
            return None
        path = directory.path / name
        try:
            with directory:
                data = directory.read(name, max_bytes=MAX_BUNDLE_BYTES)
        except FileNotFoundError:
            return None
        except OSError as error:
            self.warn(f"ignoring the state file {path}: {_reason(error)}")
            return None
        try:
            state = Bundle.parse(data, path)
            based_on = json.loads(data).get("based_on")
            state.server_key()  # a state whose keys we could not seal to is no use
        except (BundleError, ValueError, AttributeError) as error:
            self.warn(f"ignoring the state file {path}: {error}")
            return None
        if state.client_id != bundle.client_id:  # never another client's entropy, whatever the file is called
            return ()
        if state.generation > bundle.generation:
            return (state,)
        # Same generation, newer pinned server keys learnt on top of exactly this bundle's keys.
        newer_keys = (
            state.generation == bundle.generation
            and state.entropy == bundle.entropy
            and state.server_keys != bundle.server_keys
            and based_on == _keys_fingerprint(bundle.server_keys)
        )
        return (state,) if newer_keys else ()

    def _remove_state(self, client_id: str) -> None:
        with contextlib.suppress(OSError), self._state_directory(create=False) as directory:
            directory.unlink(self._state_name(client_id))

    # Saving ---------------------------------------------------------------------------------------

    def _keep(self, loaded: Loaded, presented: Bundle, updated: Bundle) -> None:
        """Keep ``updated`` (what the server accepted, with what it handed back) in the bundle, else in the state
        file; warn once if neither can be written. Call under the lock."""
        accepted_state = loaded.state is not None and presented == loaded.state
        if updated == presented and not accepted_state:
            return
        why = rewrite_refusal(self.bundle)
        if why is None:
            try:
                self._write_bundle(updated)
            except OSError as error:
                why = _reason(error)
            else:
                self._remove_state(updated.client_id)
                return
        if updated == presented:  # the state file already holds it: nothing new to say
            return
        self._save_state(presented, updated, f"cannot rewrite {self.bundle} ({why})")

    def _write_bundle(self, updated: Bundle) -> None:
        # Under the lock, read again: a process that did not wait for the lock may have saved something newer.
        on_disk = Bundle.load(self.bundle)
        if on_disk.client_id != updated.client_id:
            raise PermissionError(errno.EPERM, f"{self.bundle} now holds another client")
        if on_disk.generation > updated.generation or on_disk == replace(updated, endpoint=on_disk.endpoint):
            return
        write_bundle(self.bundle, replace(updated, endpoint=on_disk.endpoint))

    def _save_state(self, current: Bundle, updated: Bundle, why: str) -> None:
        bundle = Bundle.load(self.bundle)
        document = {
            **updated.document(),
            "based_on": _keys_fingerprint(bundle.server_keys),  # which bundle keys the state's keys replace
            "bundle": str(self.bundle.resolve()),  # for the operator reading the directory; not used
        }
        try:
            existing = self._read_state(bundle)
            if not (existing and existing[0].generation > updated.generation):
                with self._state_directory(create=True) as directory:
                    directory.write(self._state_name(updated.client_id), json.dumps(document).encode())
        except OSError as error:
            if updated.generation > current.generation:
                lost, kept = f"generation {updated.generation}", f"generation {current.generation}, which"
            else:
                lost, kept = "the new server keys", "the pinned server key, which"
            self.warn(
                f"{why} nor write the state directory {self.state_dir} ({_reason(error)}): {lost} is LOST unless "
                f"one of them becomes writable (each call gets it again until then); this client keeps using {kept} "
                "the server accepts only until the grace period after its rotation ends (CREDPORT_AUTOID_GRACE_PERIOD, "
                "7 days by default; at once after `credport-admin autoid end-grace`), then it must be enrolled again"
            )
            return
        self.warn(f"{why}; saved generation {updated.generation} to {self.state_path(updated.client_id)}")


def _with_news(presented: Bundle, answer: dict[str, Any]) -> Bundle:
    """``presented`` with the entropy and server keys the answer brings, both taken out of ``answer``."""
    entropy, server_keys = answer.pop("entropy", None), answer.pop("server_keys", None)
    updated = presented
    if entropy is not None and int(entropy["gen"]) > presented.generation:
        data = _unb64(entropy["data"])
        if len(data) != ENTROPY_BYTES:
            raise BundleError("the server sent a malformed entropy generation")
        updated = replace(updated, generation=int(entropy["gen"]), entropy=data)
    if server_keys is not None:
        updated = replace(updated, server_keys=dict(server_keys))
        updated.server_key()  # refuse to pin a JWKS we could not use
    return updated


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
