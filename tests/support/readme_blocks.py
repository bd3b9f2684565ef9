"""README.md's shell examples as a test reads them: every fenced ``sh``/``bash``/``shell`` block is either run or
skipped, as the HTML comment on the line right before its fence says, and the run blocks become one bash script.

    <!-- readme-test: run -->
    <!-- readme-test: skip: needs a real AWS account -->

A shell block with no such comment, a skip without a reason, a comment that is not one of the two forms or that is
not right before a shell fence, a fence with no info string and a fence never closed are *problems*: the README
test fails on each, naming its line, so a new example cannot go untested without saying why.

The script runs the blocks in README order in one ``bash`` process (``set -euo pipefail``: state carries over as
in a reader's one shell) and echoes a marker line before and after each, so a failure is attributed to its block.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "SHELL_INFOS",
    "Block",
    "Failure",
    "Problem",
    "Readme",
    "find_failure",
    "parse",
    "script",
]

SHELL_INFOS = frozenset({"sh", "bash", "shell"})
MARKER_HINT = "<!-- readme-test: run --> or <!-- readme-test: skip: <reason> -->"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*readme-test\s*:(?P<body>.*?)-->\s*$")
_MENTION = re.compile(r"^\s*<!--.*readme-test", re.IGNORECASE)  # meant as a marker, malformed
_SKIP = re.compile(r"^\s*skip\s*(?::(?P<reason>.*))?$", re.DOTALL)
# bash's own error line ("script.sh: line 9: X: unbound variable"): set -u exits without running the ERR trap.
_BASH_ERROR = re.compile(r"^\S+: line (?P<line>\d+): ")


@dataclass(frozen=True)
class Block:
    """One fenced shell block: ``line`` is the README line of its opening fence (1-based)."""

    line: int
    info: str
    body: str
    skip: str | None  # the reason it is not run; None: it is run

    @property
    def runs(self) -> bool:
        return self.skip is None

    @property
    def first_body_line(self) -> int:
        return self.line + 1


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"README.md line {self.line}: {self.message}"


@dataclass(frozen=True)
class Readme:
    blocks: tuple[Block, ...]
    problems: tuple[Problem, ...]

    @property
    def run(self) -> tuple[Block, ...]:
        return tuple(block for block in self.blocks if block.runs)


@dataclass(frozen=True)
class _Marker:
    line: int
    skip: str | None
    problem: str | None


def _marker(line_number: int, line: str) -> _Marker | None:
    """The readme-test comment on this line, if any (a malformed one is a marker carrying its problem)."""
    match = _MARKER.match(line)
    if match is None:
        if _MENTION.match(line):
            return _Marker(line_number, None, f"not a readme-test comment; write {MARKER_HINT} alone on its line")
        return None
    body = match.group("body").strip()
    if body == "run":
        return _Marker(line_number, None, None)
    skip = _SKIP.match(body)
    if skip is None:
        return _Marker(line_number, None, f"unknown readme-test comment {body!r}; write {MARKER_HINT}")
    reason = (skip.group("reason") or "").strip()
    if not reason:
        return _Marker(line_number, None, "a readme-test skip needs a reason: <!-- readme-test: skip: <reason> -->")
    return _Marker(line_number, reason, None)


def parse(text: str) -> Readme:
    """Every fenced block's shape and every shell block's marker, with the problems found on the way."""
    lines = text.splitlines()
    blocks: list[Block] = []
    problems: list[Problem] = []
    pending: _Marker | None = None  # a marker on the previous line, waiting for its fence
    index = 0
    while index < len(lines):
        line_number, line = index + 1, lines[index]
        fence = _FENCE.match(line)
        if fence is None or (fence.group("fence")[0] == "`" and "`" in fence.group("info")):
            if pending is not None:
                problems.append(Problem(pending.line, "a readme-test comment must be right before a shell fence"))
            pending = _marker(line_number, line)
            index += 1
            continue
        info = fence.group("info").strip().split(maxsplit=1)[0].lower() if fence.group("info").strip() else ""
        body_lines, index, closed = _read_fence(lines, index + 1, len(fence.group("indent")), fence.group("fence"))
        if not closed:
            problems.append(Problem(line_number, "a fenced block that is never closed"))
        if not info:
            problems.append(Problem(line_number, "a fence with no info string: label it sh (run or skip it) or text"))
        if info in SHELL_INFOS:
            if pending is None:
                problems.append(Problem(line_number, f"a {info} block with no marker: put {MARKER_HINT} before it"))
            elif pending.problem is None:
                blocks.append(Block(line_number, info, "\n".join(body_lines), pending.skip))
        elif pending is not None and pending.problem is None:
            problems.append(Problem(pending.line, f"a readme-test comment before a {info or 'unlabelled'} block"))
        if pending is not None and pending.problem is not None:
            problems.append(Problem(pending.line, pending.problem))
        pending = None
    if pending is not None:
        problems.append(Problem(pending.line, "a readme-test comment must be right before a shell fence"))
    return Readme(tuple(blocks), tuple(sorted(problems, key=lambda problem: problem.line)))


def _read_fence(lines: Sequence[str], index: int, indent: int, marks: str) -> tuple[list[str], int, bool]:
    """The block's lines from ``index`` on, the index after its closing fence, and whether it had one (a fence of
    the same character, at least as long, and nothing else on its line)."""
    body: list[str] = []
    while index < len(lines):
        closing = lines[index].strip()
        if len(closing) >= len(marks) and set(closing) == {marks[0]}:
            return body, index + 1, True
        body.append(_dedent(lines[index], indent))
        index += 1
    return body, index, False


def _dedent(line: str, indent: int) -> str:
    """A block inside a list item is indented with its fence: that much leading space is markup, not content."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent) :]


