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

This module evaluates a Condition block (set qualifiers, ``IfExists``, ``Null``, missing keys, AND/OR/NOR); the parts
it evaluates with are :mod:`local.iam.condition_keys` (the key allow-list), :mod:`local.iam.condition_operators` (each
operator's preparation and comparison) and :mod:`local.iam.policy_variables` (``${...}`` and wildcards), re-exported
here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .condition_keys import KNOWN_KEYS, KNOWN_PREFIXES, UnsupportedCondition, normalize_context, require_known_key
from .condition_operators import OPERATORS, bool_text, parse_operator
from .policy_variables import Unresolved, expand, glob_regex

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


def _values(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, list | tuple) else [raw]


def validate_block(block: Any) -> None:
    """Every operator and key of a Condition block known (raises otherwise), without evaluating anything."""
    if not isinstance(block, Mapping):
        raise UnsupportedCondition("a Condition element must be an object")
    for name, keys in block.items():
        parse_operator(name)
        if not isinstance(keys, Mapping):
            raise UnsupportedCondition(f"condition operator {name!r} must map keys to values")
        for key in keys:
            require_known_key(key)


def _null(present: bool, raw: Any) -> bool:
    wanted = [bool_text(v) for v in _values(raw)]
    if None in wanted:
        raise UnsupportedCondition(f"Null takes true or false, not {raw!r}")
    return any((w == "true") != present for w in wanted)


def _request_values(value: Any) -> list[Any]:
    """The request's values for a key: several for a multivalued key, none when it is missing."""
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [] if value is None else [value]


def _key_holds(name: str, key: str, raw: Any, context: Mapping[str, Any], variables: bool) -> bool:
    qualifier, operator, if_exists = parse_operator(name)
    value = context.get(require_known_key(key))
    requested = _request_values(value)
    if operator == "Null":
        return _null(bool(requested), raw)
    prepare, positive, negated = OPERATORS[operator]
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
