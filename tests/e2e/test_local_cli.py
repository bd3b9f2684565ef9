"""``python -m local`` beside a running stack: a second ``up`` never harms the first, signals always stop a start,
failed runs say why with an exit code, SNS notifications (a transfer's link) are readable, ``env`` exports the API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.launcher import REPO_ROOT, child_env, up_command
from tests.e2e.conftest import RunningStack, launch_e2e

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack on fixed ports (as `make run` starts one), so a second `up` can ask for the same ones."""
    api, aws = _free_port(), _free_port()
    running = launch_e2e(tmp_path_factory.mktemp("fixed"), "--quiet", "--api-port", str(api), "--aws-port", str(aws))
    yield running
    assert running.stop() == 0, running.log_text()


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local", *args],
        cwd=REPO_ROOT,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


def _still_serving(stack: RunningStack, state_before: str) -> None:
    assert requests.get(stack.api + "/health", timeout=5).status_code == 200
    assert (stack.state_dir / "stack.json").read_text() == state_before
    status = _cli("status", "--state-dir", str(stack.state_dir))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["pid"] == stack.process.pid


def test_a_second_stack_on_the_same_ports_is_refused_within_seconds(fixed: RunningStack, tmp_path: Path) -> None:
    before = (fixed.state_dir / "stack.json").read_text()
    api, aws = _port(fixed.api), _port(fixed.info["aws_endpoint"])
    started = time.monotonic()
    result = _cli("up", "--state-dir", str(tmp_path), "--api-port", api, "--aws-port", aws, timeout=60)
    assert time.monotonic() - started < 10
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    holder = f"(another credport local stack, pid {fixed.process.pid}, state dir {fixed.state_dir}?"
    assert line.startswith(f"python -m local: port {api} (API) on 127.0.0.1 is in use {holder}"), line
    assert f"port {aws} (embedded AWS) on 127.0.0.1 is in use" in line
    assert not (tmp_path / "stack.json").exists()
    _still_serving(fixed, before)


def test_a_second_stack_in_the_same_state_dir_is_refused_before_touching_it(fixed: RunningStack) -> None:
    before = (fixed.state_dir / "stack.json").read_text()
    credentials = (fixed.state_dir / "aws" / "credentials").read_text()
    result = _cli("up", "--state-dir", str(fixed.state_dir), "--api-port", "0", "--aws-port", "0", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"python -m local: a local stack is already running from state dir {fixed.state_dir}: "
        f"pid {fixed.process.pid}, API {fixed.api}; to run a second one, give it its own state dir and ports"
    )
    assert (fixed.state_dir / "aws" / "credentials").read_text() == credentials  # the developer's key unchanged
    _still_serving(fixed, before)


# Two moments of the start: the state dir just claimed (the app is being imported and provisioned), and the
# developer's profile written (provisioned; the API not yet serving).
@pytest.mark.parametrize(
    ("sig", "code", "marker", "then"),
    [(signal.SIGTERM, 143, "stack.lock", 1.0), (signal.SIGINT, 130, "aws/credentials", 0.0)],
)
def test_a_signal_during_start_up_stops_it_within_seconds(
    sig: signal.Signals, code: int, marker: str, then: float, tmp_path: Path
) -> None:
    log = tmp_path / "up.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            up_command(tmp_path), cwd=REPO_ROOT, env=child_env(), stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / marker).exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        time.sleep(then)
        assert not (tmp_path / "stack.json").exists()  # still starting
        process.send_signal(sig)
        assert process.wait(timeout=10) == code, log.read_text()
    finally:
        process.kill()
        process.wait()
    text = log.read_text()
    assert f"python -m local: {sig.name} while starting; stopping" in text
    assert "Traceback" not in text
    assert not (tmp_path / "stack.json").exists()


def test_trigger_of_an_unknown_schedule_lists_the_known_ones(fixed: RunningStack) -> None:
    result = _cli("trigger", "no_such_schedule", env=fixed.env())
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("python -m local: unknown schedule 'no_such_schedule'; known: ")
    assert "e2e_tick" in line
    assert "rotate_signing_keys" in line


