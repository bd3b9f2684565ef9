"""Mint plans: a warm container decides a caller's request once and, for the next identical one, only stamps and
signs (chalicelib/tokens/plans.py). Deployed-shape API Gateway events against moto, as test_token_v2.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import app as credport_app
from tests.functional.test_token_v2 import get, refused, token, v2  # noqa: F401 (v2: a fixture)
from tests.functional.test_tokens import ROLE_CALLER, ROLE_SESSION_ARN, caller_identity, decode

pytestmark = pytest.mark.usefixtures("callers_role", "v2")


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The audiences of every policy check the token service makes."""
    policy = credport_app.services().tokens.policy
    seen: list[tuple[str, ...]] = []
    check: Callable[..., Any] = policy.check

    def counted(request: Any) -> Any:
        seen.append(tuple(request.audiences))
        return check(request)

    monkeypatch.setattr(policy, "check", counted)
    return seen


def test_the_same_request_again_is_stamped_and_signed_only(checks: list[tuple[str, ...]]) -> None:
    first = token(("aud", "https://a.example.com"), ("tag.team", "blue"))
    second = token(("aud", "https://a.example.com"), ("tag.team", "blue"))
    assert checks == [("https://a.example.com",)]  # decided once
    (h1, c1, _), (h2, c2, _) = decode(first), decode(second)
    assert c1["jti"] != c2["jti"]
    assert h1 == h2
    assert c1["exp"] - c1["iat"] == c2["exp"] - c2["iat"] > 0
    assert c1["iat"] <= c2["iat"]  # stamped when issued, not when decided
    assert {k: v for k, v in c1.items() if k not in ("jti", "iat", "nbf", "exp")} == {
        k: v for k, v in c2.items() if k not in ("jti", "iat", "nbf", "exp")
    }


def test_any_difference_in_the_request_or_the_caller_is_decided_afresh(checks: list[tuple[str, ...]]) -> None:
    token(("aud", "https://a.example.com"))
    token(("aud", "https://b.example.com"))  # another audience
    token(("aud", "https://a.example.com"), ("ttl", "900"))  # another parameter
    token(("aud", "https://a.example.com"), ("aud", "https://b.example.com"))
    token(("aud", "https://b.example.com"), ("aud", "https://a.example.com"))  # the order is the claim's order
    other_session = caller_identity(ROLE_SESSION_ARN.replace("my-session", "other"), caller=ROLE_CALLER + "x")
    claims = decode(token(("aud", "https://a.example.com"), identity=other_session))[1]
    assert claims[f"{claims['iss']}/"]["session_name"] == "other"
    assert len(checks) == 6


def test_a_refusal_is_decided_every_time(checks: list[tuple[str, ...]], caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(2):
        assert refused(("aud", "https://evil.example"), status=403) == "audience_not_allowed"
    assert checks == [("https://evil.example",)] * 2 * 3  # each time, against each of the 3 algorithms enabled
    assert [r.getMessage() for r in caplog.records].count("token refused by policy") == 2


def test_every_token_is_audited_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    jtis = {decode(token(("aud", "https://a.example.com")))[1]["jti"] for _ in range(3)}
    audited = [vars(r) for r in caplog.records if r.getMessage() == "token issued"]
    assert {r["jti"] for r in audited} == jtis
    assert all(r["rule"] and r["sub"] and r["kid"] for r in audited)


def test_a_request_whose_token_is_too_large_is_never_kept(checks: list[tuple[str, ...]]) -> None:
    """At the size limit: the plan's size check uses a real time and jti length, so the first request refused as
    token_too_large leaves no plan behind, and the next is decided again (found by a hostile review)."""
    plans = credport_app.services().tokens._plans

    def query(k: int, m: int) -> list[tuple[str, str]]:
        tags = [(f"tag.k{i:02d}", "v" * 240) for i in range(k)]
        return [("aud", "https://a.example.com"), *tags, ("tag.last", "v" * m)]

    def status(k: int, m: int) -> int:
        plans.clear()
        return get("/token", query(k, m)).status

    k = next(k for k in range(30, 50) if status(k, 256) != 200)
    m = next(m for m in range(257) if status(k, m) != 200)  # the first size refused
    assert status(k, m - 1) == 200  # the largest allowed is kept
    assert len(plans) == 1
    plans.clear()
    checks.clear()
    for _ in range(2):
        assert refused(*query(k, m)) == "token_too_large"
    assert len(plans) == 0
    assert len(checks) == 2  # decided each time
