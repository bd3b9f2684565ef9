"""When the bundle cannot be rewritten: the state directory, which of bundle and state is used, the lock.

A read-only directory is simulated at the system-call boundary (``os.open`` with a write or create flag,
``os.replace`` and ``os.unlink`` into it fail with the chosen errno), because tests may run as root, which
directory permissions do not stop; ``tests/e2e/test_autoid_client_state.py`` does it with a real read-only one.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chalicelib.autoid.protocol import ENTROPY_BYTES, Want
from chalicelib.envelope import generate_recipient_key
from client import autoid, cli
from client.autoid import Bundle, write_bundle
from client.autoid_state import BundleFiles, Loaded, default_state_dir
from client.owned_files import rewrite_refusal

KEY = generate_recipient_key(4096)
NEW_KEY = generate_recipient_key(4096)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


def jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [k.public_jwk() for k in keys], "current_kid": keys[0].kid}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ReadOnly:
    """Directories where creating, replacing or removing a file fails, for everyone (root included)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dirs: dict[Path, int] = {}
        real_open, real_replace, real_unlink = os.open, os.replace, os.unlink

        def refused(path: Any, dir_fd: int | None = None) -> int | None:
            name = Path(os.fsdecode(path))
            if dir_fd is not None:  # the state directory's files are reached through its descriptor
                name = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) / name
            return self.dirs.get(name.resolve().parent)

        def fake_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
            code = refused(path, dir_fd)
            if code is not None and flags & _WRITE_FLAGS:
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            return real_open(path, flags, mode, dir_fd=dir_fd)

        def fake_replace(src: Any, dst: Any, **kwargs: Any) -> None:
            code = refused(dst, kwargs.get("dst_dir_fd"))
            if code is not None:
                raise OSError(code, os.strerror(code), os.fsdecode(dst))
            real_replace(src, dst, **kwargs)

        def fake_unlink(path: Any, **kwargs: Any) -> None:
            code = refused(path, kwargs.get("dir_fd"))
            if code is not None:
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            real_unlink(path, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "replace", fake_replace)
        monkeypatch.setattr(os, "unlink", fake_unlink)

    def make(self, directory: Path, code: int = errno.EACCES) -> None:
        self.dirs[directory.resolve()] = code

    def release(self, directory: Path) -> None:
        del self.dirs[directory.resolve()]


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> ReadOnly:
    return ReadOnly(monkeypatch)


@pytest.fixture
def warnings() -> list[str]:
    return []


def setup(tmp_path: Path, warnings: list[str], generation: int = 1) -> tuple[Path, Bundle, BundleFiles]:
    path = tmp_path / "etc" / "autoid.json"
    original = Bundle("c-1", "http://127.0.0.1:1", generation, jwks(KEY), os.urandom(ENTROPY_BYTES))
    write_bundle(path, original)
    return path, original, BundleFiles(path, tmp_path / "state", warn=warnings.append)


def news(generation: int, entropy: bytes, **more: Any) -> dict[str, Any]:
    return {"secret": {"value": "v"}, "entropy": {"gen": generation, "data": b64(entropy)}, **more}


def save(files: BundleFiles, answer: dict[str, Any]) -> dict[str, Any]:
    """One call whose server answers ``answer`` (to whatever generation it is shown)."""
    return files.call(lambda _bundle: answer)


def presented(files: BundleFiles) -> Bundle:
    """What the next call presents to the server."""
    shown: list[Bundle] = []
    files.call(lambda bundle: shown.append(bundle) or {"secret": {}})  # type: ignore[func-returns-value]
    return shown[0]


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only file system"), (errno.EPERM, "not permitted")],
)
def test_a_new_generation_goes_to_the_state_file_when_the_bundle_cannot_be_rewritten(
    tmp_path: Path, read_only: ReadOnly, warnings: list[str], code: int, reason: str
) -> None:
    path, original, files = setup(tmp_path, warnings)
    read_only.make(path.parent, code)
    newer = os.urandom(ENTROPY_BYTES)
    answer = news(2, newer)
    save(files, answer)

    assert "entropy" not in answer  # the caller gets its credential without the news
    assert Bundle.load(path) == original  # untouched
    state = files.state_path("c-1")
    assert state.parent == tmp_path / "state"
    assert state.name.startswith("autoid-c-1-")
    assert state.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in state.parent.iterdir() if p.suffix == ".tmp"] == []  # written atomically
    assert len(warnings) == 1
    assert warnings[0].startswith(f"cannot rewrite {path} (")
    assert reason in warnings[0]
    assert warnings[0].endswith(f"); saved generation 2 to {state}")
    # Every later call presents the newer generation, with the bundle's endpoint and the lock in the state dir.
    effective = presented(files)
    assert (effective.generation, effective.entropy, effective.endpoint) == (2, newer, original.endpoint)
    assert list(path.parent.iterdir()) == [path]  # not even a lock file was created beside the bundle
    assert sorted(p.suffix for p in state.parent.iterdir()) == [".json", ".lock"]


