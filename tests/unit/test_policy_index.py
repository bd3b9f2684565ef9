"""The policy's index (chalicelib/tokens/policy_index.py) narrows which rules are checked; it must never change an
answer. Held here to a rule-by-rule reference written from the documented semantics alone (IAM's ArnLike part by
part, the audience allow-list's rules, tag keys folded), on random policies and callers."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config.parsers import audience_matches
from chalicelib.tokens.policy import MintRequest, Rule, TokenPolicy
from chalicelib.tokens.policy_errors import AudienceNotAllowed, PolicyRefusal
from chalicelib.tokens.policy_index import MAX_LENGTHS, MIN_RULES, PrincipalIndex, resource_prefix


def glob(pattern: str, one: str) -> str:
    """A wildcard pattern as a plain (backtracking) regular expression: the reference, not the module's."""
    return "".join(f"{one}*" if c == "*" else one if c == "?" else re.escape(c) for c in pattern)


def arn_like(pattern: str, subject: str) -> bool:
    parts = pattern.split(":", 5)
    regex = ":".join([*(glob(part, "[^:]") for part in parts[:5]), glob(parts[5], ".")])
    return re.fullmatch(regex, subject, re.DOTALL) is not None


def fold(key: str) -> str:
    return unicodedata.normalize("NFKC", key).casefold()


def first_failure(rule: Rule, request: MintRequest) -> type[PolicyRefusal] | None:
    if not all(any(audience_matches(entry, a) for entry in rule.audiences) for a in request.audiences):
        return AudienceNotAllowed
    if request.ttl > rule.max_ttl or request.algorithm not in rule.algorithms:
        return PolicyRefusal
    if rule.request_tag_keys is not None and not all(
        any(re.fullmatch(glob(fold(p), "."), fold(key), re.DOTALL) for p in rule.request_tag_keys)
        for key in request.tag_keys
    ):
        return PolicyRefusal
    return None


def reference(policy: TokenPolicy, request: MintRequest) -> tuple[str, str | None]:
    """("allowed", rule) or ("refused", the first matching rule): the documented semantics, every rule in turn."""
    tags = {k.lower(): v for k, v in request.principal_tags.items()} if request.principal_tags is not None else None
    first_match: str | None = None
    for rule in policy.rules:
        if rule.accounts is not None and request.account not in rule.accounts:
            continue
        if rule.org_ids is not None and request.org_id not in rule.org_ids:
            continue
        if rule.arns is not None and not any(arn_like(p, request.subject) for p in rule.arns):
            continue
        if rule.principal_tags is not None and (
            tags is None or any(tags.get(k.lower()) not in values for k, values in rule.principal_tags.items())
        ):
            continue
        if first_failure(rule, request) is None:
            return "allowed", rule.name
        first_match = first_match or rule.name
    return "refused", first_match


def answer(policy: TokenPolicy, request: MintRequest) -> tuple[str, str | None]:
    try:
        return "allowed", policy.check(request)
    except PolicyRefusal as refused:
        return "refused", refused.rule


# Few, overlapping pieces, so that patterns, prefixes and subjects meet often.
ACCOUNTS = ["111122223333", "444455556666"]
account_part = st.sampled_from([*ACCOUNTS, "*", "1111*", "?11122223333", ""])
resource = st.lists(
    st.sampled_from(["role/", "user/", "ci/", "team1/", "team", "1", "x", "-", ":", "*", "?"]), max_size=5
)
arn_pattern = st.builds(
    lambda partition, service, account, res: f"arn:{partition}:{service}::{account}:{''.join(res)}",
    st.sampled_from(["aws", "*", "a?s"]),
    st.sampled_from(["iam", "sts", "*"]),
    account_part,
    resource,
)
subject = st.builds(
    lambda partition, account, res: f"arn:{partition}:iam::{account}:{''.join(res)}",
    st.sampled_from(["aws", "aws-cn"]),
    st.sampled_from([*ACCOUNTS, "", "111122223333x"]),
    st.lists(st.sampled_from(["role/", "user/", "ci/", "team1/", "team", "1", "x", "-", ":", "\n"]), max_size=6),
) | st.sampled_from(["", "arn", "arn:aws:iam::111122223333", "role/ci/x"])


