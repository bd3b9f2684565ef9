"""The token policy (chalicelib/tokens/policy.py): which rule allows a request, which rule and check refuses it,
every problem a document can have (all reported at once), the default policy, the example document and the CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config.parsers import audience_matches
from chalicelib.errors import CredportError
from chalicelib.tokens.policy import MAX_DOCUMENT_BYTES, MintRequest, Rule, TokenPolicy
from chalicelib.tokens.policy_document import VERSION
from chalicelib.tokens.policy_errors import (
    AlgorithmNotAllowed,
    AudienceNotAllowed,
    PolicyRefusal,
    TagNotAllowed,
    TokenPolicyInvalid,
    TtlNotAllowed,
)
from tests.conftest import REPO_ROOT

ACCOUNT = "111122223333"
ORG = "o-a1b2c3d4e5"
CI_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ci/runner"
ENABLED = ("RS256", "ES384")
EXAMPLE = REPO_ROOT / "docs" / "token-policy.example.json"
RULE_KEYS = "algorithms, audiences, description, max_ttl, name, principals, request_tag_keys"
ARN_SHAPE = "must be an ARN pattern (arn:partition:service:region:account:resource)"
ASSUMED = "a token's subject is the role's ARN (arn:aws:iam::ACCOUNT:role/PATH/NAME), never an assumed-role ARN"
TAG_TEXT = "letters, digits, whitespace and _.:/=+-@"
BASE_REQUEST = MintRequest(
    subject=CI_ROLE,
    account=ACCOUNT,
    org_id=ORG,
    principal_tags={"Team": "build"},
    audiences=("https://ci.example.com",),
    ttl=300,
    algorithm="ES384",
    tag_keys=(),
)


def request(**changes: Any) -> MintRequest:
    return dataclasses.replace(BASE_REQUEST, **changes)


def rule(name: str = "r", **fields: Any) -> dict[str, Any]:
    return {"name": name, "audiences": ["https://ci.example.com"], **fields}


def policy(*rules: dict[str, Any], max_ttl: int = 3600, algorithms: tuple[str, ...] = ENABLED) -> TokenPolicy:
    text = json.dumps({"version": VERSION, "rules": list(rules)})
    return TokenPolicy.from_json(text, source="test", max_ttl=max_ttl, algorithms=algorithms)


def refusal(p: TokenPolicy, req: MintRequest) -> PolicyRefusal:
    with pytest.raises(PolicyRefusal) as caught:
        p.check(req)
    return caught.value


def allowed(p: TokenPolicy, req: MintRequest) -> bool:
    """Whether ``p`` allows ``req``, for tests of principals: a refusal must be "no rule matches the principal"."""
    try:
        p.check(req)
    except PolicyRefusal as exc:
        refused = exc
    else:
        return True
    assert (type(refused), refused.rule) == (AudienceNotAllowed, None), refused
    return False


def problems(document: Any, *, max_ttl: int = 3600, algorithms: tuple[str, ...] = ENABLED) -> list[str]:
    text = document if isinstance(document, str | bytes) else json.dumps(document)
    with pytest.raises(TokenPolicyInvalid) as caught:
        TokenPolicy.from_json(text, source="test", max_ttl=max_ttl, algorithms=algorithms)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == "; ".join(caught.value.problems)
    assert caught.value.source == "test"
    return caught.value.problems


def rule_problems(**fields: Any) -> list[str]:
    return problems({"version": VERSION, "rules": [{"name": "r", "audiences": ["a"], **fields}]})


# Principals


def test_a_rule_without_principals_or_with_empty_principals_matches_everyone() -> None:
    for p in (policy(rule()), policy(rule(principals={}))):
        assert p.check(request()) == "r"
        assert p.check(request(subject="arn:aws:iam::999999999999:user/x", account="999999999999")) == "r"
        assert p.check(request(org_id=None, principal_tags=None)) == "r"


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/ci/*", CI_ROLE, True),
        (f"arn:aws:iam::{ACCOUNT}:role/ci/*", f"arn:aws:iam::{ACCOUNT}:role/ci/deep/er", True),
        (f"arn:aws:iam::{ACCOUNT}:role/ci*", f"arn:aws:iam::{ACCOUNT}:role/ci", True),  # '*': also no character
        (f"arn:aws:iam::{ACCOUNT}:role/ci/runne?", CI_ROLE, True),
        (f"arn:aws:iam::{ACCOUNT}:role/ci/runner?", CI_ROLE, False),  # '?': exactly one character
        (f"arn:aws:iam::{ACCOUNT}:role/ci/r?nner", f"arn:aws:iam::{ACCOUNT}:role/ci/rnner", False),
        (f"arn:aws:iam::{ACCOUNT}:role/ci", CI_ROLE, False),  # the whole ARN, not a prefix
        (f"arn:aws:iam::{ACCOUNT}:role/ci/RUNNER", CI_ROLE, False),  # case-sensitive
        (f"arn:aws:iam::{ACCOUNT}:role/a.c", f"arn:aws:iam::{ACCOUNT}:role/abc", False),  # literal, not a regex
        (f"arn:aws:iam::{ACCOUNT}:role/a+b", f"arn:aws:iam::{ACCOUNT}:role/aab", False),
        (f"arn:aws:iam::{ACCOUNT}:role/a+b", f"arn:aws:iam::{ACCOUNT}:role/a+b", True),
        ("arn:aws:iam::*:role/ci/runner", CI_ROLE, True),
        ("arn:aws:iam::1111*:role/admin", f"arn:aws:iam::{ACCOUNT}:role/p:role/admin", False),  # '*' stays in its part
        (f"arn:aws:iam::{ACCOUNT}:user/*", f"arn:aws:iam::{ACCOUNT}:user/a:b/name", True),  # the resource keeps ':'
        (f"arn:aws:iam::{ACCOUNT}:*", f"arn:aws:sts::{ACCOUNT}:federated-user/bob", False),
        (f"arn:aws:sts::{ACCOUNT}:federated-user/*", f"arn:aws:sts::{ACCOUNT}:federated-user/bob", True),
    ],
)
def test_arn_patterns_match_the_subject_as_iam_arnlike(pattern: str, subject: str, matches: bool) -> None:
    assert allowed(policy(rule(principals={"arn": [pattern]})), request(subject=subject)) is matches


def glob_reference(pattern: str, text: str) -> bool:
    """The plain definition (``*`` any run, ``?`` one character), by dynamic programming: slow, obviously right."""
    reachable = {0}
    for char in pattern:
        if char == "*":
            reachable = set(range(min(reachable), len(text) + 1)) if reachable else set()
        else:
            reachable = {i + 1 for i in reachable if i < len(text) and char in ("?", text[i])}
    return len(text) in reachable


def arnlike_reference(pattern: str, subject: str) -> bool:
    patterns, parts = pattern.split(":", 5), subject.split(":", 5)
    return len(parts) == 6 and all(glob_reference(p, t) for p, t in zip(patterns, parts, strict=True))


def any_rule(**fields: Any) -> TokenPolicy:
    return TokenPolicy([Rule(name="r", audiences=("a",), max_ttl=3600, algorithms=frozenset(ENABLED), **fields)])


PART = st.text("ab*?", max_size=5)


@given(pattern=st.tuples(*[PART] * 5, st.text("ab:*?", max_size=8)).map(":".join), data=st.data())
def test_arn_matching_is_arnlike_part_by_part_for_any_pattern(pattern: str, data: st.DataObject) -> None:
    # Subjects made by filling the pattern's wildcards (with ':' too): a plain glob matches them all, ArnLike only
    # those whose parts line up. Some subjects are drawn freely besides.
    fills = [data.draw(st.text("ab:", min_size=c == "?", max_size=1 if c == "?" else 4)) for c in pattern if c in "*?"]
    pieces = iter(fills)
    filled = "".join(next(pieces) if c in "*?" else c for c in pattern)
    free = data.draw(st.tuples(*[st.text("ab", max_size=4)] * 5, st.text("ab:", max_size=8)).map(":".join))
    for subject in (filled, free):
        assert allowed(any_rule(arns=(pattern,)), request(subject=subject, audiences=("a",))) is arnlike_reference(
            pattern, subject
        )


@given(pattern=st.text("aB-*", min_size=1, max_size=8), data=st.data())
def test_tag_key_patterns_are_globs_ignoring_case_for_any_pattern(pattern: str, data: st.DataObject) -> None:
    fills = iter([data.draw(st.text("abA-", max_size=3)) for c in pattern if c == "*"])
    filled = "".join(next(fills) if c == "*" else c for c in pattern).swapcase()  # matches as a plain glob
    p = any_rule(request_tag_keys=(pattern,))
    for key in (filled, data.draw(st.text("Ab-", max_size=8))):
        expected = glob_reference(pattern.lower(), key.lower())
        try:
            p.check(request(audiences=("a",), tag_keys=(key,)))
        except TagNotAllowed:
            assert not expected
        else:
            assert expected


@given(
    patterns=st.lists(
        st.text("ab/", min_size=1, max_size=4).flatmap(lambda t: st.sampled_from([t, t + "*"])), min_size=1
    ),
    audience=st.text("ab/", max_size=6),
)
def test_audiences_match_exactly_as_the_allow_list_for_any_entries(patterns: list[str], audience: str) -> None:
    rule = Rule(name="r", audiences=tuple(patterns), max_ttl=60, algorithms=frozenset(ENABLED))
    assert rule.allows_audience(audience) is any(audience_matches(p, audience) for p in patterns)


def test_a_rule_built_with_no_arn_patterns_matches_no_one() -> None:
    assert not allowed(any_rule(arns=()), request(audiences=("a",)))
    assert allowed(any_rule(arns=None), request(audiences=("a",)))


def test_arn_patterns_of_a_rule_are_alternatives() -> None:
    p = policy(rule(principals={"arn": ["arn:aws:iam::*:role/a", "arn:aws:iam::*:role/ci/*"]}))
    assert p.check(request()) == "r"
    assert p.check(request(subject=f"arn:aws:iam::{ACCOUNT}:role/a")) == "r"
    assert not allowed(p, request(subject=f"arn:aws:iam::{ACCOUNT}:role/b"))


def test_many_wildcards_against_a_long_subject_do_not_backtrack() -> None:
    p = policy(rule(principals={"arn": [f"arn:aws:iam::{ACCOUNT}:user/{'*a' * 12}*b"]}))
    subject = f"arn:aws:iam::{ACCOUNT}:user/{'a' * 2000}"
    started = time.perf_counter()
    assert not allowed(p, request(subject=subject))  # a backtracking matcher takes hours here
    assert time.perf_counter() - started < 5.0  # a margin for a loaded machine: it takes milliseconds
    assert allowed(p, request(subject=subject + "b"))


def test_account_and_org_id_list_alternatives_and_an_unknown_org_never_matches() -> None:
    p = policy(rule(principals={"account": ["999999999999", ACCOUNT], "org_id": [ORG, "o-zzzzzzzzzz"]}))
    assert allowed(p, request())
    assert not allowed(p, request(account="444455556666"))
    assert not allowed(p, request(org_id="o-bbbbbbbbbb"))
    assert not allowed(p, request(org_id=None))


def test_every_principal_condition_must_hold() -> None:
    p = policy(rule(principals={"arn": ["arn:aws:iam::*:role/ci/*"], "account": [ACCOUNT], "org_id": [ORG]}))
    assert allowed(p, request())
    assert not allowed(p, request(account="444455556666"))  # ARN and org match, the account does not
    assert not allowed(p, request(subject="arn:aws:iam::111122223333:role/other"))


def test_principal_tags_keys_ignore_case_values_do_not_and_every_key_must_hold() -> None:
    p = policy(rule(principals={"principal_tags": {"team": ["build", "release"], "COST-center": ["42"]}}))
    assert allowed(p, request(principal_tags={"TEAM": "release", "cost-Center": "42"}))
    assert not allowed(p, request(principal_tags={"team": "Build", "cost-center": "42"}))  # values: case matters
    assert not allowed(p, request(principal_tags={"team": "build"}))  # the other key is missing
    assert not allowed(p, request(principal_tags={"team": "ops", "cost-center": "42"}))
    assert not allowed(p, request(principal_tags={}))


def test_unknown_principal_tags_never_match_a_rule_with_principal_tags() -> None:
    p = policy(rule("tagged", principals={"principal_tags": {"team": ["build"]}}), rule("untagged"))
    assert p.check(request(principal_tags={"team": "build"})) == "tagged"
    assert p.check(request(principal_tags=None)) == "untagged"
    assert not allowed(policy(rule(principals={"principal_tags": {"team": [""]}})), request(principal_tags=None))


def test_no_rule_for_the_principal_is_an_audience_refusal_without_a_rule() -> None:
    p = policy(rule("other", principals={"account": ["999999999999"]}))
    refused = refusal(p, request())
    assert type(refused) is AudienceNotAllowed
    assert (refused.rule, refused.reason) == (None, "no rule matches the principal")


# What a matching rule allows


def test_audiences_match_exactly_or_by_a_final_wildcard_and_every_one_must_match() -> None:
    p = policy(rule("aud", audiences=["sts.amazonaws.com", "https://api.example.org/*"]))
    assert p.check(request(audiences=("sts.amazonaws.com", "https://api.example.org/v1"))) == "aud"
    for bad in ("https://api.example.org/", "https://api.example.org", "sts.amazonaws.com.evil", "STS.amazonaws.com"):
        refused = refusal(p, request(audiences=("sts.amazonaws.com", bad)))
        assert type(refused) is AudienceNotAllowed
        assert refused.rule == "aud"
        assert refused.reason == f"audience {bad!r} matches none of rule aud's audiences"


def test_ttl_up_to_the_rule_maximum_or_else_the_deployment_maximum() -> None:
    p = policy(rule("short", max_ttl=900))
    assert p.check(request(ttl=900)) == "short"
    refused = refusal(p, request(ttl=901))
    assert type(refused) is TtlNotAllowed
    assert (refused.rule, refused.reason) == ("short", "ttl 901 exceeds rule short's max_ttl 900")
    deployment = policy(rule("any"), max_ttl=1200)
    assert deployment.check(request(ttl=1200)) == "any"
    assert refusal(deployment, request(ttl=1201)).reason == "ttl 1201 exceeds rule any's max_ttl 1200"
    assert policy(rule("long"), max_ttl=43200).check(request(ttl=43200)) == "long"


def test_algorithms_listed_or_else_every_enabled_one() -> None:
    p = policy(rule("es", algorithms=["ES384"]))
    assert p.check(request(algorithm="ES384")) == "es"
    refused = refusal(p, request(algorithm="RS256"))
    assert type(refused) is AlgorithmNotAllowed
    assert (refused.rule, refused.reason) == ("es", "algorithm 'RS256' is not among rule es's algorithms")
    every = policy(rule("all"))
    assert every.check(request(algorithm="RS256")) == every.check(request(algorithm="ES384")) == "all"
    assert type(refusal(every, request(algorithm="ES256"))) is AlgorithmNotAllowed  # known, but not enabled


def test_request_tag_keys_patterns_ignore_case_and_wildcards_go_anywhere() -> None:
    p = policy(rule("tags", request_tag_keys=["team", "env-*", "*-id", "a*z"]))
    assert p.check(request(tag_keys=("TEAM", "env-prod", "Env-", "build-id", "az", "abcz"))) == "tags"
    refused = refusal(p, request(tag_keys=("team", "project")))
    assert type(refused) is TagNotAllowed
    assert (refused.rule, refused.reason) == (
        "tags",
        "request tag key 'project' matches none of rule tags's request_tag_keys",
    )
    assert type(refusal(p, request(tag_keys=("teams",)))) is TagNotAllowed


def test_request_tag_keys_omitted_allows_any_and_empty_allows_none() -> None:
    assert policy(rule("any")).check(request(tag_keys=("whatever", "x:y"))) == "any"
    none = policy(rule("none", request_tag_keys=[]))
    assert none.check(request(tag_keys=())) == "none"
    refused = refusal(none, request(tag_keys=("team",)))
    assert type(refused) is TagNotAllowed
    assert refused.rule == "none"


@pytest.mark.parametrize(
    ("changes", "refused_by"),
    [
        (
            {"audiences": ("https://other.example",), "ttl": 3000, "algorithm": "RS256", "tag_keys": ("x",)},
            AudienceNotAllowed,
        ),
        ({"ttl": 3000, "algorithm": "RS256", "tag_keys": ("x",)}, TtlNotAllowed),
        ({"algorithm": "RS256", "tag_keys": ("x",)}, AlgorithmNotAllowed),
        ({"tag_keys": ("x",)}, TagNotAllowed),
    ],
)
def test_the_first_failed_check_refuses_in_the_order_audience_ttl_algorithm_tag(
    changes: dict[str, Any], refused_by: type[PolicyRefusal]
) -> None:
    p = policy(rule("strict", max_ttl=600, algorithms=["ES384"], request_tag_keys=["team"]))
    refused = refusal(p, request(**changes))
    assert type(refused) is refused_by
    assert refused.rule == "strict"


def test_the_first_matching_rule_in_document_order_refuses_unless_another_allows() -> None:
    p = policy(
        rule("elsewhere", principals={"account": ["999999999999"]}),  # does not match: never named
        rule("first", max_ttl=600),  # matches, refuses the ttl
        rule("second", audiences=["sts.amazonaws.com"]),  # matches, refuses the audience
        rule("third", max_ttl=900, principals={"org_id": [ORG]}),
    )
    refused = refusal(p, request(ttl=1000))
    assert (type(refused), refused.rule) == (TtlNotAllowed, "first")
    assert p.check(request(ttl=800)) == "third"  # a later rule allows what the first refused
    assert p.check(request(ttl=500)) == "first"  # the first rule that allows it is named
    refused = refusal(p, request(ttl=1000, org_id=None))
    assert (type(refused), refused.rule) == (TtlNotAllowed, "first")


def test_refusals_are_403_with_stable_codes_and_a_message_that_names_no_rule() -> None:
    p = policy(rule("secret-rule-name", max_ttl=600, algorithms=["ES384"], request_tag_keys=["team"]))
    expected = {
        AudienceNotAllowed: ("audience_not_allowed", request(audiences=("https://x.example",))),
        TtlNotAllowed: ("ttl_not_allowed", request(ttl=601)),
        AlgorithmNotAllowed: ("algorithm_not_allowed", request(algorithm="RS256")),
        TagNotAllowed: ("tag_not_allowed", request(tag_keys=("env",))),
    }
    for kind, (code, req) in expected.items():
        refused = refusal(p, req)
        assert type(refused) is kind
        assert isinstance(refused, CredportError)
        assert (refused.status, refused.code, refused.rule) == (403, code, "secret-rule-name")
        assert refused.body() == {"error": code, "message": refused.message}
        assert refused.message.startswith("The token policy does not allow th")
        for leak in ("secret-rule-name", "ci.example.com", "600", "ES384", "team"):
            assert leak not in refused.message
    base = PolicyRefusal(rule=None, reason="why")
    assert (base.status, base.code) == (403, "not_allowed")


# The default policy and the example document


def test_the_default_policy_is_one_rule_for_everyone_with_the_global_allow_list() -> None:
    p = TokenPolicy.default(["sts.amazonaws.com", "https://api.example.org/*"], 43200, ["RS256", "ES384"])
    assert [r.name for r in p.rules] == ["default"]
    anyone = request(subject="arn:aws:iam::999999999999:user/u", account="999999999999", org_id=None)
    assert p.check(dataclasses.replace(anyone, principal_tags=None, audiences=("sts.amazonaws.com",))) == "default"
    ok = request(audiences=("https://api.example.org/x",), ttl=43200, algorithm="RS256", tag_keys=("any",))
    assert p.check(ok) == "default"
    assert type(refusal(p, request(audiences=("other",)))) is AudienceNotAllowed
    assert type(refusal(p, request(audiences=("sts.amazonaws.com",), ttl=43201))) is TtlNotAllowed
    assert type(refusal(p, request(audiences=("sts.amazonaws.com",), algorithm="ES256"))) is AlgorithmNotAllowed
    with pytest.raises(ValueError, match="algorithms"):
        TokenPolicy.default(["a"], 3600, ["HS256"])


def test_the_example_document_validates_and_means_what_it_says() -> None:
    p = TokenPolicy.load(EXAMPLE, max_ttl=3600, algorithms=ENABLED)
    assert [r.name for r in p.rules] == ["ci-runners", "data-platform", "organization-default"]
    ci = request(principal_tags={"team": "release"}, tag_keys=("env-prod",), ttl=900)
    assert p.check(ci) == "ci-runners"
    assert p.check(request(audiences=("sts.amazonaws.com",), principal_tags={"team": "ops"})) == "organization-default"
    refused = refusal(p, request(principal_tags={"team": "ops"}))
    assert (type(refused), refused.rule) == (AudienceNotAllowed, "organization-default")
    data = request(subject="arn:aws:iam::444455556666:role/data-etl", account="444455556666", principal_tags=None)
    assert (
        p.check(dataclasses.replace(data, audiences=("https://api.example.org/v2",), algorithm="RS256"))
        == "data-platform"
    )
    assert not allowed(p, dataclasses.replace(data, org_id=None))


# Validation: every problem, each at its place, all at once


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "(document): not JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
        ("[]", "(document): must be a JSON object, got a list"),
        (b"\xff{}", "(document): not UTF-8 text (byte 0)"),
        (
            '{"version": "credport-token-policy/1", "version": "x", "rules": []}',
            "(document): key 'version' is given more than once",
        ),
        ("[" * 100_000 + "]" * 100_000, "(document): nested too deeply"),
        ('{"rules": [' + "1" * 5000 + "]}", "(document): not JSON: Exceeds the limit"),
    ],
)
def test_documents_that_are_not_json_objects(text: str | bytes, problem: str) -> None:
    assert any(p.startswith(problem) for p in problems(text)), problems(text)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"rules": [rule()]}, "version: is required ('credport-token-policy/1')"),
        (
            {"version": "credport-token-policy/2", "rules": [rule()]},
            "version: must be 'credport-token-policy/1', got 'credport-token-policy/2'",
        ),
        ({"version": VERSION}, "rules: must be a list of 1..500 rules, got nothing"),
        ({"version": VERSION, "rules": []}, "rules: must be a list of 1..500 rules, got 0 rules"),
        ({"version": VERSION, "rules": {}}, "rules: must be a list of 1..500 rules, got an object"),
        (
            {"version": VERSION, "rules": [rule(f"r{i}") for i in range(501)]},
            "rules: must be a list of 1..500 rules, got 501 rules",
        ),
        (
            {"version": VERSION, "rules": [rule()], "extra": 1},
            "(document): unknown key 'extra' (allowed: rules, version)",
        ),
        ({"version": VERSION, "rules": ["r"]}, "rules[0]: must be a JSON object, got a string"),
        ({"version": VERSION, "rules": [rule(), rule()]}, "rules[1].name: 'r' is already the name of rules[0]"),
    ],
)
def test_top_level_problems(document: Any, problem: str) -> None:
    assert problem in problems(document)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": None}, "rules[0].name: must be 1..64 of A-Z a-z 0-9 . _ -, got None"),
        ({"name": "a b"}, "rules[0].name: must be 1..64 of A-Z a-z 0-9 . _ -, got 'a b'"),
        ({"name": "x" * 65}, f"rules[0].name: must be 1..64 of A-Z a-z 0-9 . _ -, got '{'x' * 56}..."),  # shown bounded
        (
            {"colour": "red"},
            f"rules[0]: unknown key 'colour' (allowed: {RULE_KEYS})",
        ),
        ({"description": 7}, "rules[0].description: must be a string of at most 1024 characters, got a number"),
        (
            {"description": "d" * 1025},
            "rules[0].description: must be a string of at most 1024 characters, got 1025 characters",
        ),
        ({"principals": []}, "rules[0].principals: must be a JSON object, got a list"),
        (
            {"principals": {"user": ["x"]}},
            "rules[0].principals: unknown key 'user' (allowed: account, arn, org_id, principal_tags)",
        ),
        ({"principals": {"arn": []}}, "rules[0].principals.arn: must not be empty (omit it to match any)"),
        (
            {"principals": {"arn": "arn:aws:iam::1:role/x"}},
            "rules[0].principals.arn: must be a list of strings, got a string",
        ),
        ({"principals": {"arn": [1]}}, "rules[0].principals.arn[0]: must be a string, got a number"),
        (
            {"principals": {"arn": ["role/ci/*"]}},
            f"rules[0].principals.arn[0]: {ARN_SHAPE}, got 'role/ci/*'",
        ),
        (
            {"principals": {"arn": ["arn:aws:iam::1:role/a b"]}},
            f"rules[0].principals.arn[0]: {ARN_SHAPE}, got 'arn:aws:iam::1:role/a b'",
        ),
        (
            {"principals": {"arn": ["arn:aws:sts::111122223333:assumed-role/ci/*"]}},
            f"rules[0].principals.arn[0]: {ASSUMED}",
        ),
        (
            {"principals": {"arn": ["arn:aws:iam::*:role/x", "arn:aws:iam::*:role/x"]}},
            "rules[0].principals.arn[1]: 'arn:aws:iam::*:role/x' is already listed at rules[0].principals.arn[0]",
        ),
        (
            {"principals": {"account": ["12345678901"]}},
            "rules[0].principals.account[0]: must be 12 digits, got '12345678901'",
        ),
        ({"principals": {"account": []}}, "rules[0].principals.account: must not be empty (omit it to match any)"),
        (
            {"principals": {"org_id": ["o-ABCDEFGHIJ"]}},
            "rules[0].principals.org_id[0]: must be an organization id (o- and 10..32 of a-z 0-9), got 'o-ABCDEFGHIJ'",
        ),
        (
            {"principals": {"org_id": ["o-abc"]}},
            "rules[0].principals.org_id[0]: must be an organization id (o- and 10..32 of a-z 0-9), got 'o-abc'",
        ),
        (
            {"principals": {"principal_tags": {}}},
            "rules[0].principals.principal_tags: must not be empty (omit it to match any)",
        ),
        (
            {"principals": {"principal_tags": []}},
            "rules[0].principals.principal_tags: must be a JSON object, got a list",
        ),
        (
            {"principals": {"principal_tags": {"team": []}}},
            "rules[0].principals.principal_tags['team']: must not be empty (list the values allowed)",
        ),
        (
            {"principals": {"principal_tags": {"team": "build"}}},
            "rules[0].principals.principal_tags['team']: must be a list of strings, got a string",
        ),
        (
            {"principals": {"principal_tags": {"": ["x"]}}},
            "rules[0].principals.principal_tags['']: a tag key must be 1..128 characters, got 0",
        ),
        ({"principals": {"principal_tags": {"k" * 129: ["x"]}}}, "a tag key must be 1..128 characters, got 129"),
        (
            {"principals": {"principal_tags": {"team!": ["x"]}}},
            f"rules[0].principals.principal_tags['team!']: a tag key holds only {TAG_TEXT}, got 'team!'",
        ),
        (
            {"principals": {"principal_tags": {"team": ["v" * 257]}}},
            "rules[0].principals.principal_tags['team'][0]: a tag value must be 0..256 characters, got 257",
        ),
        (
            {"principals": {"principal_tags": {"team": ["a\nb"]}}},
            f"rules[0].principals.principal_tags['team'][0]: a tag value holds only {TAG_TEXT}, got 'a\\nb'",
        ),
        (
            {"principals": {"principal_tags": {"Team": ["a"], "team": ["b"]}}},
            "rules[0].principals.principal_tags['team']: is the tag key 'Team' again (tag keys ignore case)",
        ),
        ({"audiences": []}, "rules[0].audiences: must not be empty (list one)"),
        ({"audiences": "sts.amazonaws.com"}, "rules[0].audiences: must be a list of strings, got a string"),
        (
            {"audiences": ["*"]},
            "rules[0].audiences[0]: a bare '*' would allow every audience; list them, or use 'prefix*'",
        ),
        (
            {"audiences": ["https://*.example.org/*"]},
            "rules[0].audiences[0]: must be printable ASCII without spaces ('*' only as a final wildcard), got 'https://*.example.org/*'",
        ),
        (
            {"audiences": ["a b"]},
            "rules[0].audiences[0]: must be printable ASCII without spaces ('*' only as a final wildcard), got 'a b'",
        ),
        ({"max_ttl": 59}, "rules[0].max_ttl: must be 60..3600, got 59"),
        ({"max_ttl": 3601}, "rules[0].max_ttl: must be 60..3600, got 3601"),
        ({"max_ttl": True}, "rules[0].max_ttl: must be a whole number of seconds 60..3600, got True"),
        ({"max_ttl": 900.0}, "rules[0].max_ttl: must be a whole number of seconds 60..3600, got 900.0"),
        ({"max_ttl": "900"}, "rules[0].max_ttl: must be a whole number of seconds 60..3600, got '900'"),
        ({"max_ttl": None}, "rules[0].max_ttl: must be a whole number of seconds 60..3600, got None"),
        ({"algorithms": []}, "rules[0].algorithms: must not be empty (omit it to allow every enabled algorithm)"),
        ({"algorithms": ["HS256"]}, "rules[0].algorithms[0]: must be one of RS256, ES256, ES384, got 'HS256'"),
        (
            {"algorithms": ["ES256"]},
            "rules[0].algorithms[0]: ES256 is not enabled in this deployment (enabled: RS256, ES384)",
        ),
        (
            {"algorithms": ["RS256", "RS256"]},
            "rules[0].algorithms[1]: 'RS256' is already listed at rules[0].algorithms[0]",
        ),
        ({"request_tag_keys": None}, "rules[0].request_tag_keys: must be a list of strings, got null"),
        (
            {"request_tag_keys": ["env?"]},
            f"rules[0].request_tag_keys[0]: a tag key pattern holds only {TAG_TEXT} (and '*'), got 'env?'",
        ),
        (
            {"request_tag_keys": [""]},
            "rules[0].request_tag_keys[0]: a tag key pattern must be 1..128 characters, got 0",
        ),
        (
            {"request_tag_keys": ["Team", "team"]},
            "rules[0].request_tag_keys[1]: 'team' is already listed at rules[0].request_tag_keys[0]",
        ),
    ],
)
def test_rule_problems(fields: dict[str, Any], problem: str) -> None:
    found = rule_problems(**fields)
    assert problem in found or any(p.endswith(problem) for p in found), found


def test_a_missing_audiences_list_is_reported_once() -> None:
    assert problems({"version": VERSION, "rules": [{"name": "r"}]}) == ["rules[0].audiences: is required"]


def test_duplicate_keys_are_reported_at_every_level() -> None:
    text = (
        '{"version": "credport-token-policy/1", "rules": [{"name": "a", "name": "b", "audiences": ["x"],'
        ' "principals": {"account": ["111122223333"], "account": ["444455556666"],'
        ' "principal_tags": {"team": ["x"], "team": ["y"]}}}]}'
    )
    assert problems(text) == [
        "rules[0]: key 'name' is given more than once",
        "rules[0].principals: key 'account' is given more than once",
        "rules[0].principals.principal_tags: key 'team' is given more than once",
    ]


def test_the_ttl_bound_is_the_deployment_maximum() -> None:
    """A rule narrows the deployment's CREDPORT_TOKEN_MAX_TTL, never widens it (one bound, explicit or omitted)."""
    document = {"version": VERSION, "rules": [rule(max_ttl=4000)]}
    assert problems(document, max_ttl=900) == ["rules[0].max_ttl: must be 60..900, got 4000"]
    assert TokenPolicy.from_json(json.dumps(document), source="test", max_ttl=43200, algorithms=ENABLED).rules
    assert problems({"version": VERSION, "rules": [rule(max_ttl=43201)]}, max_ttl=43200) == [
        "rules[0].max_ttl: must be 60..43200, got 43201"
    ]