@pytest.mark.parametrize(
    ("make_read_only", "why"),
    [
        (lambda path: path.chmod(0o400), "the file is read-only"),
        (lambda path: path.parent.chmod(0o500), "its directory is read-only"),
    ],
    ids=["file-0400", "directory-0500"],
)
def test_a_read_only_bundle_is_the_operators_word_even_for_root(
    tmp_path: Path, warnings: list[str], make_read_only: Callable[[Path], None], why: str
) -> None:
    # The mode bits decide, not os.access (always "writable" for root): this runs the same as root or not.
    path, original, files = setup(tmp_path, warnings)
    make_read_only(path)
    try:
        save(files, news(2, os.urandom(ENTROPY_BYTES)))
        assert Bundle.load(path) == original
        assert warnings == [f"cannot rewrite {path} ({why}); saved generation 2 to {files.state_path('c-1')}"]
        if why.startswith("its directory"):  # nor is a lock file created there
            assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    finally:
        path.parent.chmod(0o700)
        path.chmod(0o600)


def test_a_bundle_of_another_user_or_behind_a_symlink_is_not_rewritten(
    tmp_path: Path, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, original, files = setup(tmp_path, warnings)
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)  # the file now belongs to someone else
    assert rewrite_refusal(files.bundle) == f"it belongs to uid {os.getuid()}"
    monkeypatch.undo()
    link = tmp_path / "link.json"
    link.symlink_to(path)
    linked = BundleFiles(link, tmp_path / "state", warn=warnings.append)
    save(linked, news(2, os.urandom(ENTROPY_BYTES)))
    assert link.is_symlink()
    assert Bundle.load(path) == original
    assert warnings[0].startswith(f"cannot rewrite {link} (it is a symbolic link, which a rewrite would replace)")


def test_the_state_is_migrated_into_the_bundle_once_it_is_writable_again(
    tmp_path: Path, read_only: ReadOnly, warnings: list[str]
) -> None:
    path, _, files = setup(tmp_path, warnings)
    read_only.make(path.parent)
    newer = os.urandom(ENTROPY_BYTES)
    save(files, news(2, newer))
    read_only.release(path.parent)
    effective = presented(files)  # accepted by the server: now it goes into the bundle
    assert (effective.generation, Bundle.load(path).generation, Bundle.load(path).entropy) == (2, 2, newer)
    assert not files.state_path("c-1").exists()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_state_older_or_equal_to_the_bundle_is_ignored_and_removed(tmp_path: Path, warnings: list[str]) -> None:
    _, _, files = setup(tmp_path, warnings, generation=3)
    for stale_generation in (2, 3):
        stale = Bundle("c-1", "x", stale_generation, jwks(NEW_KEY), os.urandom(ENTROPY_BYTES))
        state = files.state_path("c-1")
        state.parent.mkdir(exist_ok=True)
        state.write_text(json.dumps({**stale.document(), "based_on": "?"}))
        state.chmod(0o600)
        loaded = presented(files)
        assert (loaded.generation, loaded.server_key().kid) == (3, KEY.kid)
        assert not state.exists()
    assert warnings == []


def test_a_state_file_of_another_client_is_never_used(tmp_path: Path, warnings: list[str]) -> None:
    _, original, files = setup(tmp_path, warnings)
    state = files.state_path("c-1")
    state.parent.mkdir()
    other = Bundle("c-2", "x", 9, jwks(NEW_KEY), os.urandom(ENTROPY_BYTES))  # placed under c-1's name on purpose
    state.write_text(json.dumps(other.document()))
    state.chmod(0o600)
    assert files.load().state is None
    assert presented(files) == original
    # Nor is a state kept for this client at another bundle path (another bundle file, another key).
    elsewhere = BundleFiles(tmp_path / "copy.json", tmp_path / "state")
    assert elsewhere.state_path("c-1") != state


