"""The README block parser (tests/support/readme_blocks.py): markers, unmarked blocks, line numbers, and the
script's attribution of a failure to its block, run through a real bash."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.readme_blocks import Block, find_failure, parse, script

TOKEN = "readme-test-0123456789abcdef"

DOC = """# Title

Prose.

<!-- readme-test: run -->
```sh
echo one
echo two
```

<!-- readme-test: skip: needs a real AWS account -->
```bash
aws sts get-caller-identity
```

```json
{"not": "a shell block"}
```
"""


def problems(text: str) -> list[tuple[int, str]]:
    return [(problem.line, problem.message) for problem in parse(text).problems]


def test_run_and_skip_markers_with_line_numbers_and_bodies() -> None:
    readme = parse(DOC)
    assert readme.problems == ()
    assert readme.blocks == (
        Block(line=6, info="sh", body="echo one\necho two", skip=None),
        Block(line=12, info="bash", body="aws sts get-caller-identity", skip="needs a real AWS account"),
    )
    assert [block.line for block in readme.run] == [6]


def test_an_unmarked_shell_block_is_a_problem_at_its_fence() -> None:
    text = "intro\n\n```shell\nmake run\n```\n"
    assert problems(text) == [(3, "a shell block with no marker: put <!-- readme-test: run --> or "
                                  "<!-- readme-test: skip: <reason> --> before it")]  # fmt: skip
    assert parse(text).blocks == ()


@pytest.mark.parametrize("info", ["sh", "bash", "shell", "Bash", "sh title=example", "SHELL"])
def test_every_shell_info_string_needs_a_marker(info: str) -> None:
    assert [line for line, _ in problems(f"```{info}\ntrue\n```\n")] == [1]


@pytest.mark.parametrize("info", ["json", "ini", "text", "python", "console-output"])
def test_other_blocks_need_no_marker(info: str) -> None:
    assert problems(f"```{info}\nrm -rf /\n```\n") == []


@pytest.mark.parametrize(
    "marker",
    ["<!-- readme-test: skip -->", "<!-- readme-test: skip: -->", "<!-- readme-test: skip:    -->"],
)
def test_a_skip_without_a_reason_is_a_problem(marker: str) -> None:
    readme = parse(f"{marker}\n```sh\ntrue\n```\n")
    assert [(p.line, p.message) for p in readme.problems] == [
        (1, "a readme-test skip needs a reason: <!-- readme-test: skip: <reason> -->")
    ]
    assert readme.blocks == ()  # neither run nor skipped


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("<!-- readme-test: maybe -->", "unknown readme-test comment 'maybe'"),
        ("<!-- readme-test: runs -->", "unknown readme-test comment 'runs'"),
        ("<!-- readme-test skip: no colon -->", "not a readme-test comment"),
        ("<!-- readme-test: run --> trailing", "not a readme-test comment"),
    ],
)
def test_a_malformed_marker_is_a_problem(marker: str, expected: str) -> None:
    readme = parse(f"{marker}\n```sh\ntrue\n```\n")
    assert len(readme.problems) == 1
    assert readme.problems[0].line == 1
    assert readme.problems[0].message.startswith(expected)
    assert readme.blocks == ()


def test_a_marker_must_be_on_the_line_right_before_the_fence() -> None:
    text = "<!-- readme-test: run -->\n\n```sh\ntrue\n```\n"
    assert [line for line, _ in problems(text)] == [1, 3]  # the stray marker, and the block left unmarked


def test_a_marker_before_a_non_shell_block_or_at_the_end_is_a_problem() -> None:
    assert problems("<!-- readme-test: run -->\n```json\n{}\n```\n") == [
        (1, "a readme-test comment before a json block")
    ]
    assert problems("text\n<!-- readme-test: skip: why -->\n") == [
        (2, "a readme-test comment must be right before a shell fence")
    ]


def test_a_fence_without_info_and_an_unclosed_fence_are_problems() -> None:
    assert problems("```\nmake run\n```\n") == [
        (1, "a fence with no info string: label it sh (run or skip it) or text")
    ]
    assert problems("<!-- readme-test: run -->\n```sh\ntrue\n") == [(2, "a fenced block that is never closed")]


def test_fenced_content_is_not_markup() -> None:
    # A marker or a shorter fence inside a block is content; the block closes on a fence at least as long.
    text = (
        "````markdown\n<!-- readme-test: run -->\n```sh\nfalse\n```\n````\n"
        "<!-- readme-test: run -->\n~~~sh\ntrue\n~~~\n"
    )
    readme = parse(text)
    assert readme.problems == ()
    assert readme.blocks == (Block(line=8, info="sh", body="true", skip=None),)


def test_a_block_in_a_list_item_loses_its_indentation() -> None:
    text = "- item:\n\n  <!-- readme-test: run -->\n  ```sh\n  echo a\n    echo b\n  ```\n"
    assert parse(text).blocks == (Block(line=4, info="sh", body="echo a\n  echo b", skip=None),)


def test_prose_mentioning_the_marker_is_not_a_marker() -> None:
    assert problems("Mark blocks with `<!-- readme-test: skip: <reason> -->`.\n") == []


def run(blocks: tuple[Block, ...], tmp_path: Path) -> tuple[str, int]:
    path = tmp_path / "script.sh"
    path.write_text(script(blocks, TOKEN))
    done = subprocess.run(["bash", str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=30, check=False)
    return done.stdout + done.stderr, done.returncode


def test_blocks_share_one_shell_and_a_clean_run_has_no_failure(tmp_path: Path) -> None:
    readme = parse(
        "<!-- readme-test: run -->\n```sh\nexport GREETING=hello\ncd_target=$PWD\n```\n"
        '<!-- readme-test: run -->\n```sh\n[ "$GREETING" = hello ]\necho "$GREETING" > out.txt\n```\n'
    )
    output, code = run(readme.run, tmp_path)
    assert code == 0
    assert find_failure(readme.run, output, TOKEN, code) is None
    assert (tmp_path / "out.txt").read_text() == "hello\n"


def test_a_failure_names_its_block_its_line_and_shows_only_its_output(tmp_path: Path) -> None:
    text = (
        "<!-- readme-test: run -->\n```sh\necho first block\n```\n"  # fence at 2
        "<!-- readme-test: run -->\n```sh\necho second block\nls /no/such/path\necho never\n```\n"  # fence at 6
        "<!-- readme-test: run -->\n```sh\necho third block\n```\n"
    )
    readme = parse(text)
    output, code = run(readme.run, tmp_path)
    failure = find_failure(readme.run, output, TOKEN, code)
    assert failure is not None
    assert failure.block == readme.run[1]
    assert failure.readme_line == 8  # `ls /no/such/path`
    assert failure.status == code == 2
    assert "second block" in failure.output
    assert "/no/such/path" in failure.output
    assert "first block" not in failure.output
    assert "never" not in failure.output
    assert "third block" not in output
    assert str(failure).startswith("block at README.md line 6, command near line 8 exited 2; its output:")


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("true\nfalse | cat", 4),  # pipefail
        ('true\necho "$UNSET_VARIABLE_IN_README"', 4),  # nounset: no ERR trap, bash's own message names the line
        ("exit 0", None),  # an early exit: the script never reached its end
    ],
)
def test_the_shell_is_strict_and_an_unfinished_script_fails(body: str, line: int | None, tmp_path: Path) -> None:
    readme = parse(f"<!-- readme-test: run -->\n```sh\n{body}\n```\n<!-- readme-test: run -->\n```sh\ntrue\n```\n")
    output, code = run(readme.run, tmp_path)
    failure = find_failure(readme.run, output, TOKEN, code)
    assert failure is not None
    assert failure.block == readme.run[0]
    assert failure.readme_line == line


def test_a_timeout_names_the_block_that_was_running() -> None:
    blocks = parse("<!-- readme-test: run -->\n```sh\nsleep 1000\n```\n").run
    failure = find_failure(blocks, f"{TOKEN} BEGIN 2\npartial output\n", TOKEN, None)
    assert failure is not None
    assert failure.block == blocks[0]
    assert failure.status is None
    assert str(failure) == "block at README.md line 2 did not finish; its output:\npartial output"
