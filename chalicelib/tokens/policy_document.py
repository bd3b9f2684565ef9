"""The token policy document: parsing and validation into the fields of each rule (:class:`RuleFields`).

The semantics are described in :mod:`chalicelib.tokens.policy`; this module only decides whether a document is
well formed, and reports EVERY problem it finds (each naming its place, such as ``rules[2].max_ttl``) in one
:class:`~chalicelib.tokens.policy_errors.TokenPolicyInvalid`: a reviewer fixes a document in one round.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

from chalicelib.config.parsers import parse_audience
from chalicelib.tokens.policy_errors import TokenPolicyInvalid

__all__ = [
    "KNOWN_ALGORITHMS",
    "MAX_RULES",
    "MIN_RULE_TTL",
    "VERSION",
    "RuleFields",
    "check_deployment",
    "parse_document",
]

VERSION = "credport-token-policy/1"
KNOWN_ALGORITHMS = ("RS256", "ES256", "ES384")  # the signing algorithms credport can have enabled
MIN_RULE_TTL, MAX_RULES = 60, 500
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ARN_TEXT = re.compile(r"[\x21-\x7e]{1,2048}")
_ACCOUNT = re.compile(r"[0-9]{12}")
_ORG_ID = re.compile(r"o-[a-z0-9]{10,32}")
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
_TOP_KEYS = frozenset({"version", "rules"})
_RULE_KEYS = frozenset({"name", "description", "principals", "audiences", "max_ttl", "algorithms", "request_tag_keys"})
_PRINCIPAL_KEYS = frozenset({"arn", "account", "org_id", "principal_tags"})


class RuleFields(TypedDict):
    """A validated rule: the keyword arguments of :class:`chalicelib.tokens.policy.Rule`. None: not in the document
    (a principal condition: none; ``request_tag_keys``: any key). ``principal_tags`` keys are in lower case."""

    name: str
    description: str
    arns: tuple[str, ...] | None
    accounts: frozenset[str] | None
    org_ids: frozenset[str] | None
    principal_tags: dict[str, frozenset[str]] | None
    audiences: tuple[str, ...]
    max_ttl: int
    algorithms: frozenset[str]
    request_tag_keys: tuple[str, ...] | None


def check_deployment(max_ttl: int, algorithms: Sequence[str]) -> None:
    """The loader's own arguments (the deployment's settings): a ValueError, not a document problem."""
    if isinstance(max_ttl, bool) or not isinstance(max_ttl, int) or max_ttl < MIN_RULE_TTL:
        raise ValueError(f"the deployment's maximum ttl must be a whole number of seconds >= {MIN_RULE_TTL}")
    known = not isinstance(algorithms, str) and all(a in KNOWN_ALGORITHMS for a in algorithms)
    if not known or not algorithms or len(set(algorithms)) != len(algorithms):
        raise ValueError(f"the enabled algorithms must be distinct values of {', '.join(KNOWN_ALGORITHMS)}")


def _show(value: object) -> str:
    text = repr(value)  # repr escapes control characters: a problem line stays one line
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    """What a decoded JSON value is, for a problem's "got ..." (not the value, which may be long)."""
    kinds = {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list"}
    return kinds.get(type(value), "an object" if isinstance(value, dict) else "null")


def _tag_text(text: str) -> bool:
    """AWS tag text: Unicode letters, digits and separators (whitespace), and ``_.:/=+-@``."""
    return all(
        c.isalpha() or c.isnumeric() or c in _TAG_PUNCTUATION or unicodedata.category(c).startswith("Z") for c in text
    )


def _tag_problem(what: str, text: str, low: int, high: int, *, wildcard: bool = False) -> str | None:
    """The problem of a tag key or value (AWS tag rules), or of a key pattern (``*`` allowed besides), or None."""
    if not low <= len(text) <= high:
        return f"{what} must be {low}..{high} characters, got {len(text)}"
    if not _tag_text(text.replace("*", "") if wildcard else text):
        allowed = "letters, digits, whitespace and _.:/=+-@" + (" (and '*')" if wildcard else "")
        return f"{what} holds only {allowed}, got {_show(text)}"
    return None


def _tag_key_problem(key: str) -> str | None:
    return _tag_problem("a tag key", key, 1, 128)


def _tag_value_problem(value: str) -> str | None:
    return _tag_problem("a tag value", value, 0, 256)


def _tag_key_pattern_problem(pattern: str) -> str | None:
    return _tag_problem("a tag key pattern", pattern, 1, 128, wildcard=True)


def _arn_problem(pattern: str) -> str | None:
    parts = pattern.split(":", 5)
    if not _ARN_TEXT.fullmatch(pattern) or len(parts) < 6 or parts[0] != "arn":
        return f"must be an ARN pattern (arn:partition:service:region:account:resource), got {_show(pattern)}"
    if parts[5].startswith("assumed-role/"):
        return "a token's subject is the role's ARN (arn:aws:iam::ACCOUNT:role/PATH/NAME), never an assumed-role ARN"
    return None


def _audience_problem(pattern: str) -> str | None:
    try:
        parse_audience(pattern)
    except ValueError as exc:
        return str(exc)
    return "a bare '*' would allow every audience; list them, or use 'prefix*'" if pattern == "*" else None


def _matching(regex: re.Pattern[str], expected: str) -> Callable[[str], str | None]:
    return lambda value: None if regex.fullmatch(value) else f"must be {expected}, got {_show(value)}"


_Principals = tuple[
    tuple[str, ...] | None, frozenset[str] | None, frozenset[str] | None, dict[str, frozenset[str]] | None
]


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it was given more than once (json keeps the last value silently)."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    for key, value in pairs:
        if key in obj and key not in obj.duplicates:
            obj.duplicates = (*obj.duplicates, key)
        obj[key] = value
    return obj


class _Parser:
    """One pass over a decoded document, collecting problems; the rules are only built when there are none."""

    def __init__(self, max_ttl: int, algorithms: Sequence[str]) -> None:
        self.problems: list[str] = []
        self.ttl_high = max_ttl  # a rule narrows the deployment's maximum, never widens it
        self.deployment_ttl = max_ttl
        self.enabled = tuple(algorithms)

    def add(self, place: str, text: str) -> None:
        self.problems.append(f"{place}: {text}")

    def object(self, value: Any, place: str, allowed: frozenset[str] | None) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.add(place, f"must be a JSON object, got {_kind(value)}")
            return None
        for key in getattr(value, "duplicates", ()):
            self.add(place, f"key {_show(key)} is given more than once")
        for key in (key for key in value if allowed is not None and key not in allowed):
            self.add(place, f"unknown key {_show(key)} (allowed: {', '.join(sorted(allowed or ()))})")
        return value

    def strings(
        self, value: Any, place: str, check: Callable[[str], str | None], *, empty: str | None, fold: bool = False
    ) -> list[str]:
        """A list of strings, each passed through ``check``; ``empty`` says why [] is refused (None: allowed)."""
        if not isinstance(value, list):
            self.add(place, f"must be a list of strings, got {_kind(value)}")
            return []
        if not value and empty is not None:
            self.add(place, f"must not be empty ({empty})")
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            here = f"{place}[{index}]"
            if not isinstance(item, str):
                self.add(here, f"must be a string, got {_kind(item)}")
            elif problem := check(item):
                self.add(here, problem)
            elif (key := item.lower() if fold else item) in seen:
                self.add(here, f"{_show(item)} is already listed at {place}[{seen[key]}]")
            else:
                seen[key] = index
        return [item for item in value if isinstance(item, str)]

    def document(self, data: Any) -> list[RuleFields]:
        if self.object(data, "(document)", _TOP_KEYS) is None:
            return []
        if "version" not in data:
            self.add("version", f"is required ({VERSION!r})")
        elif data["version"] != VERSION:
            self.add("version", f"must be {VERSION!r}, got {_show(data['version'])}")
        rules = data.get("rules")
        if not isinstance(rules, list) or not 1 <= len(rules) <= MAX_RULES:
            got = f"{len(rules)} rules" if isinstance(rules, list) else _kind(rules) if "rules" in data else "nothing"
            self.add("rules", f"must be a list of 1..{MAX_RULES} rules, got {got}")
            return []
        names: dict[str, int] = {}
        built = [self.rule(rule, f"rules[{index}]", index, names) for index, rule in enumerate(rules)]
        return [rule for rule in built if rule is not None]

    def rule(self, data: Any, place: str, index: int, names: dict[str, int]) -> RuleFields | None:
        if self.object(data, place, _RULE_KEYS) is None:
            return None
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            self.add(f"{place}.name", f"must be 1..64 of A-Z a-z 0-9 . _ -, got {_show(name)}")
        elif name in names:
            self.add(f"{place}.name", f"{name!r} is already the name of rules[{names[name]}]")
        else:
            names[name] = index
        description = data.get("description", "")
        if not isinstance(description, str) or len(description) > 1024:
            got = f"{len(description)} characters" if isinstance(description, str) else _kind(description)
            self.add(f"{place}.description", f"must be a string of at most 1024 characters, got {got}")
        principals = self.principals(data.get("principals", {}), f"{place}.principals")
        audiences: list[str] = []
        if "audiences" not in data:
            self.add(f"{place}.audiences", "is required")
        else:
            audiences = self.strings(data["audiences"], f"{place}.audiences", _audience_problem, empty="list one")
        max_ttl = data.get("max_ttl", self.deployment_ttl)
        bounds = f"{MIN_RULE_TTL}..{self.ttl_high}"
        if "max_ttl" in data and (isinstance(max_ttl, bool) or not isinstance(max_ttl, int)):
            self.add(f"{place}.max_ttl", f"must be a whole number of seconds {bounds}, got {_show(max_ttl)}")
        elif "max_ttl" in data and not MIN_RULE_TTL <= max_ttl <= self.ttl_high:
            self.add(f"{place}.max_ttl", f"must be {bounds}, got {max_ttl}")
        algorithms = self.strings(
            data.get("algorithms", list(self.enabled)),
            f"{place}.algorithms",
            self.algorithm_problem,
            empty="omit it to allow every enabled algorithm",
        )
        keys = None
        if "request_tag_keys" in data:
            where = f"{place}.request_tag_keys"
            keys = self.strings(data["request_tag_keys"], where, _tag_key_pattern_problem, empty=None, fold=True)
        if self.problems:
            return None  # nothing is used from an invalid document; keep finding problems, skip building
        arns, accounts, org_ids, tags = principals
        return RuleFields(
            name=name,
            description=description,
            arns=arns,
            accounts=accounts,
            org_ids=org_ids,
            principal_tags=tags,
            audiences=tuple(audiences),
            max_ttl=max_ttl,
            algorithms=frozenset(algorithms),
            request_tag_keys=None if keys is None else tuple(keys),
        )

    def algorithm_problem(self, name: str) -> str | None:
        if name not in KNOWN_ALGORITHMS:
            return f"must be one of {', '.join(KNOWN_ALGORITHMS)}, got {_show(name)}"
        if name not in self.enabled:
            return f"{name} is not enabled in this deployment (enabled: {', '.join(self.enabled)})"
        return None

    def principals(self, data: Any, place: str) -> _Principals:
        """arn, account, org_id and principal_tags: each None when not given."""
        if self.object(data, place, _PRINCIPAL_KEYS) is None:
            return None, None, None, None
        any_ = "omit it to match any"
        arns = accounts = org_ids = tags = None
        if "arn" in data:
            arns = tuple(self.strings(data["arn"], f"{place}.arn", _arn_problem, empty=any_))
        if "account" in data:
            account = _matching(_ACCOUNT, "12 digits")
            accounts = frozenset(self.strings(data["account"], f"{place}.account", account, empty=any_))
        if "org_id" in data:
            org_id = _matching(_ORG_ID, "an organization id (o- and 10..32 of a-z 0-9)")
            org_ids = frozenset(self.strings(data["org_id"], f"{place}.org_id", org_id, empty=any_))
        if "principal_tags" in data:
            tags = self.principal_tags(data["principal_tags"], f"{place}.principal_tags")
        return arns, accounts, org_ids, tags

    def principal_tags(self, data: Any, place: str) -> dict[str, frozenset[str]]:
        if self.object(data, place, None) is None:
            return {}
        if not data:
            self.add(place, "must not be empty (omit it to match any)")
        tags: dict[str, frozenset[str]] = {}
        spelled: dict[str, str] = {}
        for key, values in data.items():
            here = f"{place}[{_show(key)}]"
            if problem := _tag_key_problem(key):
                self.add(here, problem)
            elif key.lower() in spelled:
                self.add(here, f"is the tag key {spelled[key.lower()]!r} again (tag keys ignore case)")
            spelled.setdefault(key.lower(), key)
            listed = self.strings(values, here, _tag_value_problem, empty="list the values allowed")
            tags[key.lower()] = frozenset(listed)
        return tags


def parse_document(text: str | bytes, *, max_ttl: int, algorithms: Sequence[str]) -> tuple[RuleFields, ...]:
    """The rules of a policy document, validated, or TokenPolicyInvalid listing every problem. ``max_ttl`` and
    ``algorithms`` are the deployment's (a ValueError when they are themselves invalid)."""
    check_deployment(max_ttl, algorithms)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TokenPolicyInvalid([f"(document): not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = json.loads(text, object_pairs_hook=_pairs)  # NaN/Infinity pass here, but no field takes them
    except json.JSONDecodeError as exc:
        raise TokenPolicyInvalid([f"(document): not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]) from None
    except ValueError as exc:  # an integer of thousands of digits
        raise TokenPolicyInvalid([f"(document): not JSON: {exc}"]) from None
    except RecursionError:
        raise TokenPolicyInvalid(["(document): nested too deeply"]) from None
    parser = _Parser(max_ttl, algorithms)
    rules = parser.document(data)
    if parser.problems:
        raise TokenPolicyInvalid(parser.problems)
    return tuple(rules)
