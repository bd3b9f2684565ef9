"""A state file is a claim, not a fact: whose files are read, and why a state can never make the bundle worse.

Another user is played two ways: ``os.chown`` to uid 65534 where the tests run as root (skipped otherwise, for that
case only), and a patched ``os.geteuid`` (runs everywhere), which makes our own files look like someone else's.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.autoid.protocol import ENTROPY_BYTES
from client import autoid, autoid_state, cli
from client.autoid import Bundle, BundleError
from client.autoid_state import BundleFiles
from client.aws_call import CallError
from client.owned_files import PrivateDir, Untrusted
from tests.unit.test_autoid_state import KEY, news, presented, save, setup


def plant(files: BundleFiles, generation: int = 99, mode: int = 0o600, directory: Path | None = None) -> Path:
    """The hostile reviewer's state file: a copy of the bundle with another generation and random entropy."""
    bundle = Bundle.load(files.bundle)
    forged = Bundle(bundle.client_id, bundle.endpoint, generation, bundle.server_keys, os.urandom(ENTROPY_BYTES))
    path = (directory or files.state_path(bundle.client_id).parent) / files.state_path(bundle.client_id).name
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(json.dumps(forged.document()))
    path.chmod(mode)
    return path


class Server:
    """Accepts only the generations it is told; refuses any other with the broker's opaque 401."""

    def __init__(self, *accepted: int) -> None:
        self.accepted, self.shown = set(accepted), list[int]()

    def __call__(self, bundle: Bundle) -> dict[str, Any]:
        self.shown.append(bundle.generation)
        if bundle.generation not in self.accepted:
            raise CallError(401, {"error": "authentication_failed", "message": "authentication failed"})
        return {"secret": {"value": "v"}}


