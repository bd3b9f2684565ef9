"""A state file is a claim, not a fact: whose files are read, and why a state can never make the bundle worse.

Another user is played two ways: ``os.chown`` to uid 65534 where the tests run as root (skipped otherwise, for that
case only), and a patched ``os.geteuid`` (runs everywhere), which makes our own files look like someone else's.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib.autoid.protocol import ENTROPY_BYTES
from client import autoid, cli
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