def test_a_failed_rotation_exits_1_with_its_step_and_reason_and_the_next_resumes(fixed: RunningStack) -> None:
    # A real failure: an AWSPENDING version that is no session key (as a half-done rotation might leave). The next
    # rotation resumes that version, and the rotation function's testSecret step refuses it.
    secrets = fixed.client("secretsmanager")
    name = f"{fixed.info['prefix']}/session-key"
    token = str(uuid.uuid4())
    secrets.put_secret_value(
        SecretId=name, SecretString="not-a-session-key", VersionStages=["AWSPENDING"], ClientRequestToken=token
    )
    failed = _cli("rotate", name, env=fixed.env())
    assert failed.returncode == 1, failed.stdout + failed.stderr
    answer = json.loads(failed.stdout)
    assert answer["step"] == "testSecret"
    assert answer["token"] == token
    assert answer["reason"]["type"] == "InvalidKeyMaterial"
    assert failed.stderr.splitlines() == [
        f"python -m local: rotate {name} failed: InvalidKeyMaterial: {answer['reason']['message']}"
        " (at step testSecret; the next rotate resumes it)"
    ]
    assert "not-a-session-key" not in failed.stdout + failed.stderr
    # Repaired (the pending label taken off), the rotation succeeds again.
    secrets.update_secret_version_stage(SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    repaired = _cli("rotate", name, env=fixed.env())
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert json.loads(repaired.stdout)["resumed"] is False


def test_rotate_of_an_unknown_secret_lists_the_known_ones(fixed: RunningStack) -> None:
    result = _cli("rotate", "nope/secret", env=fixed.env())
    assert result.returncode == 2
    assert result.stderr.startswith("python -m local: unknown secret 'nope/secret'; known: ")
    assert f"{fixed.info['prefix']}/session-key" in result.stderr


@pytest.mark.parametrize("command", [["status"], ["trigger", "e2e_tick"], ["rotate", "x"], ["notifications"], ["env"]])
def test_without_a_stack_every_command_says_where_it_looked_and_exits_4(command: list[str], tmp_path: Path) -> None:
    result = _cli(*command, "--state-dir", str(tmp_path))
    assert result.returncode == 4
    assert result.stderr.splitlines() == [
        f"python -m local: no local stack is running from state dir {tmp_path} ({tmp_path}/stack.json is missing):"
        " start one with `make run`"
    ]


def test_a_stack_that_is_gone_is_named_with_exit_4(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    port = _free_port()  # nothing listens there
    state = {"api_url": f"http://127.0.0.1:{port}", "pid": int(dead.stdout), "schedules": []}
    (tmp_path / "stack.json").write_text(json.dumps(state))
    result = _cli("status", "--state-dir", str(tmp_path))
    assert result.returncode == 4
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"python -m local: the local stack of {tmp_path}/stack.json (pid {dead.stdout.strip()}")
    assert "is not running" in line


def _register_client(stack: RunningStack, client_id: str) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    stack.client("s3").put_object(
        Bucket=stack.info["app_env"]["CREDPORT_TRANSFER_BUCKET"], Key=f"clients/{client_id}/public.pem", Body=public
    )
    return key


def test_notifications_show_a_transfer_link_that_downloads(fixed: RunningStack) -> None:
    client_id = f"client-{uuid.uuid4().hex[:8]}"
    _register_client(fixed, client_id)  # the send pipeline: a secret version, sealed, linked, notified
    topic = fixed.info["app_env"]["CREDPORT_NOTIFY_TOPIC_ARN"]
    deadline, mine = time.monotonic() + 30, list[dict[str, Any]]()
    while not mine and time.monotonic() < deadline:
        listed = _cli("notifications", "--json", env=fixed.env())
        assert listed.returncode == 0, listed.stderr
        mine = [n for n in json.loads(listed.stdout) if client_id in n["message"]]
        time.sleep(0.3)
    (note,) = mine
    assert set(note) == {"topic_arn", "subject", "message", "timestamp", "links"}
    assert note["topic_arn"] == topic
    assert note["timestamp"].endswith("Z")
    link = json.loads(note["message"])["link"]
    assert note["links"] == [link]
    assert link.startswith(fixed.info["aws_endpoint"] + "/")  # presigned against the embedded AWS
    downloaded = requests.get(link, timeout=10)
    assert downloaded.status_code == 200
    assert downloaded.content.count(b".") == 4  # a compact JWE: the secret sealed to the client's key
    # --links: the newest last, so `... --links | tail -1` is this link; --topic narrows to one topic.
    links = _cli("notifications", "--links", "--topic", topic.rsplit(":", 1)[1], env=fixed.env())
    assert links.stdout.splitlines()[-1] == link
    human = _cli("notifications", "--topic", topic, env=fixed.env())
    assert f"  LINK: {link}" in human.stdout.splitlines()
    other = json.loads(_cli("notifications", "--json", "--topic", "credport-dev-alarms", env=fixed.env()).stdout)
    assert all(n["topic_arn"].endswith(":credport-dev-alarms") for n in other)


def test_notifications_of_an_unknown_topic_list_the_topics(fixed: RunningStack) -> None:
    result = _cli("notifications", "--topic", "no-such-topic", env=fixed.env())
    assert result.returncode == 2
    assert result.stderr.startswith("python -m local: unknown topic 'no-such-topic'; known: ")
    assert "credport-dev-notify" in result.stderr


def test_env_exports_the_endpoint_and_issuer_for_eval(fixed: RunningStack) -> None:
    script = 'eval "$(python -m local env)" && echo "$CREDPORT_ENDPOINT $CREDPORT_ISSUER $CREDPORT_LOCAL_AWS_ENDPOINT"'
    env = {**child_env(), "CREDPORT_LOCAL_STATE_DIR": str(fixed.state_dir), "PATH": _venv_path()}
    result = subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [fixed.api, fixed.api, fixed.info["aws_endpoint"]]
    exports = _cli("env", "--state-dir", str(fixed.state_dir)).stdout.splitlines()
    profile = [f"export {k}={v}" for k, v in fixed.info["aws_exports"].items()]  # the banner's lines, unchanged
    assert exports[: len(profile)] == profile


def _venv_path() -> str:
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


# Ctrl-C at any moment of the start: during the imports, the provisioning, the last steps. Before the fix a signal
# could land in a __del__ ("Exception ignored" with a traceback), get lost, and the stack came up and stopped: exit 0.
# Not earlier than 0.3 s: a signal while the interpreter itself starts (site.py, before any line of ours runs) is
# Python's own "Fatal Python error: init_import_site", which no program can handle (seen on a loaded machine at 0.05).
@pytest.mark.parametrize("after", [0.3, 0.5, 1.0, 2.0, 3.0])
def test_ctrl_c_at_any_point_of_the_start_ends_it_at_once_without_a_traceback(after: float, tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            up_command(tmp_path), cwd=REPO_ROOT, env=child_env(), stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        time.sleep(after)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()
    text = log.read_text()
    assert code in (0, 130), text
    assert "Traceback" not in text
    assert "Exception ignored" not in text
    assert not (tmp_path / "stack.json").exists()


def test_the_banner_commands_work_as_printed_for_a_state_dir_that_is_not_the_default(fixed: RunningStack) -> None:
    lines = [line.strip() for line in fixed.log_text().splitlines()]
    (exports,) = [line for line in lines if line.startswith("export AWS_")]
    (eval_line,) = [line for line in lines if line.startswith('(or: eval "$(')]
    evaluated = eval_line.removeprefix("(or: ").split(", which")[0]
    (notifications,) = [line for line in lines if " -m local notifications" in line]
    script = f'{exports} && {evaluated} && echo "$AWS_PROFILE $CREDPORT_ENDPOINT" && {notifications.split("  (")[0]}'
    result = subprocess.run(
        ["bash", "-c", script], cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"credport-local {fixed.api}"
    assert f"--state-dir {fixed.state_dir}" in evaluated
