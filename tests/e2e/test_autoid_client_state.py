"""``credport autoid get`` with a bundle it cannot rewrite, and many ``get`` at once, against the local stack.

The read-only directory is a real one: ``chmod 0555`` for an ordinary user, and for root (whom directory permissions
do not stop) the immutable attribute (``chattr +i``), which refuses creating, renaming and removing entries to
everyone; where neither works the test is skipped with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningStack
from tests.e2e.test_autoid import _caller, _role, admin, enroll, workload_env

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
ACCOUNT = "123456789012"


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    marked = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True, check=False)
    if marked.returncode != 0:
        pytest.skip(f"running as root, and chattr +i is not available here ({marked.stderr.strip()})")
    try:
        probe = directory / "probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("running as root, and this filesystem ignores the immutable attribute")
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=False)


def get(bundle: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A workload call with the default state directory (``$HOME/.local/state/credport``)."""
    env = {k: v for k, v in workload_env(home).items() if k != "XDG_STATE_HOME"}
    return subprocess.run(
        [str(BIN / "credport"), "autoid", "get", "--bundle", str(bundle), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def generation(path: Path) -> int:
    return int(json.loads(path.read_text())["gen"])


def state_files(home: Path) -> list[Path]:
    return sorted((home / ".local" / "state" / "credport").glob("autoid-*.json"))


def working_credentials(stack: RunningStack, result: subprocess.CompletedProcess[str]) -> str:
    """The ARN the printed credentials (credential_process or json) sign as: they are real credentials."""
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    document = document.get("credentials", document)
    return _caller(
        stack,
        aws_access_key_id=document["AccessKeyId"],
        aws_secret_access_key=document["SecretAccessKey"],
        aws_session_token=document["SessionToken"],
    )


def presented_generation(result: subprocess.CompletedProcess[str]) -> int:
    """The generation the call proved: the server binds the answer's session to it (the ``autoid_gen`` claim)."""
    token = json.loads(result.stdout)["session"]["token"]
    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["autoid_gen"])


def enroll_in(stack: RunningStack, tmp_path: Path, directory: str) -> tuple[str, str, Path, Path]:
    role = _role(stack)
    client_id, enrolled = enroll(stack, tmp_path, "--role", f"arn:aws:iam::{ACCOUNT}:role/credport-dev-autoid-*")
    (tmp_path / directory).mkdir()
    bundle = tmp_path / directory / "bundle.json"
    shutil.move(enrolled, bundle)
    home = tmp_path / "home"
    home.mkdir()
    return client_id, role, bundle, home


def test_get_with_a_read_only_bundle_directory_keeps_working_through_rotations(
    stack: RunningStack, tmp_path: Path
) -> None:
    client_id, role, bundle, home = enroll_in(stack, tmp_path, "etc-credport")
    old_copy = tmp_path / "old-bundle.json"
    shutil.copy2(bundle, old_copy)
    expected = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[1]}/autoid-{client_id}"
    args = ("--role-arn", role, "--format", "json")
    with read_only(bundle.parent):
        assert admin(stack, "rotate", client_id).returncode == 0  # the server moves to generation 2

        # 1st call: presents generation 1 (in grace), gets generation 2 back, cannot rewrite the bundle.
        first = get(bundle, home, *args)
        assert working_credentials(stack, first) == expected
        (state,) = state_files(home)
        # The mode bits for a 0555 directory (for root too), EPERM for root in an immutable one.
        assert re.fullmatch(
            rf"credport: warning: cannot rewrite {re.escape(str(bundle))} \((its directory is read-only|Operation "
            rf"not permitted)\); saved generation 2 to {re.escape(str(state))}\n",
            first.stderr,
        ), first.stderr
        assert (generation(bundle), generation(state)) == (1, 2)
        assert state.stat().st_mode & 0o777 == 0o600
        assert presented_generation(first) == 1

        # 2nd call: presents generation 2 from the state file, quietly.
        second = get(bundle, home, *args)
        assert working_credentials(stack, second) == expected
        assert second.stderr == ""
        assert presented_generation(second) == 2

        # From now on only generation 2 is accepted: the 3rd call works only if it presents the newest generation.
        ended = admin(stack, "end-grace", client_id)
        assert json.loads(ended.stdout)["previous_generations"] == {}
        third = get(bundle, home, *args)
        assert working_credentials(stack, third) == expected
        assert third.stderr == ""
        assert presented_generation(third) == 2
        assert (generation(bundle), state_files(home)) == (1, [state])
        # The control: what the bundle itself holds is refused now.
        refused = get(old_copy, tmp_path / "other-home", *args)
        assert refused.returncode == 1
        assert "401" in refused.stderr
        assert json.loads(admin(stack, "show", client_id).stdout)["generation"] == 2

    # Writable again: the next call migrates the state into the bundle and removes the state file.
    assert working_credentials(stack, get(bundle, home, *args)) == expected
    assert (generation(bundle), state_files(home)) == (2, [])
    assert bundle.stat().st_mode & 0o777 == 0o600


