"""``python -m local up`` before and around the stack: usage checks (before anything binds), the help's defaults, the
banner's commands, and a failed start as one line.

The stack itself is stood in for (``_new_stack``): these tests are about the command line, not the stack.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from local import __main__ as cli
from local.banner import DEFAULT_STATE_DIR, REPO_ROOT, banner, local_command
from local.developer import Developer
from local.stack import StackInfo


@pytest.fixture(autouse=True)
def _signal_handlers() -> Iterator[None]:
    """``up`` installs SIGINT/SIGTERM handlers: pytest's come back after each test."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class _FakeStack:
    def __init__(self, failure: BaseException) -> None:
        self.failure = failure
        self.stopped = False

    def start(self) -> StackInfo:
        raise self.failure

    def stop(self) -> None:
        self.stopped = True

    def abandon(self) -> None:
        pass


@pytest.fixture
def no_stack(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """``up`` past its usage checks records its options instead of starting anything."""
    started: list[argparse.Namespace] = []

    def record(args: argparse.Namespace) -> int:
        started.append(args)
        return 0

    monkeypatch.setattr(cli, "_up", record)
    return started


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "127.0.0.2", "::1", "example.com", ""])  # noqa: S104 (refused)
def test_a_host_that_is_no_served_loopback_address_is_refused_before_anything_starts(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_stack: list[argparse.Namespace]
) -> None:
    state_dir = tmp_path / "state"
    assert cli.main(["up", "--host", host, "--state-dir", str(state_dir)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m local: --host must be a loopback address (127.0.0.1 or localhost): the stack's issuer is plain"
        f" http, which credport accepts on loopback only; not {host!r}"
    ]
    assert no_stack == []
    assert not state_dir.exists()


@pytest.mark.parametrize(
    ("given", "used"), [("127.0.0.1", "127.0.0.1"), ("LocalHost", "localhost"), (" 127.0.0.1", "127.0.0.1")]
)
def test_loopback_hosts_are_accepted_as_the_issuer_spells_them(
    given: str, used: str, no_stack: list[argparse.Namespace]
) -> None:
    assert cli.main(["up", "--host", given]) == 0
    assert no_stack[0].host == used


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CREDPORT_LOCAL_AWS_PORT", "abc", "$CREDPORT_LOCAL_AWS_PORT (the --aws-port default): 'abc' is not a port"),
        (
            "CREDPORT_LOCAL_API_PORT",
            "70000",
            "$CREDPORT_LOCAL_API_PORT (the --api-port default): '70000' is not a port",
        ),
        ("CREDPORT_TOKEN_SIGNER", "hsm", "$CREDPORT_TOKEN_SIGNER is 'hsm': the --token-signer default must be one of"),
    ],
)
def test_a_bad_default_from_the_environment_is_a_usage_error_of_up_naming_the_variable(
    variable: str,
    value: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_stack: list[argparse.Namespace],
) -> None:
    monkeypatch.setenv(variable, value)
    assert cli.main(["up"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"python -m local: {message}")
    assert no_stack == []


def test_a_bad_port_variable_does_not_break_the_other_commands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDPORT_LOCAL_AWS_PORT", "abc")
    assert cli.main(["status", "--state-dir", str(tmp_path)]) == 4  # no stack there: the usual answer
    assert "no local stack is running" in capsys.readouterr().err


def test_defaults_come_from_the_environment_and_options_override_them(
    monkeypatch: pytest.MonkeyPatch, no_stack: list[argparse.Namespace]
) -> None:
    monkeypatch.setenv("CREDPORT_LOCAL_AWS_PORT", "4600")
    monkeypatch.delenv("CREDPORT_LOCAL_API_PORT", raising=False)
    monkeypatch.setenv("CREDPORT_TOKEN_SIGNER", "envelope")
    assert cli.main(["up", "--api-port", "0"]) == 0
    assert cli.main(["up", "--aws-port", "0", "--token-signer", "kms"]) == 0
    first, second = no_stack
    assert (first.aws_port, first.api_port, first.token_signer) == (4600, 0, "envelope")
    assert (second.aws_port, second.api_port, second.token_signer) == (0, 8000, "kms")


def test_a_usage_error_of_argparse_is_one_line_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["up", "--aws-port", "x"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m local: argument --aws-port: 'x' is not a port (0-65535; 0: any free port)"
        " (see python -m local up --help)"
    ]


@pytest.mark.parametrize("command", [["up", "--help"], ["--help"]])
def test_the_help_of_up_shows_every_default(command: list[str]) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "local", *command], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(help_text.split())
    options = [
        "--host",
        "--aws-port",
        "--api-port",
        "--prefix",
        "--region",
        "--state-dir",
        "--ready-file",
        "--plugin",
        "--retry-delay",
        "--quiet",
        "--token-signer",
        "--organization",
    ]
    for option, following in zip(options, [*options[1:], "exit codes:"], strict=True):
        described = flat.split(f" {option} ", 1)[1].split(f" {following}", 1)[0]
        assert "(default: " in described or "; default: " in described, (option, described)
    assert "(default: 127.0.0.1)" in flat


