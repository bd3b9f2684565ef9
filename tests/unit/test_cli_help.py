"""Both CLIs document themselves: every subcommand's --help works and names the environment variable behind each
default; --version prints the installed version; the README's exit-code table is client/errors.Exit."""

from __future__ import annotations

import argparse
import re
import subprocess
from collections.abc import Iterator
from importlib.metadata import version

import pytest

from client import admin, cli
from client.errors import MEANINGS, Exit
from tests.conftest import REPO_ROOT

# option -> the environment variable its default comes from
ENV_DEFAULTS = {
    "--endpoint": "CREDPORT_ENDPOINT",
    "--profile": "AWS_PROFILE",
    "--region": "AWS_DEFAULT_REGION",
    "--issuer": "CREDPORT_ISSUER",
    "--token-file": "CREDPORT_SESSION_FILE",
    "--local": "CREDPORT_LOCAL_STATE_DIR",
    "--bundle": "CREDPORT_AUTOID_BUNDLE",
    "--state-dir": "CREDPORT_STATE_DIR",
}
# (command path, option) whose default is not that variable: said in the option's own help
OTHER_DEFAULTS = {
    ("autoid", "get", "--endpoint"): "the bundle's endpoint",
    ("autoid", "serve", "--endpoint"): "the bundle's endpoint",
    ("autoid", "serve", "--token-file"): "another file: the served Authorization token, in the state directory",
    ("autoid", "enroll", "--endpoint"): "with --local, the local stack's API URL; else required",
}


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from subcommands(child, (*path, name))


def parser_at(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


COMMANDS = [("credport", cli.build_parser, cli.main), ("credport-admin", admin.build_parser, admin.main)]
CASES = [(prog, main, path) for prog, build, main in COMMANDS for path in subcommands(build())]


@pytest.mark.parametrize(("prog", "main", "path"), CASES, ids=[" ".join((c[0], *c[2])) for c in CASES])
def test_every_help_works_and_names_each_defaults_variable(
    prog: str, main: object, path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    build = {p: b for p, b, _ in COMMANDS}[prog]
    options = {o for a in parser_at(build(), path)._actions for o in a.option_strings}
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])  # type: ignore[operator]
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option, variable in ENV_DEFAULTS.items():
        if option in options and (*path, option) not in OTHER_DEFAULTS:
            assert f"${variable}" in text, (option, variable)
    if not path:
        assert "exit codes:" in text
        for code in Exit:
            assert f"{int(code)} {MEANINGS[code]}" in text


@pytest.mark.parametrize("prog", ["credport", "credport-admin"])
def test_version(prog: str) -> None:
    done = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / prog), "--version"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{prog} {version('credport')}\n", "")


def test_the_readme_exit_code_table_is_the_enum() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\d+)` \| `([A-Z_]+)` \|", section, flags=re.MULTILINE))
    assert {int(code): name for code, name in rows.items()} == {int(code): code.name for code in Exit}
    assert readme.index("\n## Exit codes\n") < readme.index("\n## API errors\n")


def test_help_never_shows_a_credential_held_in_a_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--help shows what $CREDPORT_ENDPOINT holds now: a URL with a password or a presigned query is shown without
    them, and a token pasted into a variable is redacted."""
    monkeypatch.setenv("CREDPORT_ENDPOINT", "https://me:hunter2@api.example/prod?X-Amz-Signature=abc123#frag")
    monkeypatch.setenv("CREDPORT_ISSUER", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
    for argv in (["token", "--help"], ["verify", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        text = " ".join(capsys.readouterr().out.split())
        for secret in ("hunter2", "me:", "abc123", "frag", "eyJhbGciOiJSUzI1NiJ9"):
            assert secret not in text
    with pytest.raises(SystemExit):
        cli.main(["token", "--help"])
    assert "$CREDPORT_ENDPOINT, now 'https://api.example/prod'" in " ".join(capsys.readouterr().out.split())
