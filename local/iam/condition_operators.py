"""IAM condition operators, as AWS documents them (IAM User Guide, "IAM JSON policy elements: Condition operators"):
each operator's name, how it prepares a policy value, and its positive comparison; ``...IfExists``, the set
qualifiers and ``Null`` are parsed here (:func:`parse_operator`) and applied by :mod:`local.iam.conditions`.

Each family of operators is listed once (:data:`OPERATORS`); its negated operators (``StringNotEquals``,
``NotIpAddress``, ...) are derived from the positive ones. A policy value an operator cannot read raises
:class:`UnsupportedCondition`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .condition_keys import UnsupportedCondition
from .policy_variables import Chars, expand, glob_regex, scalar, text

__all__ = ["OPERATORS", "Compare", "Operator", "Prepare", "bool_text", "parse_operator"]


Compare = Callable[[Any, Any], bool]  # (request value, prepared policy value) -> positive match


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        return None


def _date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


Prepare = Callable[[Any, Mapping[str, Any], bool], Any]  # (policy value, context, variables) -> prepared value


def _policy(parse: Callable[[Any], Any], what: str) -> Prepare:
    def prepare(value: Any, _context: Mapping[str, Any], _variables: bool) -> Any:
        parsed = parse(value)
        if parsed is None:
            raise UnsupportedCondition(f"{value!r} is not a valid {what} condition value")
        return parsed

    return prepare


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return None


def _in_network(request: Any, network: Any) -> bool:
    try:
        return ipaddress.ip_address(str(request)) in network
    except ValueError:
        return False


def _binary(value: Any) -> bytes | None:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None


def _request_bytes(value: Any) -> bytes | None:
    return bytes(value) if isinstance(value, bytes | bytearray) else _binary(value)


def bool_text(value: Any) -> str | None:
    lowered = scalar(value).lower()
    return lowered if lowered in ("true", "false") else None


def _arn_parts(chars: Chars) -> list[Chars] | None:
    parts: list[list[tuple[str, bool]]] = [[]]
    for c, literal in chars:
        if c == ":" and len(parts) < 6:
            parts.append([])
        else:
            parts[-1].append((c, literal))
    return [tuple(p) for p in parts] if len(parts) == 6 else None


def _arn_like(request: Any, parts: list[Chars] | None) -> bool:
    """Each of the six colon-separated components matched on its own (ArnLike and ArnEquals behave identically)."""
    values = str(request).split(":", 5)
    if parts is None or len(values) != 6:
        return False
    return all(glob_regex(p).fullmatch(v) is not None for p, v in zip(parts, values, strict=True))


def _num(cmp: Callable[[Decimal, Decimal], bool]) -> Compare:
    return lambda r, p: (n := _number(r)) is not None and cmp(n, p)


def _dt(cmp: Callable[[datetime, datetime], bool]) -> Compare:
    return lambda r, p: (d := _date(r)) is not None and cmp(d, p)


def _chars(value: Any, context: Mapping[str, Any], variables: bool) -> Chars:
    return expand(scalar(value), context, variables=variables)


_STRING_EQ: Compare = lambda r, p: scalar(r) == text(p)  # noqa: E731
_STRING_EQ_IC: Compare = lambda r, p: scalar(r).lower() == text(p).lower()  # noqa: E731
_STRING_LIKE: Compare = lambda r, p: glob_regex(p).fullmatch(scalar(r)) is not None  # noqa: E731
_ARN_PREPARE: Prepare = lambda v, c, variables: _arn_parts(_chars(v, c, variables))  # noqa: E731

Operator = tuple[Prepare, Compare, bool]  # (prepare the policy value, positive comparison, negated)


def _family(
    prefix: str, prepare: Prepare, tests: Mapping[str, Compare], *, negated: Iterable[str] = ()
) -> dict[str, Operator]:
    """``prefix + name`` for each positive test; ``prefix + "Not" + name``, the same test negated, for each name in
    ``negated`` (the negated operator is the negation of the positive one)."""
    table = {f"{prefix}{name}": (prepare, test, False) for name, test in tests.items()}
    table.update({f"{prefix}Not{name}": (prepare, tests[name], True) for name in negated})
    return table


_ORDERED: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}
_STRING_TESTS = {"Equals": _STRING_EQ, "EqualsIgnoreCase": _STRING_EQ_IC, "Like": _STRING_LIKE}

OPERATORS: dict[str, Operator] = {
    **_family("String", _chars, _STRING_TESTS, negated=_STRING_TESTS),
    **_family(
        "Numeric", _policy(_number, "numeric"), {k: _num(cmp) for k, cmp in _ORDERED.items()}, negated=["Equals"]
    ),
    **_family("Date", _policy(_date, "date"), {k: _dt(cmp) for k, cmp in _ORDERED.items()}, negated=["Equals"]),
    **_family("Bool", _policy(bool_text, "Bool"), {"": lambda r, p: bool_text(r) == p}),
    **_family("Binary", _policy(_binary, "base64"), {"Equals": lambda r, p: _request_bytes(r) == p}),
    **_family("", _policy(_network, "CIDR"), {"IpAddress": _in_network}, negated=["IpAddress"]),
    **_family("Arn", _ARN_PREPARE, {"Equals": _arn_like, "Like": _arn_like}, negated=["Equals", "Like"]),
}
_BY_LOWER = {name.lower(): name for name in (*OPERATORS, "Null")}
_QUALIFIERS = {"forallvalues": "ForAllValues", "foranyvalue": "ForAnyValue"}


def parse_operator(name: str) -> tuple[str | None, str, bool]:
    """(set qualifier, base operator, IfExists); raises for anything AWS does not document."""
    qualifier, _, base = name.rpartition(":")
    if qualifier and qualifier.lower() not in _QUALIFIERS:
        raise UnsupportedCondition(f"unknown condition set operator {qualifier!r}")
    if_exists = base.lower().endswith("ifexists") and base.lower() != "ifexists"
    canonical = _BY_LOWER.get(base.lower()[: -len("ifexists")] if if_exists else base.lower())
    if canonical is None or (canonical == "Null" and (if_exists or qualifier)):
        raise UnsupportedCondition(f"unknown condition operator {name!r}")
    return (_QUALIFIERS[qualifier.lower()] if qualifier else None), canonical, if_exists
