"""IAM condition operators, condition keys and policy variables, as AWS documents them.

Sources (IAM User Guide): "IAM JSON policy elements: Condition operators" (every operator, ``...IfExists``, ``Null``;
a key missing from the request context fails a condition, except that a *negated* operator then holds);
"Conditions with multiple context keys or values" (operators and keys AND, values OR, values of a negated operator
NOR); "Single-valued vs. multivalued context keys" (``ForAllValues`` holds when the key is missing or empty,
``ForAnyValue`` then fails); "IAM policy elements: Variables and tags" (``${key}``, ``${key, 'default'}``,
``${*}``/``${?}``/``${$}``, only in string and ARN conditions and in Resource, only with Version 2012-10-17; a variable
that cannot be resolved makes the statement not apply).

Without a set qualifier, a multivalued request value matches a positive operator when any of its values matches,
and a negated operator when none does (the negated operator is the negation of the positive one). Condition KEYS
are an explicit allow-list (:data:`KNOWN_KEYS` and :data:`KNOWN_PREFIXES`): any other key raises
:class:`UnsupportedCondition`, it never evaluates as a match or a miss. Key names are case-insensitive, values are
case-sensitive unless the operator says IgnoreCase.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "KNOWN_KEYS",
    "KNOWN_PREFIXES",
    "Unresolved",
    "UnsupportedCondition",
    "conditions_hold",
    "expand",
    "glob_regex",
    "normalize_context",
    "require_known_key",
    "validate_block",
]


class UnsupportedCondition(Exception):
    """A condition operator or key (or another policy element) this evaluator does not know: refused loudly."""


class Unresolved(Exception):
    """A policy variable with no value in the request context and no default: the statement does not apply."""


# Global keys credport's policies (or the AWS examples its tests use) need, and service keys of the services it calls.
KNOWN_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:TagKeys",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalType",
        "aws:userid",
        "aws:username",
        "aws:SecureTransport",
        "aws:SourceArn",
        "aws:SourceAccount",
        "aws:SourceIp",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:ViaAWSService",
        "aws:CalledVia",
        "kms:ResourceAliases",
        "kms:RequestAlias",
        "kms:ViaService",
        "kms:CallerAccount",
        "kms:KeySpec",
        "kms:KeyUsage",
        "s3:prefix",
        "s3:delimiter",
        "s3:max-keys",
        "s3:x-amz-server-side-encryption",
        "dynamodb:LeadingKeys",
        "dynamodb:Attributes",
        "sts:ExternalId",
        "sts:RoleSessionName",
        "sts:SourceIdentity",
        "sts:DurationSeconds",
        "secretsmanager:Name",
        "secretsmanager:SecretId",
    )
)
KNOWN_PREFIXES = (
    "aws:resourcetag/",
    "aws:requesttag/",
    "aws:principaltag/",
    "kms:encryptioncontext:",
    "s3:existingobjecttag/",
    "secretsmanager:resourcetag/",
)
# Web identity keys: "<provider host[/path]>:aud|sub|azp|amr", e.g. token.actions.githubusercontent.com:sub,
# accounts.google.com:aud, oidc.eks.<region>.amazonaws.com/id/<id>:sub (IAM User Guide, "Available keys for
# AWS web identity federation").
# A local issuer carries its port (127.0.0.1:8000:aud): IAM keys a provider by its URL without the scheme.
_WEB_IDENTITY_KEY = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]{1,5})?(/[a-z0-9._~/-]+)?:(aud|oaud|sub|azp|amr)")


def require_known_key(key: str) -> str:
    """The key, lowercased; raises for any key outside the allow-list."""
    lowered = key.lower()
    if lowered in KNOWN_KEYS or _WEB_IDENTITY_KEY.fullmatch(lowered):
        return lowered
    if any(lowered.startswith(p) and len(lowered) > len(p) for p in KNOWN_PREFIXES):
        return lowered
    raise UnsupportedCondition(f"condition key {key!r} is not supported by the embedded IAM")


def normalize_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Keys lowercased (key names are case-insensitive); None means absent."""
    return {k.lower(): v for k, v in context.items() if v is not None}


# ---- policy variables -------------------------------------------------------------------------------------------

Chars = tuple[tuple[str, bool], ...]  # (character, literal): a literal character is never a wildcard
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"\s*([^,\s]+)\s*,\s*'([^']*)'\s*")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def _scalar(value: Any) -> str:
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
    return _scalar(value)


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


def _text(chars: Chars) -> str:
    return "".join(c for c, _ in chars)


# ---- operators --------------------------------------------------------------------------------------------------

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


def _bool(value: Any) -> str | None:
    text = _scalar(value).lower()
    return text if text in ("true", "false") else None


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
    return expand(_scalar(value), context, variables=variables)


_STRING_EQ: Compare = lambda r, p: _scalar(r) == _text(p)  # noqa: E731
_STRING_EQ_IC: Compare = lambda r, p: _scalar(r).lower() == _text(p).lower()  # noqa: E731
_STRING_LIKE: Compare = lambda r, p: glob_regex(p).fullmatch(_scalar(r)) is not None  # noqa: E731
_ARN_PREPARE: Prepare = lambda v, c, variables: _arn_parts(_chars(v, c, variables))  # noqa: E731

