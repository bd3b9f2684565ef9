"""The mint plan cache (bounded, expiring, keyed by everything a decision reads) and the claims template that
makes a plan's tokens: the same bytes as serializing the claims whole."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.audit import PreparedFields
from chalicelib.identity import RequestIdentity
from chalicelib.principal import Principal
from chalicelib.tokens.claims import MAX_PAYLOAD_BYTES, ClaimsLayout, ClaimsTemplate
from chalicelib.tokens.exceptions import TokenTooLarge
from chalicelib.tokens.plans import MintPlan, MintPlans, plan_key

IDENTITY = RequestIdentity(
    user_arn="arn:aws:sts::123456789012:assumed-role/app/s1",
    account_id="123456789012",
    caller="AROAEXAMPLE:s1",
    user="AROAEXAMPLE:s1",
    access_key="ASIAEXAMPLE",
    source_ip="203.0.113.7",
)
PRINCIPAL = Principal(
    kind="role",
    subject="arn:aws:iam::123456789012:role/app",
    account_id="123456789012",
    caller_arn=IDENTITY.user_arn,
    unique_id="AROAEXAMPLE",
    session_name="s1",
    organization_id="o-abcdefghij",
    role_name="app",
    tags={"team": "blüe", "quote": 'say "hi"'},
    ou_path="o-abcdefghij/r-ab12/",
)


class MultiDict(dict[str, list[str]]):
    def getlist(self, name: str) -> list[str]:
        return self[name]


def plan(rule: str = "r") -> MintPlan:
    template = ClaimsTemplate(opening='{"iss":"i","sub":"s","aud":"a"', closing="}", ttl=60)
    return MintPlan(template, "ES256", PreparedFields({"rule": rule}, f'"rule":"{rule}"', frozenset({"rule"})))


def test_the_key_is_the_verified_caller_and_every_value_in_order() -> None:
    one = plan_key(IDENTITY, MultiDict(aud=["a", "b"]))
    assert one == plan_key(IDENTITY, MultiDict(aud=["a", "b"]))
    assert one != plan_key(IDENTITY, MultiDict(aud=["b", "a"]))
    assert one != plan_key(IDENTITY, MultiDict(aud=["a", "b"], ttl=["60"]))
    other = RequestIdentity(**{**IDENTITY.__dict__, "caller": "AROAEXAMPLE:s2"})
    assert one != plan_key(other, MultiDict(aud=["a", "b"]))
    in_org = RequestIdentity(**{**IDENTITY.__dict__, "principal_org_id": "o-abcdefghij"})
    assert one != plan_key(in_org, MultiDict(aud=["a", "b"]))
    other_account = RequestIdentity(**{**IDENTITY.__dict__, "account_id": "210987654321"})  # principal_of checks it
    assert one != plan_key(other_account, MultiDict(aud=["a", "b"]))
    assert plan_key(IDENTITY, None) == plan_key(IDENTITY, {})
    assert plan_key(IDENTITY, {"aud": "a"}) == plan_key(IDENTITY, MultiDict(aud=["a"]))


def test_plans_expire_and_the_least_recently_used_goes_first() -> None:
    now = [0.0]
    plans = MintPlans(ttl=60, max_entries=2, clock=lambda: now[0])
    a, b, c = (plan_key(IDENTITY, {"aud": x}) for x in "abc")
    plans.put(a, plan("a"))
    plans.put(b, plan("b"))
    assert plans.get(a) is not None  # a is now the most recently used
    plans.put(c, plan("c"))
    assert (plans.get(b), len(plans)) == (None, 2)
    now[0] = 59.9
    assert plans.get(a) is not None
    now[0] = 60.0
    assert plans.get(a) is None
    assert plans.get(c) is None


@pytest.mark.parametrize("layout", ["namespaced", "flat"])
@pytest.mark.parametrize("audience", ["sts.amazonaws.com", ["https://a", "https://b"]])
def test_a_template_makes_the_payload_serializing_the_claims_would(layout: str, audience: Any) -> None:
    claims_layout = ClaimsLayout(
        issuer="https://id.example.com", layout=layout, namespace="https://ns/", source_region="eu-west-1"
    )
    tags = {"env": "prød"}
    payload = claims_layout.build(
        PRINCIPAL, audience=audience, now=1_700_000_000, ttl=900, jti="a" * 24, request_tags=tags
    ).payload
    claims = json.loads(payload)
    assert list(claims)[:7] == ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]
    assert (claims["iat"], claims["nbf"], claims["exp"], claims["aud"]) == (
        1_700_000_000,
        1_700_000_000,
        1_700_000_900,
        audience,
    )
    assert payload == json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    identity = claims if layout == "flat" else claims["https://ns/"]
    assert identity[("aws_" if layout == "flat" else "") + "principal_tags"] == PRINCIPAL.tags
    assert identity[("aws_" if layout == "flat" else "") + "request_tags"] == tags


@pytest.mark.parametrize("jti", ["short", 'a"b' * 4, "a" * 129, "ok+slash/" * 2, "ünïcodé!"])
def test_a_jti_json_would_escape_is_refused(jti: str) -> None:
    template = ClaimsTemplate(opening='{"iss":"i"', closing="}", ttl=60)
    with pytest.raises(ValueError, match="jti"):
        template.complete(1, jti)


def test_a_payload_over_the_limit_is_refused_as_too_large() -> None:
    template = ClaimsTemplate(opening='{"iss":"' + "i" * MAX_PAYLOAD_BYTES + '"', closing="}", ttl=60)
    with pytest.raises(TokenTooLarge):
        template.complete(1, "a" * 24)


def test_a_ttl_is_an_int() -> None:
    layout = ClaimsLayout(issuer="i", layout="flat", namespace="", source_region="r")
    with pytest.raises(TypeError):
        layout.template(PRINCIPAL, audience="a", ttl=1.5, request_tags={})  # type: ignore[arg-type]