def test_when_neither_bundle_nor_state_directory_is_writable_the_credentials_still_come(
    stack: RunningStack, tmp_path: Path
) -> None:
    client_id, role, bundle, home = enroll_in(stack, tmp_path, "etc-credport")
    state_root = home / ".local" / "state"
    state_root.mkdir(parents=True)
    assert admin(stack, "rotate", client_id).returncode == 0
    with read_only(bundle.parent), read_only(state_root):
        result = get(bundle, home, "--role-arn", role, "--format", "credential-process")
        assert working_credentials(stack, result).endswith(f"/autoid-{client_id}")
        (warning,) = result.stderr.splitlines()
        assert warning.startswith(f"credport: warning: cannot rewrite {bundle} (")
        assert "generation 2 is LOST unless one of them becomes writable" in warning
        assert "keeps using generation 1" in warning
        assert "grace period" in warning
    assert generation(bundle) == 1


@pytest.mark.parametrize("writable", [True, False], ids=["writable", "read-only"])
def test_eight_concurrent_calls_all_get_credentials_and_save_the_new_generation_once(
    stack: RunningStack, tmp_path: Path, writable: bool
) -> None:
    client_id, role, bundle, home = enroll_in(stack, tmp_path, "etc-credport")
    assert admin(stack, "rotate", client_id).returncode == 0
    env = {k: v for k, v in workload_env(home).items() if k != "XDG_STATE_HOME"}
    command = [str(BIN / "credport"), "autoid", "get", "--bundle", str(bundle), "--role-arn", role]
    with read_only(bundle.parent) if not writable else _nothing():
        processes = [
            subprocess.Popen(
                [*command, "--format", "credential-process"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        results = []
        for process in processes:
            out, err = process.communicate(timeout=180)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        arns = {working_credentials(stack, result) for result in results}
        assert len(arns) == 1
        warnings = [line for result in results for line in result.stderr.splitlines()]
        if writable:
            assert warnings == []
            assert (generation(bundle), state_files(home)) == (2, [])
        else:
            # Serialised under the lock: the first call saves generation 2, the others present it and get no news.
            (state,) = state_files(home)
            assert len(warnings) == 1
            assert warnings[0].endswith(f"saved generation 2 to {state}")
            assert (generation(bundle), generation(state)) == (1, 2)
    for path in (bundle, *state_files(home)):
        document = json.loads(path.read_text())  # a whole, valid bundle: no half-written file
        assert document["client_id"] == client_id
        assert path.stat().st_mode & 0o777 == 0o600
    shown = json.loads(admin(stack, "show", client_id).stdout)
    assert (shown["generation"], list(shown["previous_generations"])) == (2, ["1"])  # one rotation, the operator's
    assert not [p for p in bundle.parent.iterdir() if p.suffix == ".tmp"]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def test_a_state_file_planted_in_a_shared_directory_never_reaches_the_bundle(
    stack: RunningStack, tmp_path: Path
) -> None:
    """The review's repro: ``CREDPORT_STATE_DIR`` a shared sticky directory, a state file planted under the name the
    client looks for (the bundle with generation 99 and random entropy), owned by another user where we can make
    one; then the same forgery in the client's own private directory, which only the server can tell apart."""
    client_id, role, bundle, home = enroll_in(stack, tmp_path, "etc-credport")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    document = json.loads(bundle.read_text())
    forged = {**document, "gen": 99, "entropy": base64.urlsafe_b64encode(os.urandom(1 << 20)).rstrip(b"=").decode()}
    key = hashlib.sha256(os.fsencode(bundle.resolve())).hexdigest()[:16]
    name = f"autoid-{client_id}-{key}.json"
    for directory in (shared, shared / f"credport-{os.geteuid()}"):
        directory.mkdir(mode=0o700, exist_ok=True)
        (directory / name).write_text(json.dumps(forged))
        (directory / name).chmod(0o600)
    if os.geteuid() == 0:
        os.chown(shared / name, 65534, 65534)
    env = {**workload_env(home), "CREDPORT_STATE_DIR": str(shared)}
    command = [str(BIN / "credport"), "autoid", "get", "--bundle", str(bundle), "--role-arn", role]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert working_credentials(stack, result).endswith(f"/autoid-{client_id}")
    private = shared / f"credport-{os.geteuid()}" / name
    assert result.stderr == (
        f"credport: warning: the server refused generation 99 of the state file {private}; it is removed, and the "
        "bundle's generation 1 was used\n"
    )
    assert presented_generation(result) == 1
    assert (generation(bundle), private.exists(), (shared / name).exists()) == (1, False, True)
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert (again.returncode, again.stderr, generation(bundle)) == (0, "", 1)