def test_a_state_file_of_another_user_is_never_read(tmp_path: Path, warnings: list[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user (uid 65534) needs root")
    path, original, files = setup(tmp_path, warnings)
    forged = plant(files)
    os.chown(forged, 65534, 65534)
    server = Server(1)
    assert files.call(server) == {"secret": {"value": "v"}}
    assert (server.shown, Bundle.load(path)) == ([1], original)
    assert warnings == [f"ignoring the state file {forged}: it belongs to uid 65534, not to this user (uid 0)"]
    assert forged.exists()  # not ours to remove either


@pytest.mark.parametrize("kind", ["group-readable", "symlink", "fifo", "directory"])
def test_a_state_file_that_is_not_a_private_regular_file_is_never_read(
    tmp_path: Path, warnings: list[str], kind: str
) -> None:
    path, original, files = setup(tmp_path, warnings)
    state = files.state_path("c-1")
    state.parent.mkdir(mode=0o700)
    if kind == "group-readable":
        plant(files, mode=0o640)
        reason = "it is readable or writable by others (mode 0640)"
    elif kind == "symlink":
        state.symlink_to(plant(files, directory=tmp_path / "elsewhere"))
        reason = "it is a symbolic link"
    elif kind == "fifo":
        os.mkfifo(state, 0o600)  # opened non-blocking: a FIFO never hangs the call
        reason = "it is not a regular file"
    else:
        state.mkdir(mode=0o700)
        reason = "it is not a regular file"
    server = Server(1)
    files.call(server)
    assert (server.shown, Bundle.load(path)) == ([1], original)
    assert warnings == [f"ignoring the state file {state}: {reason}"]


def test_a_state_directory_that_is_not_ours_is_not_used(
    tmp_path: Path, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, files = setup(tmp_path, warnings)
    plant(files)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    with pytest.raises(Untrusted, match=rf"belongs to uid {me}, not to this user \(uid {me + 1}\)"):
        PrivateDir.open(tmp_path / "state", create=False)
    assert files.load().state is None
    assert warnings == [
        f"the state directory {tmp_path / 'state'} cannot be used ({tmp_path / 'state'} belongs to uid {me}, not to "
        f"this user (uid {me + 1})); no state file read"
    ]


def test_a_state_directory_others_can_write_is_not_used(tmp_path: Path, warnings: list[str]) -> None:
    _, _, files = setup(tmp_path, warnings)
    plant(files)
    (tmp_path / "state").chmod(0o777)  # world-writable and not sticky: anyone could swap the files in it
    assert files.load().state is None
    assert warnings == [
        f"the state directory {tmp_path / 'state'} cannot be used ({tmp_path / 'state'} is writable by others "
        "(mode 0777)); no state file read"
    ]


def test_a_shared_sticky_state_directory_gets_a_private_one_inside_and_a_planted_file_is_never_seen(
    tmp_path: Path, warnings: list[str]
) -> None:
    # The review's repro: CREDPORT_STATE_DIR=/tmp/shared (1777), the state file planted under its expected name.
    path, original, files = setup(tmp_path, warnings)
    shared = tmp_path / "state"
    shared.mkdir()
    shared.chmod(0o1777)
    planted = plant(files, directory=shared)
    assert files.state_path("c-1") == shared / f"credport-{os.geteuid()}" / planted.name
    server = Server(1)
    files.call(server)
    assert (server.shown, Bundle.load(path), warnings) == ([1], original, [])
    # What this client keeps there goes into a directory of its own, 0700.
    path.parent.chmod(0o500)
    try:
        save(files, news(2, os.urandom(ENTROPY_BYTES)))
    finally:
        path.parent.chmod(0o700)
    private = shared / f"credport-{os.geteuid()}"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert [p.suffix for p in private.iterdir()] == [".json"]  # the lock made beside the bundle is still used
    assert presented(files).generation == 2


def test_a_private_directory_someone_else_made_in_a_sticky_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    me = os.geteuid()
    (shared / f"credport-{me + 1}").mkdir(mode=0o700)  # made by us, so not by "uid me + 1" below
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    with pytest.raises(Untrusted, match=f"belongs to uid {me}"):
        PrivateDir.open(shared, create=True)


def test_a_state_the_server_refuses_is_dropped_and_the_bundle_used_once_and_the_bundle_is_never_made_worse(
    tmp_path: Path, warnings: list[str]
) -> None:
    # Our own user's state, with a generation the server never made: nothing but the server can tell.
    path, original, files = setup(tmp_path, warnings)
    forged = plant(files)
    assert Bundle.load(path) == original  # loading it wrote nothing into the bundle
    server = Server(1)
    assert files.call(server) == {"secret": {"value": "v"}}
    assert server.shown == [99, 1]
    assert Bundle.load(path) == original
    assert not forged.exists()
    assert warnings == [
        f"the server refused generation 99 of the state file {forged}; it is removed, and the bundle's generation "
        "1 was used"
    ]
    files.call(server)
    assert server.shown == [99, 1, 1]  # once


def test_when_the_bundle_is_refused_too_the_state_is_kept_and_the_refusal_reported(
    tmp_path: Path, warnings: list[str]
) -> None:
    path, original, files = setup(tmp_path, warnings)
    state = plant(files, generation=2)
    server = Server()  # a disabled client: every generation refused
    with pytest.raises(CallError) as refused:
        files.call(server)
    assert (refused.value.status, server.shown) == (401, [2, 1])
    assert state.exists()
    assert Bundle.load(path) == original
    assert warnings == []


def test_any_other_failure_with_the_state_is_not_a_reason_to_drop_it(tmp_path: Path, warnings: list[str]) -> None:
    _, _, files = setup(tmp_path, warnings)
    state = plant(files, generation=2)
    shown: list[int] = []

    def unavailable(bundle: Bundle) -> dict[str, Any]:
        shown.append(bundle.generation)
        raise CallError(503, {"error": "unavailable", "message": "m"})

    with pytest.raises(CallError):
        files.call(unavailable)
    assert (shown, state.exists()) == ([2], True)


def test_a_state_the_server_accepted_is_migrated_into_a_writable_bundle(tmp_path: Path, warnings: list[str]) -> None:
    path, _, files = setup(tmp_path, warnings)
    state = plant(files, generation=2)
    entropy = Bundle.parse(state.read_bytes(), state).entropy
    files.call(Server(2))
    assert (Bundle.load(path).generation, Bundle.load(path).entropy, state.exists()) == (2, entropy, False)
    assert warnings == []


def test_get_with_a_state_dir_that_cannot_be_used_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = setup(tmp_path, [])
    monkeypatch.setattr(autoid, "_request", lambda *_a, **_k: {"secret": {"value": "v"}})
    argv = ["autoid", "get", "--bundle", str(path), "--secret-id", "s", "--state-dir", "/dev/null/x"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().err.splitlines() == [
        "credport: warning: the state directory /dev/null/x cannot be used (Not a directory); no state file read"
    ]


@pytest.mark.parametrize("kind", ["directory", "fifo", "char-device"])
def test_a_bundle_that_is_not_a_regular_file_is_a_usage_error_and_never_blocks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    target = tmp_path / "bundle"
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target, 0o600)  # a blocking open would wait for a writer for ever
    else:
        target = Path("/dev/zero")
    started = time.monotonic()
    assert cli.main(["autoid", "get", "--bundle", str(target), "--secret-id", "s"]) == 2
    assert time.monotonic() - started < 5
    assert capsys.readouterr().err.splitlines() == [f"credport: {target} is not a regular file"]
    with pytest.raises(BundleError, match="not a regular file"):
        Bundle.load(target)


def test_the_state_is_read_through_no_symlinked_name_and_written_with_no_temporary_left(
    tmp_path: Path, warnings: list[str]
) -> None:
    path, _, files = setup(tmp_path, warnings)
    path.parent.chmod(0o500)
    try:
        save(files, news(2, os.urandom(ENTROPY_BYTES)))
    finally:
        path.parent.chmod(0o700)
    state = files.state_path("c-1")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert not state.is_symlink()
    assert [p.name for p in state.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert Bundle.load(state).server_key().kid == KEY.kid


@pytest.fixture
def warnings() -> list[str]:
    return []


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CREDPORT_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)


# The path to the state directory, not only its last component ------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user (uid 65534) needs root")


def read_only_bundle(files: BundleFiles) -> None:
    files.bundle.chmod(0o400)  # the operator's word, for root too: the generation must go to the state directory


@needs_root
def test_a_state_dir_that_is_another_users_symlink_in_a_sticky_dir_is_refused(
    tmp_path: Path, warnings: list[str]
) -> None:
    # The review's repro: `ln -s /tmp/h2w/a/emptyA /tmp/h2state` by uid 65534, then --state-dir /tmp/h2state.
    _, original, files = setup(tmp_path, warnings)
    shared, chosen = tmp_path / "tmp", tmp_path / "chosen"
    shared.mkdir()
    shared.chmod(0o1777)
    chosen.mkdir(mode=0o700)
    link = shared / "h2state"
    link.symlink_to(chosen)
    os.lchown(link, 65534, 65534)
    with pytest.raises(Untrusted, match=re.escape(f"{link} is a symbolic link of uid 65534, not of this user or root")):
        PrivateDir.open(link, create=True)
    linked = BundleFiles(files.bundle, link, warn=warnings.append)
    read_only_bundle(linked)
    save(linked, news(2, os.urandom(ENTROPY_BYTES)))
    assert list(chosen.iterdir()) == []  # nothing saved where the link leads, not even a lock
    assert Bundle.load(files.bundle) == original
    assert f"nor write the state directory {link} ({link} is a symbolic link of uid 65534" in warnings[-1]
    os.lchown(link, 0, 0)  # the same symlink of our own (or root's) is fine
    with PrivateDir.open(link, create=True) as directory:
        assert directory.path == link


def test_a_state_dir_under_a_directory_others_can_write_is_refused(tmp_path: Path, warnings: list[str]) -> None:
    # Whoever can write an ancestor can swap our 0700 `st` for a symlink to anywhere between our check and our use.
    _, _, files = setup(tmp_path, warnings)
    shared = tmp_path / "shared"
    (shared / "st").mkdir(mode=0o700, parents=True)
    shared.chmod(0o777)
    reason = f"{shared} is writable by others (mode 0777), so {shared / 'st'} could be swapped"
    for create in (False, True):
        with pytest.raises(Untrusted, match=re.escape(reason) + "$"):
            PrivateDir.open(shared / "st", create=create)
    under = BundleFiles(files.bundle, shared / "st", warn=warnings.append)
    plant(under)
    assert under.load().state is None
    assert warnings == [f"the state directory {shared / 'st'} cannot be used ({reason}); no state file read"]
    shared.chmod(0o755)
    assert under.load().state is not None  # the same directory, once nobody else can write its parent


@needs_root
@pytest.mark.parametrize("kind", ["sticky-with-their-child", "owned-by-them", "their-symlink-deeper"])
def test_any_component_another_user_could_change_is_refused(tmp_path: Path, kind: str) -> None:
    top = tmp_path / "top"
    top.mkdir(mode=0o755)
    if kind == "sticky-with-their-child":  # sticky protects only the names that are ours (or root's)
        top.chmod(0o1777)
        (top / "mid").mkdir(mode=0o755)
        os.chown(top / "mid", 65534, 65534)
        reason = f"{top / 'mid'} belongs to uid 65534 in {top}, which others can write (mode 1777)"
    elif kind == "owned-by-them":  # its owner may rename anything in it, whatever the mode
        (top / "mid").mkdir(mode=0o755)
        os.chown(top / "mid", 65534, 65534)
        reason = f"{top / 'mid'} belongs to uid 65534, not to this user or root"
    else:  # a symlink of ours leading to one of theirs: every symlink on the way counts
        (tmp_path / "real").mkdir(mode=0o755)
        (tmp_path / "real" / "mid").symlink_to(tmp_path / "elsewhere")
        os.lchown(tmp_path / "real" / "mid", 65534, 65534)
        top.rmdir()
        top.symlink_to(tmp_path / "real")
        reason = f"{tmp_path / 'real' / 'mid'} is a symbolic link of uid 65534, not of this user or root"
    (tmp_path / "elsewhere" / "st").mkdir(mode=0o700, parents=True)
    if kind != "their-symlink-deeper":
        (top / "mid" / "st").mkdir(mode=0o700)
    with pytest.raises(Untrusted, match=re.escape(reason) + "$"):
        PrivateDir.open(top / "mid" / "st", create=False)


@pytest.mark.parametrize("kind", ["another-user", "open-to-others", "symlink", "file"])
def test_a_squatted_private_dir_in_a_sticky_one_falls_back_to_the_default_and_the_generation_is_kept(
    tmp_path: Path, warnings: list[str], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # The review's repro: another user pre-creates /tmp/credport-<our uid> 0777; the generation must not be lost.
    if kind == "another-user" and os.geteuid() != 0:
        pytest.skip("giving a directory to another user (uid 65534) needs root")
    _, _, files = setup(tmp_path, warnings)
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    squatted = shared / f"credport-{os.geteuid()}"
    if kind == "symlink":
        squatted.symlink_to(tmp_path / "theirs")
        reason = "is not a directory (a symbolic link or a file)"
    elif kind == "file":
        squatted.write_text("")
        reason = "is not a directory (a symbolic link or a file)"
    else:
        squatted.mkdir()
        squatted.chmod(0o777)
        if kind == "another-user":
            os.chown(squatted, 65534, 65534)
            reason = f"belongs to uid 65534, not to this user (uid {os.geteuid()})"
        else:
            reason = "is open to others (mode 0777)"
    monkeypatch.setenv("CREDPORT_STATE_DIR", str(shared))  # the squatted one: the fallback never goes back to it
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    squatting = BundleFiles(files.bundle, shared, warn=warnings.append)
    read_only_bundle(squatting)
    save(squatting, news(2, os.urandom(ENTROPY_BYTES)))
    fallback = tmp_path / "xdg" / "credport"
    state = fallback / files.state_path("c-1").name
    assert warnings == [
        f"the state directory {squatted} {reason}, made by another user; using {fallback} instead",
        f"cannot rewrite {files.bundle} (the file is read-only); saved generation 2 to {state}",
    ]
    assert squatting.state_path("c-1") == state
    assert presented(squatting).generation == 2  # kept, and presented by every later call
    assert len(warnings) == 2  # said once per call, however often the directory is opened


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_filesystem_that_cannot_lock_is_said_once_and_the_call_goes_on(
    tmp_path: Path, warnings: list[str], monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    path, _, files = setup(tmp_path, warnings)
    tried: list[int] = []

    def no_locks(fd: int, operation: int) -> None:
        tried.append(operation)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(autoid_state.fcntl, "flock", no_locks)
    newer = os.urandom(ENTROPY_BYTES)
    assert save(files, news(2, newer)) == {"secret": {"value": "v"}}
    assert presented(files).generation == 2
    assert (Bundle.load(path).generation, Bundle.load(path).entropy, len(tried)) == (2, newer, 2)
    assert warnings == [
        f"cannot lock {path} ({os.strerror(code)}): concurrent calls are not serialised on this filesystem"
    ]


def test_a_hard_linked_bundle_is_not_replaced_and_every_link_reads_the_same_state(
    tmp_path: Path, warnings: list[str]
) -> None:
    # A rename would give this path a new file and leave link.json on the old generation, silently.
    path, original, files = setup(tmp_path, warnings)
    link = tmp_path / "link.json"
    os.link(path, link)
    inode = path.stat().st_ino
    save(files, news(2, os.urandom(ENTROPY_BYTES)))
    assert (path.stat().st_ino, path.stat().st_nlink, Bundle.load(link)) == (inode, 2, original)
    state = files.state_path("c-1")
    assert warnings == [
        f"cannot rewrite {path} (it has 1 other hard link(s), which a rewrite would leave on the old generation; "
        "calls through them read this state file too when they use the same state directory, else they present "
        f"the old generation, accepted only until the grace period ends); saved generation 2 to {state}"
    ]
    through_link = BundleFiles(link, tmp_path / "state", warn=warnings.append)
    assert through_link.state_path("c-1") == state
    assert (presented(files).generation, presented(through_link).generation) == (2, 2)