# operator -> (prepare policy value (value, context), positive comparison, negated)
_OPERATORS: dict[str, tuple[Prepare, Compare, bool]] = {
    "StringEquals": (_chars, _STRING_EQ, False),
    "StringNotEquals": (_chars, _STRING_EQ, True),
    "StringEqualsIgnoreCase": (_chars, _STRING_EQ_IC, False),
    "StringNotEqualsIgnoreCase": (_chars, _STRING_EQ_IC, True),
    "StringLike": (_chars, _STRING_LIKE, False),
    "StringNotLike": (_chars, _STRING_LIKE, True),
    "NumericEquals": (_policy(_number, "numeric"), _num(lambda a, b: a == b), False),
    "NumericNotEquals": (_policy(_number, "numeric"), _num(lambda a, b: a == b), True),
    "NumericLessThan": (_policy(_number, "numeric"), _num(lambda a, b: a < b), False),
    "NumericLessThanEquals": (_policy(_number, "numeric"), _num(lambda a, b: a <= b), False),
    "NumericGreaterThan": (_policy(_number, "numeric"), _num(lambda a, b: a > b), False),
    "NumericGreaterThanEquals": (_policy(_number, "numeric"), _num(lambda a, b: a >= b), False),
    "DateEquals": (_policy(_date, "date"), _dt(lambda a, b: a == b), False),
    "DateNotEquals": (_policy(_date, "date"), _dt(lambda a, b: a == b), True),
    "DateLessThan": (_policy(_date, "date"), _dt(lambda a, b: a < b), False),
    "DateLessThanEquals": (_policy(_date, "date"), _dt(lambda a, b: a <= b), False),
    "DateGreaterThan": (_policy(_date, "date"), _dt(lambda a, b: a > b), False),
    "DateGreaterThanEquals": (_policy(_date, "date"), _dt(lambda a, b: a >= b), False),
    "Bool": (_policy(_bool, "Bool"), lambda r, p: _bool(r) == p, False),
    "BinaryEquals": (_policy(_binary, "base64"), lambda r, p: _request_bytes(r) == p, False),
    "IpAddress": (_policy(_network, "CIDR"), _in_network, False),
    "NotIpAddress": (_policy(_network, "CIDR"), _in_network, True),
    "ArnEquals": (_ARN_PREPARE, _arn_like, False),
    "ArnLike": (_ARN_PREPARE, _arn_like, False),
    "ArnNotEquals": (_ARN_PREPARE, _arn_like, True),
    "ArnNotLike": (_ARN_PREPARE, _arn_like, True),
}
_BY_LOWER = {name.lower(): name for name in (*_OPERATORS, "Null")}
_QUALIFIERS = {"forallvalues": "ForAllValues", "foranyvalue": "ForAnyValue"}


def _parse_operator(name: str) -> tuple[str | None, str, bool]:
    """(set qualifier, base operator, IfExists); raises for anything AWS does not document."""
    qualifier, _, base = name.rpartition(":")
    if qualifier and qualifier.lower() not in _QUALIFIERS:
        raise UnsupportedCondition(f"unknown condition set operator {qualifier!r}")
    if_exists = base.lower().endswith("ifexists") and base.lower() != "ifexists"
    canonical = _BY_LOWER.get(base.lower()[: -len("ifexists")] if if_exists else base.lower())
    if canonical is None or (canonical == "Null" and (if_exists or qualifier)):
        raise UnsupportedCondition(f"unknown condition operator {name!r}")
    return (_QUALIFIERS[qualifier.lower()] if qualifier else None), canonical, if_exists


def _values(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, list | tuple) else [raw]


def validate_block(block: Any) -> None:
    """Every operator and key of a Condition block known (raises otherwise), without evaluating anything."""
    if not isinstance(block, Mapping):
        raise UnsupportedCondition("a Condition element must be an object")
    for name, keys in block.items():
        _parse_operator(name)
        if not isinstance(keys, Mapping):
            raise UnsupportedCondition(f"condition operator {name!r} must map keys to values")
        for key in keys:
            require_known_key(key)


def _null(present: bool, raw: Any) -> bool:
    wanted = [_bool(v) for v in _values(raw)]
    if None in wanted:
        raise UnsupportedCondition(f"Null takes true or false, not {raw!r}")
    return any((w == "true") != present for w in wanted)


def _request_values(value: Any) -> list[Any]:
    """The request's values for a key: several for a multivalued key, none when it is missing."""
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [] if value is None else [value]


def _key_holds(name: str, key: str, raw: Any, context: Mapping[str, Any], variables: bool) -> bool:
    qualifier, operator, if_exists = _parse_operator(name)
    value = context.get(require_known_key(key))
    requested = _request_values(value)
    if operator == "Null":
        return _null(bool(requested), raw)
    prepare, positive, negated = _OPERATORS[operator]
    policy = [prepare(v, context, variables) for v in _values(raw)]
    if not requested:  # missing (or an empty set)
        if if_exists or qualifier == "ForAllValues":
            return True
        return False if qualifier == "ForAnyValue" else negated

    def one(r: Any) -> bool:
        matched = any(positive(r, p) for p in policy)
        return not matched if negated else matched  # negated: NOR over the policy values

    if qualifier == "ForAllValues":
        return all(one(r) for r in requested)
    if qualifier == "ForAnyValue":
        return any(one(r) for r in requested)
    if len(requested) > 1:
        # AWS wants a set qualifier on a multivalued key ("Multivalued context keys"); how it reads an unqualified
        # operator over several values is not documented: refused rather than guessed.
        raise UnsupportedCondition(f"{name} on the multivalued key {key} needs ForAllValues or ForAnyValue")
    return one(requested[0])


def conditions_hold(block: Mapping[str, Any], context: Mapping[str, Any], *, variables: bool = True) -> bool:
    """The whole block against a :func:`normalize_context` context: operators AND, keys AND, values OR (NOR).

    ``variables``: the policy's Version is 2012-10-17 (older versions take ``${...}`` literally). Raises
    :class:`UnsupportedCondition` for an unknown operator or key and :class:`Unresolved` for a policy variable
    without a value."""
    validate_block(block)
    return all(
        _key_holds(name, key, raw, context, variables) for name, keys in block.items() for key, raw in keys.items()
    )
