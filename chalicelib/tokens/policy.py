"""The token policy: one reviewed document saying which principals may request which tokens (issue #18).

AWS STS GetWebIdentityToken governs minting with IAM condition keys (``sts:IdentityTokenAudience``,
``sts:DurationSeconds``, ``sts:SigningAlgorithm``); credport's equivalent is a JSON document of rules, each
matching principals to the audiences they may request, their longest lifetime, the signing algorithms and the
request-tag keys allowed (docs/token-policy.example.json)::

    {"version": "credport-token-policy/1",
     "rules": [{"name": "ci-runners", "description": "optional free text",
                "principals": {"arn": ["arn:aws:iam::111122223333:role/ci/*"], "account": ["111122223333"],
                               "org_id": ["o-a1b2c3d4e5"], "principal_tags": {"team": ["build", "release"]}},
                "audiences": ["https://ci.example.com", "https://api.example.org/*"],
                "max_ttl": 900, "algorithms": ["ES384"], "request_tag_keys": ["team", "env-*"]}]}

Semantics:

- ``principals``: every listed condition must hold (AND); within a list, any value (OR). Omitted or ``{}``:
  everyone.

  - ``arn``: patterns matched against the token's ``sub`` (a role's ARN, with its path for roles of credport's own
    account; an IAM user's ARN; a federated user's ARN) as IAM's ArnLike does: ``*`` any run of characters
    (including none), ``?`` one character, everything else literal, case-sensitive, the whole ARN. As in IAM, the
    six ``:``-separated parts match one by one: a wildcard never spans a ``:`` into the next part (the resource,
    last, may hold ``:``). Roles of other accounts have no path in ``sub``: a pattern ``role/ci/*`` misses them.
  - ``account``: 12 digits, the caller's account. ``org_id``: ``o-`` and 10..32 of a-z 0-9; a caller whose
    organization is unknown never matches a rule with ``org_id``.
  - ``principal_tags``: for each key, the principal's tag of that key must hold one of the listed values. Keys
    compare case-insensitively (as IAM compares tag keys), values case-sensitively. A principal whose tags are
    unknown (None: a caller of another account) never matches a rule with ``principal_tags``.

- ``audiences`` (required, non-empty): each requested audience must match one entry, with exactly the allow-list's
  rules (:func:`chalicelib.config.parsers.parse_audience`, :func:`~chalicelib.config.parsers.audience_matches`):
  exact, or a prefix when the entry ends in its only ``*``. A bare ``*`` is refused at load.
- ``max_ttl`` (from 60 to the deployment's maximum): the requested ttl must not exceed it; a request that names no
  ttl gets the deployment's default or this, whichever is shorter. Omitted: the
  deployment's maximum.
- ``algorithms``: a subset of the deployment's enabled algorithms (known: RS256, ES256, ES384). Omitted: every
  enabled one.
- ``request_tag_keys``: patterns (exact, or ``*`` anywhere for any run of characters), case-insensitive since tag
  keys are; each requested tag key must match one. Omitted: any key (tag syntax is checked elsewhere). ``[]``: no
  request tags.

A request is allowed when at least one rule whose principals match allows every part of it (every audience, the
ttl, the algorithm, every tag key); :meth:`TokenPolicy.check` returns that rule's name (the first, in document
order). Otherwise it raises a :class:`~chalicelib.tokens.policy_errors.PolicyRefusal` (403) naming the FIRST rule
whose principals match and that rule's first failed check, in the order audience, ttl, algorithm, tag. When no rule
matches the principal, the refusal is ``audience_not_allowed`` with ``rule`` None. The refusal's message never
names a rule; its ``rule`` and ``reason`` are for the audit log.

Loading validates the whole document and reports every problem at once (policy_document.py). With no document
configured, :meth:`TokenPolicy.default` is the implicit policy: today's global allow-list as one rule, ``default``.

Pure: no AWS call, no settings read. ``python -m chalicelib.tokens.policy_check FILE`` validates a document (the
command line lives there: a function serving tokens never imports argparse).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.config.parsers import audience_matches
from chalicelib.tokens.policy_document import check_deployment, parse_document
from chalicelib.tokens.policy_errors import (
    AlgorithmNotAllowed,
    AudienceNotAllowed,
    PolicyRefusal,
    TagNotAllowed,
    TokenPolicyInvalid,
    TtlNotAllowed,
)
from chalicelib.tokens.policy_index import PrincipalIndex

__all__ = ["MAX_DOCUMENT_BYTES", "MintRequest", "Rule", "TokenPolicy"]

MAX_DOCUMENT_BYTES = 1024 * 1024  # a reviewed document is far smaller; refuse to read a wrong file whole
_REASONS = {  # for the audit log: which rule, which check, which requested value
    AudienceNotAllowed: "audience {value} matches none of rule {rule}'s audiences",
    TtlNotAllowed: "ttl {value} exceeds rule {rule}'s max_ttl {max_ttl}",
    AlgorithmNotAllowed: "algorithm {value} is not among rule {rule}'s algorithms",
    TagNotAllowed: "request tag key {value} matches none of rule {rule}'s request_tag_keys",
}


@dataclass(frozen=True)
class MintRequest:
    """What the policy sees of one ``/token`` request."""

    subject: str  # sub: the role's ARN (with its path) or the user's ARN
    account: str
    org_id: str | None
    principal_tags: Mapping[str, str] | None  # None: unknown (a caller of another account)
    audiences: tuple[str, ...]
    ttl: int
    algorithm: str
    tag_keys: tuple[str, ...]


def _fold(key: str) -> str:
    """A request-tag key as the request's checks compare it (chalicelib.tokens.request.tag_key_identity)."""
    return unicodedata.normalize("NFKC", key).casefold()


