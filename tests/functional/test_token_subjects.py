"""``sub`` of a role session is the role's real ARN, path included, through GET /token and POST /session.

An assumed-role ARN (``arn:aws:sts::A:assumed-role/R/S``) never carries the role's path; credport reads it with
iam:GetRole, once per role and container. Requests are API Gateway proxy events with the IAM identity AWS
fills in (chalice's test client fills none), against moto with the role created in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client
from joserfc.util import urlsafe_b64decode

import app as credport_app
from chalicelib.services import Services
from tests.functional.test_tokens import aws_identity
from tests.support import existing_role, gateway_event

ACCOUNT = "123456789012"
ROLE_ID = "AROATEAMREADER0001"
PATH_ARN = f"arn:aws:iam::{ACCOUNT}:role/team/data/reader"


@pytest.fixture
def app(services: Services) -> None:
    """The app, with a composition root of its own for the test (no role read yet)."""


def identity(role: str = "reader", role_id: str = ROLE_ID, account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "userArn": f"arn:aws:sts::{account}:assumed-role/{role}/job-7",
        "accountId": account,
        "caller": f"{role_id}:job-7",
        "user": f"{role_id}:job-7",
        "accessKey": "ASIAEXAMPLEKEY000001",
        "sourceIp": "203.0.113.7",
    }


def call(path: str, who: Mapping[str, Any], method: str = "GET") -> tuple[int, dict[str, Any], dict[str, str]]:
    response = credport_app.app(gateway_event(path, who, method=method), None)
    return response["statusCode"], json.loads(response["body"]), dict(response["headers"])


def token_claims(who: Mapping[str, Any]) -> dict[str, Any]:
    status, body, _ = call("/token", who)
    assert status == 200, body
    return dict(json.loads(urlsafe_b64decode(body["token"].split(".")[1].encode())))


def iam_calls() -> list[str]:
    calls: list[str] = []
    credport_app.services().aws.factory.client("iam").meta.events.register(
        "before-call.iam", lambda model, **_: calls.append(model.name)
    )
    return calls


def test_a_role_with_a_path_gets_its_real_arn_as_sub(app: None) -> None:
    assert existing_role("reader", ROLE_ID, path="/team/data/") == PATH_ARN
    claims = token_claims(identity())
    assert claims["sub"] == PATH_ARN  # not arn:aws:iam::A:role/reader
    caller = aws_identity(claims)  # the caller's session, as verified
    assert (caller["principal_id"], caller["session_name"]) == (ROLE_ID, "job-7")


def test_a_session_of_a_role_with_a_path_names_its_real_arn(app: None) -> None:
    existing_role("reader", ROLE_ID, path="/team/data/")
    status, started, _ = call("/session", identity(), method="POST")
    assert status == 200, started
    with Client(credport_app.app, stage_name="dev") as client:
        shown = client.http.get("/session", headers={"Authorization": f"Bearer {started['token']}"})
    assert json.loads(shown.body)["sub"] == PATH_ARN


def test_a_warm_container_reads_each_role_once(app: None) -> None:
    existing_role("reader", ROLE_ID, path="/team/data/")
    existing_role("writer", "AROAWRITER00000001")
    token_claims(identity())  # cold: the role is read here
    calls = iam_calls()
    for _ in range(5):
        assert token_claims(identity())["sub"] == PATH_ARN
    assert calls == []  # no IAM call per token
    assert token_claims(identity("writer", "AROAWRITER00000001"))["sub"] == f"arn:aws:iam::{ACCOUNT}:role/writer"
    assert calls == ["GetRole"]  # another role: read once, too


def test_a_role_of_another_account_keeps_the_arn_without_its_path_and_costs_no_call(app: None) -> None:
    """GetRole reads credport's own account only: another account's path (and tags) are unknowable; principal_id
    (the role's unique id) identifies it exactly."""
    existing_role("reader", ROLE_ID, path="/team/data/")
    token_claims(identity())
    calls = iam_calls()
    claims = token_claims(identity(role_id="AROAOTHERACCOUNT01", account="210987654321"))
    assert claims["sub"] == "arn:aws:iam::210987654321:role/reader"
    caller = aws_identity(claims)
    assert (caller["aws_account"], caller["principal_id"]) == ("210987654321", "AROAOTHERACCOUNT01")
    assert "principal_tags" not in caller  # unknown, never claimed empty
    assert calls == []


def test_an_unreadable_role_is_a_retryable_503_never_a_500_or_a_guessed_sub(app: None) -> None:
    # The role is not there yet (IAM is eventually consistent): no token, a 503 the caller may retry.
    status, body, headers = call("/token", identity())
    assert (status, body["error"], headers["Retry-After"]) == (503, "service_unavailable", "5")
    status, body, _ = call("/session", identity(), method="POST")
    assert (status, body["error"]) == (503, "service_unavailable")
    existing_role("reader", ROLE_ID, path="/team/data/")
    assert token_claims(identity())["sub"] == PATH_ARN  # the failure was not cached


def test_a_throttled_lookup_is_a_503(app: None) -> None:
    existing_role("reader", ROLE_ID, path="/team/data/")

    def throttle(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetRole")

    credport_app.services().aws.factory.client("iam").meta.events.register("before-call.iam.GetRole", throttle)
    status, body, headers = call("/token", identity())
    assert (status, body["error"], headers["Retry-After"]) == (503, "service_unavailable", "2")


def test_a_session_of_a_deleted_and_re_created_role_gets_no_token(app: None) -> None:
    existing_role("reader", "AROAREADERTODAY001", path="/moved/")
    status, body, _ = call("/token", identity(role_id="AROAREADERLASTWEEK"))
    assert (status, body["error"]) == (503, "service_unavailable")