def test_new_server_keys_alone_are_kept_too_and_dropped_once_the_bundle_moves_on(
    tmp_path: Path, read_only: ReadOnly, warnings: list[str]
) -> None:
    path, original, files = setup(tmp_path, warnings)
    read_only.make(path.parent)
    save(files, {"secret": {}, "server_keys": jwks(NEW_KEY, KEY)})
    assert len(warnings) == 1
    assert presented(files).server_key().kid == NEW_KEY.kid  # same generation, newer keys: the state wins
    assert len(warnings) == 1  # used quietly
    assert Bundle.load(path).server_key().kid == KEY.kid
    # The operator replaces the bundle with other keys: the state no longer applies to it.
    read_only.release(path.parent)
    third = generate_recipient_key(4096)
    write_bundle(path, Bundle("c-1", original.endpoint, 1, jwks(third), original.entropy))
    assert presented(files).server_key().kid == third.kid
    assert not files.state_path("c-1").exists()


def test_a_newer_state_is_never_replaced_by_an_older_generation(
    tmp_path: Path, read_only: ReadOnly, warnings: list[str]
) -> None:
    path, original, files = setup(tmp_path, warnings)
    read_only.make(path.parent)
    newest = os.urandom(ENTROPY_BYTES)
    save(files, news(3, newest))
    older = replace(original, generation=2, entropy=os.urandom(ENTROPY_BYTES))
    with files.locked():  # a call that loaded the bundle (generation 1) before the save above, then got generation 2
        files._keep(Loaded(original, None), original, older)
    assert (presented(files).generation, presented(files).entropy) == (3, newest)


def test_when_nothing_is_writable_the_new_generation_is_lost_and_the_warning_says_what_follows(
    tmp_path: Path, read_only: ReadOnly, warnings: list[str]
) -> None:
    path, original, files = setup(tmp_path, warnings)
    (tmp_path / "state").mkdir()
    read_only.make(path.parent)
    read_only.make(tmp_path / "state", errno.EROFS)
    answer = news(2, os.urandom(ENTROPY_BYTES))
    save(files, answer)
    assert answer == {"secret": {"value": "v"}}
    assert Bundle.load(path) == original
    assert len(warnings) == 1
    (warning,) = warnings
    assert warning.startswith(f"cannot rewrite {path} (Permission denied) nor write the state directory ")
    assert "(Read-only file system): generation 2 is LOST unless one of them becomes writable" in warning
    assert "keeps using generation 1" in warning
    assert "grace period" in warning
    assert "CREDPORT_AUTOID_GRACE_PERIOD, 7 days by default" in warning
    assert "end-grace" in warning
    assert "\n" not in warning


def test_the_state_directory_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_dir({}) == tmp_path / ".local" / "state" / "credport"
    assert default_state_dir({"XDG_STATE_HOME": "relative/ignored"}) == tmp_path / ".local" / "state" / "credport"
    assert default_state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/credport")
    assert default_state_dir({"XDG_STATE_HOME": "/x", "CREDPORT_STATE_DIR": "/y"}) == Path("/y")