def _glob(pattern: str, one: str) -> str:
    """A regex for ``pattern`` (``*``: any run of characters, ``?``: one) where ``one`` is one allowed character.
    Linear time however many ``*``: each chunk between two ``*`` is found at its leftmost place and committed (an
    atomic group), never backtracked into; leftmost is always right, as each chunk has a fixed length."""
    chunks = ["".join(one if c == "?" else re.escape(c) for c in part) for part in pattern.split("*")]
    if len(chunks) == 1:
        return chunks[0]
    middle = "".join(f"(?>{one}*?{chunk})" for chunk in chunks[1:-1] if chunk)
    return f"{chunks[0]}{middle}{one}*{chunks[-1]}"


def _arn_regex(pattern: str) -> str:
    """IAM ArnLike: the six ':'-separated parts are matched one by one (a wildcard never reaches across a ':' into
    the next part); the last part, the resource, keeps any ':' it holds."""
    parts = pattern.split(":", 5)
    return ":".join([*(_glob(part, "[^:]") for part in parts[:5]), _glob(parts[5], ".")])


def _arn_kind(pattern: str) -> str:
    """exact (no wildcard), prefix (one ``*``, last: it is in the resource, which may hold anything) or regex."""
    if "*" not in pattern and "?" not in pattern:
        return "exact"
    return "prefix" if "?" not in pattern and pattern.find("*") == len(pattern) - 1 else "regex"


def _any_of(regexes: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL) if regexes else None


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule. A principal condition that is None is absent (matches everyone); ``principal_tags`` keys are lower
    case (IAM compares tag keys case-insensitively); ``request_tag_keys`` None allows any key, ``()`` none."""

    name: str
    audiences: tuple[str, ...]
    max_ttl: int
    algorithms: frozenset[str]
    request_tag_keys: tuple[str, ...] | None = None
    arns: tuple[str, ...] | None = None
    accounts: frozenset[str] | None = None
    org_ids: frozenset[str] | None = None
    principal_tags: Mapping[str, frozenset[str]] | None = None
    description: str = ""
    # Compiled once (check runs on every token): most ARN patterns are an exact ARN or a literal prefix and ``*``
    # (a set look-up, one startswith), the others one regular expression; audiences likewise.
    arn_exact: frozenset[str] = field(init=False, repr=False, compare=False)
    arn_prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    arn_matcher: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    tag_items: tuple[tuple[str, frozenset[str]], ...] | None = field(init=False, repr=False, compare=False)
    audience_exact: frozenset[str] = field(init=False, repr=False, compare=False)
    audience_prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    tag_key_matcher: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kinds: dict[str, list[str]] = {"exact": [], "prefix": [], "regex": []}
        for pattern in self.arns or ():
            kinds[_arn_kind(pattern)].append(pattern)
        tags, keys = self.principal_tags, self.request_tag_keys
        derived = {
            "arn_exact": frozenset(kinds["exact"]),
            "arn_prefixes": tuple(p[:-1] for p in kinds["prefix"]),
            "arn_matcher": _any_of([_arn_regex(p) for p in kinds["regex"]]),
            "tag_items": None if tags is None else tuple((key.lower(), values) for key, values in tags.items()),
            "audience_exact": frozenset(a for a in self.audiences if not a.endswith("*")),
            "audience_prefixes": tuple(a[:-1] for a in self.audiences if a.endswith("*")),
            "tag_key_matcher": _any_of([_glob(_fold(p), ".") for p in keys or ()]),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def allows_audience(self, audience: str) -> bool:
        """``audience_matches`` against any of ``audiences``: the same answer, with a set look-up for the usual
        exact audience (a wildcard entry can only match an audience that starts with its prefix)."""
        if audience in self.audience_exact:
            return True
        return audience.startswith(self.audience_prefixes) and any(
            audience_matches(entry, audience) for entry in self.audiences if entry.endswith("*")
        )


def _principal_holds(rule: Rule, subject: str, account: str, org_id: str | None) -> bool:
    """``rule``'s account, organization and ARN conditions (its principal tags are checked apart)."""
    if (rule.accounts is not None and account not in rule.accounts) or (
        rule.org_ids is not None and org_id not in rule.org_ids
    ):
        return False
    return rule.arns is None or (
        subject in rule.arn_exact
        or subject.startswith(rule.arn_prefixes)
        or (rule.arn_matcher is not None and rule.arn_matcher.fullmatch(subject) is not None)
    )