def _info(state_dir: Path) -> StackInfo:
    developer = Developer(
        user_arn="arn:aws:iam::123456789012:user/credport-developer",
        role_arn="arn:aws:iam::123456789012:role/credport-local-workload",
        config_file=state_dir / "aws" / "config",
        credentials_file=state_dir / "aws" / "credentials",
    )
    return StackInfo(
        api_url="http://127.0.0.1:48000",
        aws_endpoint="http://127.0.0.1:44566",
        region="us-east-1",
        account_id="123456789012",
        prefix="credport-dev",
        app_env={},
        developer=developer,
        schedules=(),
        rotations=(),
    )


def test_the_banner_names_a_state_dir_that_is_not_the_default_in_every_local_command(tmp_path: Path) -> None:
    state_dir = tmp_path / "it's a dir"
    text = banner(_info(state_dir), state_dir)
    (eval_line,) = [line for line in text.splitlines() if "eval" in line]
    inner = eval_line.split('eval "$(', 1)[1].split(')"', 1)[0]
    assert shlex.split(inner) == [".venv/bin/python", "-m", "local", "env", "--state-dir", str(state_dir)]
    (notifications,) = [line for line in text.splitlines() if " local notifications" in line]
    assert shlex.split(notifications.split("(")[0]) == [
        *[".venv/bin/python", "-m", "local", "notifications"],
        *["--state-dir", str(state_dir)],
    ]
    (exports,) = [line.strip() for line in text.splitlines() if line.strip().startswith("export ")]
    done = subprocess.run(
        ["bash", "-c", f'{exports} && printf "%s\\n" "$AWS_CONFIG_FILE" "$AWS_PROFILE"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [str(state_dir / "aws" / "config"), "credport-local"]


def test_the_default_state_dir_needs_no_option() -> None:
    assert local_command(DEFAULT_STATE_DIR, "env") == ".venv/bin/python -m local env"
    relative = local_command(Path("elsewhere"), "env")
    assert shlex.split(relative)[-2:] == ["--state-dir", str(Path("elsewhere").resolve())]  # any shell's cwd


@pytest.mark.parametrize("debug", ["", "1"])
def test_a_start_that_fails_unexpectedly_is_one_line_and_exit_1(
    debug: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDPORT_DEBUG", debug)
    stacks: list[_FakeStack] = []

    def failing(_args: argparse.Namespace) -> _FakeStack:
        stacks.append(_FakeStack(RuntimeError("template said no\n  at line 3")))
        return stacks[-1]

    monkeypatch.setattr(cli, "_new_stack", failing)
    assert cli.main(["up", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "python -m local: could not start: RuntimeError: template said no at line 3"
    assert ("Traceback" in err) is (debug == "1")
    assert stacks[0].stopped  # what started was stopped


def test_a_failure_before_the_stack_exists_is_one_line_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_args: argparse.Namespace) -> _FakeStack:
        raise ImportError("No module named 'moto'")

    monkeypatch.setattr(cli, "_new_stack", broken)
    monkeypatch.delenv("CREDPORT_DEBUG", raising=False)
    assert cli.main(["up"]) == 1
    assert capsys.readouterr().err == "python -m local: could not start: ImportError: No module named 'moto'\n"