def test_the_lock_wait_is_bounded_and_a_call_that_cannot_have_it_saves_nothing_and_says_why(
    tmp_path: Path, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, original, files = setup(tmp_path, warnings)
    holder = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another process's call of ours, stuck in its request
    monkeypatch.setattr(autoid, "_request", lambda *_a, **_k: news(2, os.urandom(ENTROPY_BYTES)))
    monkeypatch.setattr("client.autoid_state.LOCK_WAIT_SECONDS", 0.3)
    monkeypatch.setattr("client.autoid_state.SAVE_LOCK_WAIT_SECONDS", 0.2)
    started = time.monotonic()
    try:
        answer = autoid.fetch(path, Want(secret_id="s"), state_dir=tmp_path / "state", warn=warnings.append)
    finally:
        os.close(holder)
    assert time.monotonic() - started < 2
    assert answer == {"secret": {"value": "v"}}  # the credential, without the news
    assert Bundle.load(path) == original
    assert not files.state_path("c-1").exists()
    assert warnings == [
        f"the save of generation 2 was skipped: another process held the lock on {path} (0.3 s before the request, "
        "0.2 s after it); a later call saves it"
    ]


def test_a_call_that_waited_in_vain_still_saves_when_the_lock_is_free_after_its_request(
    tmp_path: Path, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, _files = setup(tmp_path, warnings)
    holder = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    newer = os.urandom(ENTROPY_BYTES)

    def request(*_a: Any, **_k: Any) -> dict[str, Any]:
        os.close(holder)  # the other call ends while this one is at the server
        return news(2, newer)

    monkeypatch.setattr(autoid, "_request", request)
    monkeypatch.setattr("client.autoid_state.LOCK_WAIT_SECONDS", 0.2)
    autoid.fetch(path, Want(secret_id="s"), state_dir=tmp_path / "state", warn=warnings.append)
    assert (Bundle.load(path).generation, Bundle.load(path).entropy, warnings) == (2, newer, [])


@pytest.mark.parametrize("kind", ["readable-by-others", "another-users", "symlink"])
def test_a_lock_file_that_is_not_ours_alone_is_ignored_so_nobody_can_stall_the_calls(
    tmp_path: Path, warnings: list[str], kind: str
) -> None:
    path, _, files = setup(tmp_path, warnings)
    lock = path.with_name(path.name + ".lock")
    if kind == "symlink":
        target = tmp_path / "elsewhere.lock"
        target.touch(0o600)
        lock.symlink_to(target)
        holder = os.open(target, os.O_RDONLY)
        reason = "it is a symbolic link"
    else:
        holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        if kind == "readable-by-others":
            os.fchmod(holder, 0o644)  # read access is all flock needs
            reason = "it is readable or writable by others (mode 0644)"
        else:
            if os.geteuid() != 0:
                pytest.skip("giving a file to another user (uid 65534) needs root")
            os.fchown(holder, 65534, 65534)
            reason = "it belongs to uid 65534, not to this user (uid 0)"
    fcntl.flock(holder, fcntl.LOCK_SH)  # another user holds it, for ever
    newer = os.urandom(ENTROPY_BYTES)
    started = time.monotonic()
    try:
        save(files, news(2, newer))  # LOCK_WAIT_SECONDS is 30 s: this would wait for it
    finally:
        os.close(holder)
    assert time.monotonic() - started < 5
    assert Bundle.load(path).entropy == newer  # saved under our own lock
    assert warnings == [f"ignoring the lock file {lock}: {reason}; using one in the state directory"]
    assert [p.suffix for p in (tmp_path / "state").iterdir()] == [".lock"]
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_the_lock_file_beside_the_bundle_is_created_0600(tmp_path: Path, warnings: list[str]) -> None:
    path, _, files = setup(tmp_path, warnings)
    save(files, news(2, os.urandom(ENTROPY_BYTES)))
    assert path.with_name(path.name + ".lock").stat().st_mode & 0o777 == 0o600
    assert warnings == []


def test_get_prints_the_credentials_and_one_warning_line_when_the_bundle_is_read_only(
    tmp_path: Path, read_only: ReadOnly, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = setup(tmp_path, [])
    read_only.make(path.parent)
    presented: list[int] = []

    def server(bundle: Bundle, want: Want, **_: Any) -> dict[str, Any]:
        presented.append(bundle.generation)
        return news(2, entropy) if bundle.generation < 2 else {"secret": {"value": "v"}}

    entropy = os.urandom(ENTROPY_BYTES)
    monkeypatch.setattr(autoid, "_request", server)
    monkeypatch.setenv("CREDPORT_STATE_DIR", str(tmp_path / "env-state"))
    run: Callable[[], int] = lambda: cli.main(["autoid", "get", "--bundle", str(path), "--secret-id", "s"])  # noqa: E731
    assert run() == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"secret": {"value": "v"}}
    state = next((tmp_path / "env-state").glob("autoid-c-1-*.json"))
    assert err.splitlines() == [
        f"credport: warning: cannot rewrite {path} (Permission denied); saved generation 2 to {state}"
    ]
    assert run() == 0
    assert capsys.readouterr().err == ""  # the state is used quietly
    assert presented == [1, 2]


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CREDPORT_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