def _tags_hold(required: tuple[tuple[str, frozenset[str]], ...], tags: Mapping[str, str]) -> bool:
    for key, values in required:  # noqa: SIM110 (a loop: faster than all(generator), and it runs per token)
        if tags.get(key) not in values:
            return False
    return True


def _failed_check(rule: Rule, request: MintRequest) -> tuple[type[PolicyRefusal], str | int] | None:
    """``rule``'s first failed check (audience, ttl, algorithm, tag) and the requested value it refused; None when
    the rule allows every part of ``request``. Cheap: the reason is only written for the refusal raised."""
    for audience in request.audiences:
        if not rule.allows_audience(audience):
            return AudienceNotAllowed, audience
    if request.ttl > rule.max_ttl:
        return TtlNotAllowed, request.ttl
    if request.algorithm not in rule.algorithms:
        return AlgorithmNotAllowed, request.algorithm
    if rule.request_tag_keys is not None:
        matcher = rule.tag_key_matcher  # None for []: no key is allowed
        for key in request.tag_keys:
            if matcher is None or matcher.fullmatch(_fold(key)) is None:
                return TagNotAllowed, key
    return None


def _refusal(rule: Rule, kind: type[PolicyRefusal], value: str | int) -> PolicyRefusal:
    # Requested values come from the caller: repr keeps a log line one line, and the length is bounded.
    shown = value if isinstance(value, int) else _show(value)
    return kind(rule=rule.name, reason=_REASONS[kind].format(value=shown, rule=rule.name, max_ttl=rule.max_ttl))


def _show(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class TokenPolicy:
    """An immutable, validated policy. Build it with :meth:`from_json`, :meth:`load` or :meth:`default`."""

    def __init__(self, rules: Sequence[Rule], *, source: str = "") -> None:
        self._rules = tuple(rules)
        self.source = source
        self._uses_tags = any(rule.principal_tags is not None for rule in self._rules)
        self._index = PrincipalIndex([rule.arns for rule in self._rules])

    def __repr__(self) -> str:
        return f"TokenPolicy(source={self.source!r}, rules={[rule.name for rule in self._rules]!r})"

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str, max_ttl: int, algorithms: Sequence[str]) -> TokenPolicy:
        """The policy in ``text``; TokenPolicyInvalid (listing every problem) when it is not a valid document.
        ``max_ttl`` and ``algorithms`` are the deployment's; a ValueError when they are themselves invalid."""
        size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_DOCUMENT_BYTES:
            raise TokenPolicyInvalid([f"(document): larger than {MAX_DOCUMENT_BYTES} bytes"], source=source)
        try:
            rules = parse_document(text, max_ttl=max_ttl, algorithms=algorithms)
        except TokenPolicyInvalid as exc:
            raise TokenPolicyInvalid(exc.problems, source=source) from None
        return cls([Rule(**fields) for fields in rules], source=source)

    @classmethod
    def load(cls, path: Path, *, max_ttl: int, algorithms: Sequence[str]) -> TokenPolicy:
        """The policy in the file at ``path``; a file that cannot be read is a TokenPolicyInvalid too."""
        check_deployment(max_ttl, algorithms)  # the caller's mistake first, before the file's
        source = str(path)
        try:
            with path.open("rb") as file:
                data = file.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise TokenPolicyInvalid([f"{_show(source)}: cannot read: {exc.strerror or exc}"], source=source) from None
        if len(data) > MAX_DOCUMENT_BYTES:
            raise TokenPolicyInvalid([f"(document): larger than {MAX_DOCUMENT_BYTES} bytes"], source=source)
        return cls.from_json(data, source=source, max_ttl=max_ttl, algorithms=algorithms)

    @classmethod
    def default(cls, audiences: Sequence[str], max_ttl: int, algorithms: Sequence[str]) -> TokenPolicy:
        """The implicit policy when none is configured: one rule, ``default``, matching everyone, allowing the
        deployment's audience allow-list, ttls up to its maximum, its enabled algorithms and any request tag."""
        check_deployment(max_ttl, algorithms)
        rule = Rule(name="default", audiences=tuple(audiences), max_ttl=max_ttl, algorithms=frozenset(algorithms))
        return cls([rule], source="(default)")

    def check(self, request: MintRequest) -> str:
        """The name of the first rule that allows ``request``; else a PolicyRefusal (see the module docstring)."""
        tags = None
        if self._uses_tags and request.principal_tags is not None:
            tags = {key.lower(): value for key, value in request.principal_tags.items()}
        refusal: PolicyRefusal | None = None  # the first matching rule's, raised when no later rule allows it
        subject, account, org_id = request.subject, request.account, request.org_id
        rules = self._rules
        for index in self._index.candidates(subject):
            rule = rules[index]
            # Every condition, checked here whatever proposed the rule: the index narrows the search, never decides.
            if not _principal_holds(rule, subject, account, org_id):
                continue
            if rule.tag_items is not None and (tags is None or not _tags_hold(rule.tag_items, tags)):
                continue
            failure = _failed_check(rule, request)
            if failure is None:
                return rule.name
            if refusal is None:
                refusal = _refusal(rule, *failure)
        raise refusal or AudienceNotAllowed(rule=None, reason="no rule matches the principal")
