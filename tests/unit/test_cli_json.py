"""Output that fits shell use: every command a script would parse offers JSON on standard output (``--json``, or
``--format json`` where the command already has a format choice)."""

from __future__ import annotations

import argparse

import pytest

from client import admin, cli
from tests.unit.test_cli_help import parser_at, subcommands

# Leaf commands whose standard output is not a result to parse, each with its reason.
NOT_PARSED = {
    ("credport", "autoid", "serve"): "a long-running server: prints the two export lines for the shell to source",
}
COMMANDS = {"credport": cli.build_parser, "credport-admin": admin.build_parser}
LEAVES = [
    (prog, path)
    for prog, build in COMMANDS.items()
    for path in subcommands(build())
    if path and not any(isinstance(a, argparse._SubParsersAction) for a in parser_at(build(), path)._actions)
]


@pytest.mark.parametrize(("prog", "path"), LEAVES, ids=[" ".join((p, *c)) for p, c in LEAVES])
def test_every_command_a_script_parses_offers_json(prog: str, path: tuple[str, ...]) -> None:
    if (prog, *path) in NOT_PARSED:
        pytest.skip(NOT_PARSED[(prog, *path)])
    actions = {o: a for a in parser_at(COMMANDS[prog](), path)._actions for o in a.option_strings}
    has_format_json = "--format" in actions and "json" in (actions["--format"].choices or ())
    assert "--json" in actions or has_format_json, f"{prog} {' '.join(path)} has no JSON output"


def test_the_leaves_are_found() -> None:
    # The walk must reach the real commands, or the test above would pass on nothing.
    assert ("credport", ("token",)) in LEAVES
    assert ("credport-admin", ("autoid", "enroll")) in LEAVES
    assert len(LEAVES) >= 15
