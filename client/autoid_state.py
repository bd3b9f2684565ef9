"""Where a workload keeps what the server handed back when its bundle cannot be rewritten.

The README keeps the bundle in ``/etc/credport``, often read-only to the workload. A newer entropy generation (or
newer pinned server keys) must then still be kept somewhere, or every call presents the old generation until its
grace period ends and the workload is stranded. So the news goes to a *state file* in a directory the workload can
write (:func:`default_state_dir`), keyed per bundle (client id + a hash of the bundle's resolved path), 0600 and
replaced atomically. Every call loads the bundle and its state file and uses whichever is newer; once the bundle
is writable again, a newer state is migrated into it and the state file removed.

One lock per bundle serialises the whole request and save of concurrent calls (an SDK runs ``credential_process``
from several processes at once): the first call saves the new generation, the ones waiting behind it then present
it and get no second copy. The lock file sits next to the bundle, or in the state directory when it cannot be
created there; the wait is bounded, and a call that times out still gets its credential but saves nothing.
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chalicelib.autoid.protocol import ENTROPY_BYTES
from client.autoid import Bundle, BundleError, write_bundle
from client.private_file import write_private_json

__all__ = ["LOCK_WAIT_SECONDS", "BundleFiles", "Warn", "default_state_dir", "stderr_warning"]

LOCK_WAIT_SECONDS = 30.0
_POLL_SECONDS = 0.05
Warn = Callable[[str], None]


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
class BundleFiles:
    """The bundle at ``bundle`` and its state file under ``state_dir``."""

    bundle: Path
    state_dir: Path
    warn: Warn = stderr_warning

    @property
    def _key(self) -> str:
        # The resolved path: ./autoid.json and /etc/credport/autoid.json are one bundle when they are one file.
        return hashlib.sha256(os.fsencode(self.bundle.resolve())).hexdigest()[:16]

    def state_path(self, client_id: str) -> Path:
        return self.state_dir / f"autoid-{client_id}-{self._key}.json"

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
                        self.warn(
                            f"another credport process held the lock on {self.bundle} for more than {wait:g} s; "
                            "going on without it (anything new from the server is saved by a later call)"
                        )
                        yield False
                        return
                    time.sleep(_POLL_SECONDS)
            yield True
        finally:
            os.close(fd)

    def _open_lock(self) -> int | None:
        beside = self.bundle.with_name(self.bundle.name + ".lock")
        # An existing lock file that is not ours to write still locks: flock works on a descriptor opened read-only.
        for path, flags in ((beside, os.O_CREAT | os.O_RDWR), (beside, os.O_RDONLY)):
            with contextlib.suppress(OSError):
                return os.open(path, flags | os.O_CLOEXEC, 0o600)
        with contextlib.suppress(OSError):
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(self.state_dir / f"autoid-{self._key}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        return None

    # Loading --------------------------------------------------------------------------------------

    def load(self) -> Bundle:
        """The bundle, or its state if newer (migrated into the bundle when the bundle can be rewritten)."""
        bundle = Bundle.load(self.bundle)
        state_path = self.state_path(bundle.client_id)
        state = self._read_state(state_path, bundle)
        if state is None:
            return bundle
        if not state:  # stale: the bundle caught up (or moved on); the file has no use any more
            with contextlib.suppress(OSError):
                state_path.unlink()
            return bundle
        effective = replace(state[0], endpoint=bundle.endpoint)
        with contextlib.suppress(OSError, BundleError):
            self._write_bundle(effective)
            with contextlib.suppress(OSError):
                state_path.unlink()
        return effective

    def _read_state(self, path: Path, bundle: Bundle) -> tuple[Bundle] | tuple[()] | None:
        """None: no state file; (): one that is not newer; (state,): one newer than the bundle."""
        try:
            state = Bundle.load(path)
            based_on = json.loads(path.read_text()).get("based_on")
        except FileNotFoundError:
            return None
        except (OSError, BundleError, ValueError, AttributeError) as error:
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

    # Saving ---------------------------------------------------------------------------------------

    def save_news(self, current: Bundle, answer: dict[str, Any]) -> None:
        """Take the entropy and server keys out of ``answer``; keep whatever is newer than ``current`` (what the
        request presented) in the bundle, else in the state file; warn once if neither can be written."""
        entropy, server_keys = answer.pop("entropy", None), answer.pop("server_keys", None)
        updated = current
        if entropy is not None and int(entropy["gen"]) > current.generation:
            data = _unb64(entropy["data"])
            if len(data) != ENTROPY_BYTES:
                raise BundleError("the server sent a malformed entropy generation")
            updated = replace(updated, generation=int(entropy["gen"]), entropy=data)
        if server_keys is not None:
            updated = replace(updated, server_keys=dict(server_keys))
            updated.server_key()  # refuse to pin a JWKS we could not use
        if updated == current:
            return
        try:
            self._write_bundle(updated)
        except OSError as error:
            self._save_state(current, updated, f"cannot rewrite {self.bundle} ({_reason(error)})")
            return
        with contextlib.suppress(OSError):
            self.state_path(updated.client_id).unlink()

    def _write_bundle(self, updated: Bundle) -> None:
        # Under the lock, read again: a process that did not wait for the lock may have saved something newer.
        on_disk = Bundle.load(self.bundle)
        if on_disk.client_id != updated.client_id:
            raise BundleError(f"{self.bundle} now holds another client")
        if on_disk.generation > updated.generation or on_disk == replace(updated, endpoint=on_disk.endpoint):
            return
        if not os.access(self.bundle, os.W_OK):  # a read-only file is the operator's word, even where rename works
            raise PermissionError(errno.EACCES, "the file is read-only")
        write_bundle(self.bundle, replace(updated, endpoint=on_disk.endpoint))

    def _save_state(self, current: Bundle, updated: Bundle, why: str) -> None:
        path = self.state_path(updated.client_id)
        bundle = Bundle.load(self.bundle)
        document = {
            **updated.document(),
            "based_on": _keys_fingerprint(bundle.server_keys),  # which bundle keys the state's keys replace
            "bundle": str(self.bundle.resolve()),  # for the operator reading the directory; not used
        }
        try:
            existing = self._read_state(path, bundle)
            if not (existing and existing[0].generation > updated.generation):
                write_private_json(path, document, prefix=".autoid-state-")
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
        self.warn(f"{why}; saved generation {updated.generation} to {path}")


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