@st.composite
def rules(draw: st.DrawFn, index: int) -> Rule:
    return Rule(
        name=f"r{index}",
        audiences=tuple(draw(st.lists(st.sampled_from(["a", "b", "https://x/*", "https://x/y"]), min_size=1))),
        max_ttl=draw(st.sampled_from([300, 900])),
        algorithms=frozenset(draw(st.lists(st.sampled_from(["RS256", "ES384"]), min_size=1))),
        request_tag_keys=draw(st.none() | st.lists(st.sampled_from(["team", "env-*", "x"])).map(tuple)),
        arns=draw(st.none() | st.lists(arn_pattern, max_size=3).map(tuple)),
        accounts=draw(st.none() | st.sets(st.sampled_from(ACCOUNTS), max_size=2).map(frozenset)),
        org_ids=draw(st.none() | st.just(frozenset({"o-aaaaaaaaaa"}))),
        principal_tags=draw(st.none() | st.just({"team": frozenset({"build"})})),
    )


@st.composite
def policies(draw: st.DrawFn) -> TokenPolicy:
    count = draw(st.integers(min_value=1, max_value=12))
    return TokenPolicy([draw(rules(i)) for i in range(count)], source="property")


requests = st.builds(
    MintRequest,
    subject=subject,
    account=st.sampled_from(ACCOUNTS),
    org_id=st.sampled_from([None, "o-aaaaaaaaaa"]),
    principal_tags=st.sampled_from([None, {}, {"Team": "build"}, {"team": "other"}]),
    audiences=st.lists(st.sampled_from(["a", "b", "https://x/", "https://x/z", "https://x/y"]), min_size=1).map(tuple),
    ttl=st.sampled_from([300, 600]),
    algorithm=st.sampled_from(["RS256", "ES384"]),
    tag_keys=st.lists(st.sampled_from(["team", "ENV-prod", "x", "y"]), max_size=2).map(tuple),
)


@settings(max_examples=400, deadline=None)
@given(policies(), st.lists(requests, min_size=1, max_size=4))
def test_the_indexed_check_answers_as_the_rule_by_rule_reference(policy: TokenPolicy, asked: list[MintRequest]) -> None:
    for request in asked:
        assert answer(policy, request) == reference(policy, request)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.none() | st.lists(arn_pattern, max_size=3), min_size=1, max_size=10), subject)
def test_every_rule_whose_arn_condition_holds_is_a_candidate(patterns: list[list[str] | None], who: str) -> None:
    candidates = PrincipalIndex(patterns).candidates(who)
    holds = [i for i, p in enumerate(patterns) if p is None or any(arn_like(x, who) for x in p)]
    assert set(holds) <= set(candidates)
    assert list(candidates) == sorted(set(candidates))  # document order, each once


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("arn:aws:iam::111122223333:role/ci/*", "role/ci/"),
        ("arn:aws:iam::*:role/svc-?-*", "role/svc-"),  # wildcards before the resource leave it in place
        ("arn:aws:iam::111122223333:role/exact", "role/exact"),
        ("arn:aws:iam::111122223333:*", ""),
        ("arn:aws:iam::111122223333:role/a:b*", "role/a:b"),  # the resource keeps its own ':'
        ("arn:aws:iam::*", None),  # no resource part
    ],
)
def test_a_patterns_resource_prefix(pattern: str, prefix: str | None) -> None:
    assert resource_prefix(pattern) == prefix


def test_rules_are_filed_under_their_prefixes_and_wildcard_resources_are_everyones() -> None:
    index = PrincipalIndex(
        [
            ["arn:aws:iam::1:role/ci/*"],
            ["arn:aws:iam::*:role/svc-1-*", "arn:aws:iam::1:role/ci/runner"],
            None,
            ["arn:aws:iam::1:*"],
            ["arn:aws:iam::1:user/x"],
        ]
    )
    assert list(index.candidates("arn:aws:iam::1:role/ci/runner")) == [0, 1, 2, 3]
    assert list(index.candidates("arn:aws:iam::1:role/svc-1-a")) == [1, 2, 3]
    assert list(index.candidates("arn:aws:iam::1:user/x")) == [2, 3, 4]
    assert list(index.candidates("not an arn")) == [2, 3]


def test_where_looking_up_cannot_pay_every_rule_is_a_candidate() -> None:
    few = [["arn:aws:iam::1:role/a"]] * (MIN_RULES - 1)
    assert list(PrincipalIndex(few).candidates("arn:aws:iam::1:user/other")) == list(range(MIN_RULES - 1))
    lengths = [[f"arn:aws:iam::1:role/{'x' * n}"] for n in range(MAX_LENGTHS + 1)]
    assert list(PrincipalIndex(lengths).candidates("arn:aws:iam::1:user/other")) == list(range(MAX_LENGTHS + 1))
    nothing_filed = [None, ["arn:aws:iam::1:*"]] * MIN_RULES
    assert list(PrincipalIndex(nothing_filed).candidates("x")) == list(range(2 * MIN_RULES))