def test_every_problem_is_reported_at_once_in_document_order() -> None:
    document = {
        "version": "1",
        "rules": [
            rule("ok"),
            {"name": "bad one", "audiences": ["*"], "max_ttl": 4000, "principals": {"account": ["1"]}},
            rule("ok", algorithms=["ES256"], surprise=True),
        ],
    }
    found = problems(document)
    assert found == [
        "version: must be 'credport-token-policy/1', got '1'",
        "rules[1].name: must be 1..64 of A-Z a-z 0-9 . _ -, got 'bad one'",
        "rules[1].principals.account[0]: must be 12 digits, got '1'",
        "rules[1].audiences[0]: a bare '*' would allow every audience; list them, or use 'prefix*'",
        "rules[1].max_ttl: must be 60..3600, got 4000",
        "rules[2]: unknown key 'surprise' (allowed: algorithms, audiences, description, max_ttl, name, principals,"
        " request_tag_keys)",
        "rules[2].name: 'ok' is already the name of rules[0]",
        "rules[2].algorithms[0]: ES256 is not enabled in this deployment (enabled: RS256, ES384)",
    ]


def test_wrong_loader_arguments_are_the_callers_mistake_not_the_documents() -> None:
    document = json.dumps({"version": VERSION, "rules": [rule()]})
    for max_ttl, algorithms in (
        (59, ENABLED),
        (3600, ()),
        (3600, ("HS256",)),
        (3600, ("RS256", "RS256")),
        (3600, "RS256"),
    ):
        with pytest.raises(ValueError, match=r"the deployment's maximum ttl|the enabled algorithms") as caught:
            TokenPolicy.from_json(document, source="x", max_ttl=max_ttl, algorithms=algorithms)
        assert not isinstance(caught.value, TokenPolicyInvalid)


