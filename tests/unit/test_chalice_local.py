"""``python -m local chalice``: what it refuses (one line, an exit code) and the environment it execs chalice with.

``os.execve`` is stood in for, so each test sees the command and environment the process would become.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.__main__ import main
from local.chalice_local import REPO_ROOT

STATE = {
    "api_url": "http://127.0.0.1:48000",
    "region": "eu-west-1",
    "app_env": {"CREDPORT_PREFIX": "credport-dev", "CREDPORT_ISSUER": "http://127.0.0.1:48000", "CREDPORT_X": "x"},
    "aws_exports": {"AWS_CONFIG_FILE": "/s/aws/config", "AWS_SHARED_CREDENTIALS_FILE": "/s/aws/credentials"},
}


@pytest.fixture
def embedded_aws() -> Iterator[str]:
    """A listening socket standing in for the stack's embedded AWS (only its reachability is checked)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], dict[str, str]]]:
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((path, list(argv), dict(env))))
    monkeypatch.chdir(REPO_ROOT)  # the command changes into the repository before exec
    return calls


def write_state(state_dir: Path, **changes: Any) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "stack.json").write_text(json.dumps({**STATE, "pid": os.getpid(), **changes}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(state_dir: Path, *args: str) -> int:
    return main(["--state-dir", str(state_dir), "chalice", *args])


def test_execs_chalice_local_with_the_stacks_environment(
    tmp_path: Path,
    embedded_aws: str,
    execs: list[tuple[str, list[str], dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_state(tmp_path, aws_endpoint=embedded_aws)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-caller-s-own")  # would win over the developer profile
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("CREDPORT_TOKEN_DEFAULT_TTL", "900")  # the caller's own setting stays
    monkeypatch.setenv("CREDPORT_PREFIX", "someone-else")  # the stack's resource names win
    port = free_port()
    assert run(tmp_path, "--port", str(port), "--stage", "prod", "--no-autoreload") == 0
    ((path, argv, env),) = execs
    assert path == argv[0]
    assert Path(path).name == "chalice"
    assert argv[1:] == [
        "--project-dir",
        str(REPO_ROOT),
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--stage",
        "prod",
        "--no-autoreload",
    ]
    assert env["CREDPORT_ISSUER"] == f"http://127.0.0.1:{port}"  # chalice local's own discovery document
    assert env["CREDPORT_PREFIX"] == "credport-dev"
    assert env["CREDPORT_X"] == "x"
    assert env["CREDPORT_TOKEN_DEFAULT_TTL"] == "900"
    assert env["AWS_ENDPOINT_URL"] == embedded_aws
    assert (env["AWS_REGION"], env["AWS_DEFAULT_REGION"]) == ("eu-west-1", "eu-west-1")
    assert env["AWS_CONFIG_FILE"] == "/s/aws/config"
    assert "AWS_ACCESS_KEY_ID" not in env
    assert "AWS_PROFILE" not in env  # the stack's exports name none here: the caller's is dropped, not kept
    assert Path.cwd() == REPO_ROOT
    assert f"chalice local on http://127.0.0.1:{port}" in capsys.readouterr().out


def test_autoreload_is_chalices_default(tmp_path: Path, embedded_aws: str, execs: list[Any]) -> None:
    write_state(tmp_path, aws_endpoint=embedded_aws)
    assert run(tmp_path, "--port", str(free_port())) == 0
    argv = execs[0][1]
    assert "--no-autoreload" not in argv
    assert argv[argv.index("--stage") + 1] == "dev"


@pytest.mark.parametrize("case", ["missing", "damaged", "dead process", "aws not answering", "incomplete"])
def test_no_running_stack_is_one_line_and_exit_4(
    tmp_path: Path, embedded_aws: str, execs: list[Any], capsys: pytest.CaptureFixture[str], case: str
) -> None:
    if case == "damaged":
        (tmp_path / "stack.json").write_text('{"api_url": "http://127.0.0.1:48000", ')
    elif case == "dead process":  # a stack killed without removing its file: no process has its pid
        write_state(tmp_path, aws_endpoint=embedded_aws, pid=2**22 + 12345)
    elif case == "aws not answering":
        write_state(tmp_path, aws_endpoint=f"http://127.0.0.1:{free_port()}")
    elif case == "incomplete":
        write_state(tmp_path, aws_endpoint=embedded_aws, app_env=None)
    assert run(tmp_path) == 4
    assert capsys.readouterr().err == (
        f"python -m local: no local stack running (looked in {tmp_path}): start one with make run\n"
    )
    assert execs == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "--host must be a loopback address"),  # noqa: S104 (refused, the point)
        (["--port", "0"], "--port must be between 1 and 65535, got 0"),
        (["--port", "70000"], "--port must be between 1 and 65535, got 70000"),
        (["--stage", "staging"], "no stage 'staging' in .chalice/config.json (stages: dev, prod)"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, execs: list[Any], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m local: {message}")
    assert err.count("\n") == 1
    assert execs == []


def test_a_port_in_use_is_refused(
    tmp_path: Path, embedded_aws: str, execs: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    write_state(tmp_path, aws_endpoint=embedded_aws)
    busy = embedded_aws.rsplit(":", 1)[1]
    assert run(tmp_path, "--port", busy) == 1
    assert (
        capsys.readouterr().err == f"python -m local: port {busy} on 127.0.0.1 is in use: choose another with --port\n"
    )
    assert execs == []