def script(blocks: Sequence[Block], token: str) -> str:
    """One bash script running ``blocks`` in order, ``token`` marking where each begins and ends."""
    parts = [
        "set -euo pipefail",
        # Which command failed: its line in the script, mapped back to the README by find_failure.
        f"trap 'echo \"{token} ERR $? $LINENO\"' ERR",
    ]
    for block in blocks:
        parts += [f"echo '{token} BEGIN {block.line}'", block.body, f"echo '{token} END {block.line}'"]
    parts.append(f"echo '{token} DONE'")
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class Failure:
    block: Block | None  # None: the script failed outside every block
    output: str  # what the failing block printed
    readme_line: int | None  # the failing command's README line, when bash named it
    status: int | None

    def __str__(self) -> str:
        where = f"block at README.md line {self.block.line}" if self.block else "the README script"
        near = f", command near line {self.readme_line}" if self.readme_line else ""
        status = f" exited {self.status}" if self.status is not None else " did not finish"
        return f"{where}{near}{status}; its output:\n{self.output}"


def find_failure(blocks: Sequence[Block], output: str, token: str, returncode: int | None) -> Failure | None:
    """The block that did not finish (a non-zero exit, a timeout, an early ``exit``), or None if all did."""
    by_line = {block.line: block for block in blocks}
    current: Block | None = None
    captured: list[str] = []
    status, failed_at, done = None, None, False
    for line in output.splitlines():
        if not line.startswith(token + " "):
            captured.append(line)
            continue
        kind, _, rest = line[len(token) + 1 :].partition(" ")
        if kind == "BEGIN":
            current, captured = by_line.get(int(rest)), []
        elif kind == "END":
            current = None
        elif kind == "ERR":
            code, _, script_line = rest.partition(" ")
            status, failed_at = int(code), _readme_line(blocks, int(script_line))
        elif kind == "DONE":
            done = True
    if done and returncode == 0:
        return None
    if failed_at is None:
        named = [match for line in captured if (match := _BASH_ERROR.match(line))]
        failed_at = _readme_line(blocks, int(named[-1].group("line"))) if named else None
    if status is None and returncode is not None and returncode != 0:
        status = returncode
    return Failure(current, "\n".join(captured), failed_at, status)


def _readme_line(blocks: Sequence[Block], script_line: int) -> int | None:
    """The README line of a line of :func:`script`'s output script (its two header lines come first)."""
    position = 3
    for block in blocks:
        position += 1  # the BEGIN echo
        length = len(block.body.split("\n"))  # as the script holds it: an empty body is one empty line
        if position <= script_line < position + length:
            return block.first_body_line + script_line - position
        position += length + 1  # the body, the END echo
    return None