def test_load_reports_a_file_it_cannot_read_as_an_invalid_policy(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.json", tmp_path):
        with pytest.raises(TokenPolicyInvalid) as caught:
            TokenPolicy.load(path, max_ttl=3600, algorithms=ENABLED)
        assert caught.value.source == str(path)
        problem = caught.value.problems[0]
        assert ": cannot read: " in problem  # the path is shown bounded: a long one is cut
        assert problem.startswith(repr(str(path))[:20])
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(TokenPolicyInvalid, match="larger than"):
        TokenPolicy.load(big, max_ttl=3600, algorithms=ENABLED)
    for text in (b" " * (MAX_DOCUMENT_BYTES + 1), "é" * (MAX_DOCUMENT_BYTES // 2 + 1)):  # the text given directly
        with pytest.raises(TokenPolicyInvalid, match="larger than"):
            TokenPolicy.from_json(text, source="given", max_ttl=3600, algorithms=ENABLED)
    good = tmp_path / "good.json"
    good.write_bytes(b"\xef\xbb\xbf" + json.dumps({"version": VERSION, "rules": [rule()]}).encode())  # a BOM is fine
    assert TokenPolicy.load(good, max_ttl=3600, algorithms=ENABLED).source == str(good)


# The CLI


def cli(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.tokens.policy_check", *map(str, argv)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        timeout=60,
    )


def test_cli_accepts_the_example() -> None:
    done = cli(EXAMPLE)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok: 3 rules\n", "")


def test_cli_prints_every_problem_on_its_own_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": VERSION, "rules": [rule(max_ttl=1000, algorithms=["RS256"])]}))
    done = cli(bad, "--max-ttl", "900", "--algorithms", "ES384")
    assert (done.returncode, done.stdout) == (2, "")
    lines = done.stderr.splitlines()
    assert "rules[0].max_ttl: must be 60..900, got 1000" in lines
    assert "rules[0].algorithms[0]: RS256 is not enabled in this deployment (enabled: ES384)" in lines
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("missing.json",), "'missing.json': cannot read: No such file or directory"),
        ((".",), "'.': cannot read: Is a directory"),
        (("x.json", "--algorithms", "HS256"), "the enabled algorithms must be distinct values of RS256, ES256, ES384"),
        (("x.json", "--max-ttl", "ten"), "argument --max-ttl: invalid int value: 'ten'"),
    ],
)
def test_cli_mistakes_exit_2_without_a_traceback(argv: tuple[str, ...], expected: str) -> None:
    done = cli(*argv)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_checks_against_the_deployments_limits_from_its_environment() -> None:
    """As the function will: CREDPORT_TOKEN_MAX_TTL and CREDPORT_TOKEN_ALGORITHMS, unless --max-ttl/--algorithms."""
    import os

    env = {**os.environ, "CREDPORT_TOKEN_MAX_TTL": "900", "CREDPORT_TOKEN_ALGORITHMS": "RS256,ES384"}
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.tokens.policy_check", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "must be 60..900" in done.stderr
    assert cli(EXAMPLE, "--max-ttl", "3600").returncode == 0
