"""Reading raw variables out of an environment mapping, collecting every problem instead of stopping at the first.

A variable that fails is recorded (name and message) and read as its default, so the rest of the parse, and the
rules between settings, still run: a misconfigured deployment learns every mistake from one error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from chalicelib.untrusted import encodable

__all__ = ["Reader"]

T = TypeVar("T")


class Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []
        self._failed: set[str] = set()

    def problem(self, name: str, message: str) -> None:
        self._failed.add(name)
        self.problems.append(f"{name}: {message}")

    def _text(self, name: str, raw: str) -> bool:
        """Environment bytes that are not UTF-8 reach Python as lone surrogates (``surrogateescape``); no parser
        below may see them (a name or ARN holding one would fail inside botocore at its first use)."""
        if encodable(raw):
            return True
        self.problem(name, "is not valid UTF-8 text")
        return False

    def given(self, name: str) -> bool:
        """Whether the environment sets ``name`` (to anything but blanks)."""
        return bool(self._environ.get(name, "").strip())

    def failed(self, *names: str) -> bool:
        return any(n in self._failed for n in names)

    def get(self, name: str, default: str, parse: Callable[[str], T]) -> T:
        raw = self._environ.get(name, "").strip() or default
        if not self._text(name, raw):
            return parse(default)
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(name, str(exc))
            # Defaults are valid by construction; using one lets the relation checks still run.
            return parse(default)

    def require(self, name: str, parse: Callable[[str], str]) -> str:
        raw = self._environ.get(name, "").strip()
        if not raw:
            self.problem(name, "is required (set by template.yaml; see README 'Configuration')")
            return ""
        if not self._text(name, raw):
            return ""
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(name, str(exc))
            return ""
