"""IAM policy variables and wildcards: a policy value as characters (:data:`Chars`), its ``${...}`` variables
substituted from the request context and marked literal, and the glob those characters make.

Source (IAM User Guide): "IAM policy elements: Variables and tags" (``${key}``, ``${key, 'default'}``,
``${*}``/``${?}``/``${$}``, only in string and ARN conditions and in Resource, only with Version 2012-10-17; a variable
that cannot be resolved makes the statement not apply: :class:`Unresolved`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .condition_keys import UnsupportedCondition, require_known_key

__all__ = ["Chars", "Unresolved", "expand", "glob_regex", "scalar", "text"]


class Unresolved(Exception):
    """A policy variable with no value in the request context and no default: the statement does not apply."""


Chars = tuple[tuple[str, bool], ...]  # (character, literal): a literal character is never a wildcard
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"\s*([^,\s]+)\s*,\s*'([^']*)'\s*")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def scalar(value: Any) -> str:
    """A request value as policies read it: booleans as ``true``/``false``, times in ISO 8601 UTC."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _variable(body: str, context: Mapping[str, Any]) -> str:
    if body in _SPECIAL:
        return _SPECIAL[body]
    default = None
    if (m := _DEFAULT.fullmatch(body)) is not None:
        body, default = m.group(1), m.group(2)
    key = require_known_key(body.strip())
    value = context.get(key)
    if isinstance(value, list | tuple | set | frozenset):
        raise UnsupportedCondition(f"multivalued key {body!r} cannot be a policy variable")
    if value is None:
        if default is None:
            raise Unresolved(body)
        return default
    return scalar(value)


def expand(text: str, context: Mapping[str, Any], *, variables: bool) -> Chars:
    """The policy value as characters, substituted variables marked literal (``${*}`` is a literal ``*``)."""
    if not variables:
        return tuple((c, False) for c in text)
    out: list[tuple[str, bool]] = []
    position = 0
    for m in _VARIABLE.finditer(text):
        out += [(c, False) for c in text[position : m.start()]]
        out += [(c, True) for c in _variable(m.group(1), context)]
        position = m.end()
    out += [(c, False) for c in text[position:]]
    return tuple(out)


def glob_regex(chars: Iterable[tuple[str, bool]], *, ignore_case: bool = False) -> re.Pattern[str]:
    """``*`` any run, ``?`` any one character; every other character (and every literal) matched as itself."""
    return _compiled(tuple(chars), ignore_case)


@functools.lru_cache(maxsize=4096)  # every request of an enforced run matches the same few patterns again
def _compiled(chars: Chars, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for c, literal in chars:
        if not literal and c == "*":
            parts.append(".*")
        elif not literal and c == "?":
            parts.append(".")
        else:
            parts.append(re.escape(c))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def text(chars: Chars) -> str:
    """The characters alone (literal or not)."""
    return "".join(c for c, _ in chars)
