"""The embedded STS refuses what AWS STS refuses (local/iam/sts.py), in-process under moto.mock_aws.

AssumeRole: STS API Reference, AssumeRole ("Errors"); IAM User Guide, "Role chaining", "IAM JSON policy elements:
Principal". moto 5.2.5 alone mints credentials for a missing role, an untrusting role, and any duration: every
refusal test below fails on stock moto (``test_stock_moto_refuses_nothing`` shows it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local.iam import sts as embedded_sts

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
DEFAULT_USER = f"arn:aws:iam::{ACCOUNT}:user/moto"  # what the suite's dummy "testing" keys stand for
CHAINING = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
MAX_DURATION = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."


def trust(principal: Any, *, action: Any = "sts:AssumeRole", **extra: Any) -> str:
    statement = {"Effect": "Allow", "Principal": principal, "Action": action, **extra}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def role(name: str, document: str, **extra: Any) -> str:
    return str(
        boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=document, **extra)["Role"]["Arn"]
    )


def sts_as(creds: dict[str, str] | None = None) -> Any:
    if creds is None:
        return boto3.client("sts")
    return boto3.client(
        "sts",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
    )


def user(name: str) -> tuple[str, dict[str, str]]:
    iam = boto3.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


def refused(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response: dict[str, Any] = caught.value.response
    return {"status": response["ResponseMetadata"]["HTTPStatusCode"], **response["Error"]}


def denied(caller: str, role_arn: str) -> dict[str, Any]:
    message = f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    return {"status": 403, "Type": "Sender", "Code": "AccessDenied", "Message": message}


@pytest.fixture(autouse=True)
def _moto(moto: None) -> None:
    """Every test here runs in mock_aws with the embedded STS installed (by the ``moto`` fixture)."""


# Role existence and trust ------------------------------------------------------------------------------------


def test_a_missing_role_is_access_denied_naming_the_caller() -> None:
    missing = f"arn:aws:iam::{ACCOUNT}:role/never-created"
    assert refused(sts_as().assume_role, RoleArn=missing, RoleSessionName="s1") == denied(DEFAULT_USER, missing)


def test_an_untrusting_role_answers_exactly_like_a_missing_one() -> None:
    arn = role("trusts-another-account", trust({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}))
    assert refused(sts_as().assume_role, RoleArn=arn, RoleSessionName="s1") == denied(DEFAULT_USER, arn)
    empty = role("trusts-nobody", json.dumps({"Version": "2012-10-17", "Statement": []}))
    assert refused(sts_as().assume_role, RoleArn=empty, RoleSessionName="s1") == denied(DEFAULT_USER, empty)


def test_a_role_with_a_path_is_assumed_by_its_full_arn() -> None:
    arn = role("pathed", trust({"AWS": ACCOUNT}), Path="/team/")
    assert arn == f"arn:aws:iam::{ACCOUNT}:role/team/pathed"
    assumed = sts_as().assume_role(RoleArn=arn, RoleSessionName="s1")["AssumedRoleUser"]["Arn"]
    assert assumed == f"arn:aws:sts::{ACCOUNT}:assumed-role/pathed/s1"  # assumed-role ARNs carry no path


def test_a_role_arn_that_is_no_arn_is_a_validation_error() -> None:
    answer = refused(sts_as().assume_role, RoleArn="role/not-an-arn-at-all", RoleSessionName="s1")
    assert (answer["status"], answer["Code"], answer["Message"]) == (400, "ValidationError", "Request ARN is invalid")


@pytest.mark.parametrize(
    ("principal", "alice", "bob"),
    [
        ({"AWS": ACCOUNT}, True, True),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, True, True),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, True, False),
        ({"AWS": [f"arn:aws:iam::{ACCOUNT}:user/bob", f"arn:aws:iam::{OTHER_ACCOUNT}:root"]}, False, True),
        ("*", True, True),
        ({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}, False, False),
        ({"Service": "lambda.amazonaws.com"}, False, False),
    ],
)
def test_trust_policy_principals(principal: Any, alice: bool, bob: bool) -> None:
    arn = role("target", trust(principal))
    for name, trusted in (("alice", alice), ("bob", bob)):
        user_arn, creds = user(name)
        if trusted:
            assumed = sts_as(creds).assume_role(RoleArn=arn, RoleSessionName=name)
            assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/target/{name}"
        else:
            assert refused(sts_as(creds).assume_role, RoleArn=arn, RoleSessionName=name) == denied(user_arn, arn)


def test_a_role_arn_principal_trusts_that_roles_sessions_only() -> None:
    first = role("first", trust({"AWS": ACCOUNT}))
    second = role("second", trust({"AWS": first}))
    session = sts_as().assume_role(RoleArn=first, RoleSessionName="hop")["Credentials"]
    chained = sts_as(session).assume_role(RoleArn=second, RoleSessionName="hop2")
    assert chained["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/second/hop2"
    # The role's own ARN does not name an IAM user, nor moto's default identity.
    alice_arn, alice = user("alice")
    assert refused(sts_as(alice).assume_role, RoleArn=second, RoleSessionName="a2") == denied(alice_arn, second)
    assert refused(sts_as().assume_role, RoleArn=second, RoleSessionName="d2") == denied(DEFAULT_USER, second)


def test_external_id_condition() -> None:
    arn = role("vendor", trust({"AWS": ACCOUNT}, Condition={"StringEquals": {"sts:ExternalId": "ext-123"}}))
    assert refused(sts_as().assume_role, RoleArn=arn, RoleSessionName="s1") == denied(DEFAULT_USER, arn)
    wrong = refused(sts_as().assume_role, RoleArn=arn, RoleSessionName="s1", ExternalId="ext-999")
    assert wrong == denied(DEFAULT_USER, arn)
    assert sts_as().assume_role(RoleArn=arn, RoleSessionName="s1", ExternalId="ext-123")["Credentials"]


def test_principal_arn_condition_sees_the_role_of_a_session() -> None:
    first = role("ci-runner", trust({"AWS": ACCOUNT}), Path="/ci/")
    condition = {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/ci/*"}}
    target = role("deployer", trust({"AWS": ACCOUNT}, Condition=condition))
    assert refused(sts_as().assume_role, RoleArn=target, RoleSessionName="s1") == denied(DEFAULT_USER, target)
    session = sts_as().assume_role(RoleArn=first, RoleSessionName="job-7")["Credentials"]
    assumed = sts_as(session).assume_role(RoleArn=target, RoleSessionName="deploy")
    assert assumed["AssumedRoleUser"]["Arn"].endswith(":assumed-role/deployer/deploy")


def test_principal_org_id_condition() -> None:
    org = boto3.client("organizations").create_organization(FeatureSet="ALL")["Organization"]["Id"]
    ours = role("org-only", trust({"AWS": ACCOUNT}, Condition={"StringEquals": {"aws:PrincipalOrgID": org}}))
    theirs = role("other-org", trust({"AWS": ACCOUNT}, Condition={"StringEquals": {"aws:PrincipalOrgID": "o-zzz"}}))
    assert sts_as().assume_role(RoleArn=ours, RoleSessionName="s1")["Credentials"]
    assert refused(sts_as().assume_role, RoleArn=theirs, RoleSessionName="s1") == denied(DEFAULT_USER, theirs)


def test_session_tags_need_tag_session_in_the_trust_policy() -> None:
    plain = role("no-tags", trust({"AWS": ACCOUNT}))
    tags = [{"Key": "team", "Value": "blue"}]
    assert refused(sts_as().assume_role, RoleArn=plain, RoleSessionName="s1", Tags=tags) == denied(DEFAULT_USER, plain)
    tagging = role("tags", trust({"AWS": ACCOUNT}, action=["sts:AssumeRole", "sts:TagSession"]))
    assert sts_as().assume_role(RoleArn=tagging, RoleSessionName="s1", Tags=tags)["Credentials"]


# Durations and role chaining --------------------------------------------------------------------------------


def test_duration_cannot_exceed_the_roles_max_session_duration() -> None:
    short = role("short", trust({"AWS": ACCOUNT}))  # MaxSessionDuration defaults to one hour
    answer = refused(sts_as().assume_role, RoleArn=short, RoleSessionName="s1", DurationSeconds=3601)
    assert (answer["status"], answer["Code"], answer["Message"]) == (400, "ValidationError", MAX_DURATION)
    long = role("long", trust({"AWS": ACCOUNT}), MaxSessionDuration=43200)
    creds = sts_as().assume_role(RoleArn=long, RoleSessionName="s1", DurationSeconds=43200)["Credentials"]
    assert creds["Expiration"] - dt.datetime.now(dt.UTC) > dt.timedelta(hours=11, minutes=59)
    over = refused(sts_as().assume_role, RoleArn=long, RoleSessionName="s1", DurationSeconds=43201)
    assert over["Code"] == "ValidationError"
    assert "Member must have value less than or equal to 43200" in over["Message"]


def test_role_chaining_caps_the_session_at_one_hour() -> None:
    long = role("long", trust({"AWS": ACCOUNT}), MaxSessionDuration=43200)
    # An IAM user (here moto's default identity) may take the role's full maximum ...
    session = sts_as().assume_role(RoleArn=long, RoleSessionName="first", DurationSeconds=7200)["Credentials"]
    # ... a role session may not, whatever the role allows.
    answer = refused(sts_as(session).assume_role, RoleArn=long, RoleSessionName="second", DurationSeconds=7200)
    assert (answer["status"], answer["Code"], answer["Message"]) == (400, "ValidationError", CHAINING)
    assert sts_as(session).assume_role(RoleArn=long, RoleSessionName="second", DurationSeconds=3600)["Credentials"]
    assert sts_as(session).assume_role(RoleArn=long, RoleSessionName="third")["Credentials"]  # default: 1 hour


# Who the caller is ------------------------------------------------------------------------------------------


def test_a_session_key_with_a_wrong_token_is_refused_not_treated_as_an_administrator() -> None:
    arn = role("open", trust({"AWS": ACCOUNT}))
    creds = sts_as().assume_role(RoleArn=arn, RoleSessionName="s1")["Credentials"]
    answer = refused(sts_as({**creds, "SessionToken": "forged"}).assume_role, RoleArn=arn, RoleSessionName="s2")
    assert (answer["status"], answer["Code"]) == (403, "InvalidClientTokenId")


def test_an_expired_session_is_refused() -> None:
    from moto.sts.models import sts_backends

    arn = role("open", trust({"AWS": ACCOUNT}))
    creds = sts_as().assume_role(RoleArn=arn, RoleSessionName="s1")["Credentials"]
    session = next(s for s in sts_backends[ACCOUNT]["aws"].assumed_roles if s.access_key_id == creds["AccessKeyId"])
    session.expiration = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
    answer = refused(sts_as(creds).assume_role, RoleArn=arn, RoleSessionName="s2")
    assert answer == {
        "status": 403,
        "Type": "Sender",
        "Code": "ExpiredToken",
        "Message": "The security token included in the request is expired",
    }


def test_an_inactive_user_key_is_refused() -> None:
    arn = role("open", trust({"AWS": ACCOUNT}))
    _, creds = user("alice")
    boto3.client("iam").update_access_key(UserName="alice", AccessKeyId=creds["AccessKeyId"], Status="Inactive")
    answer = refused(sts_as(creds).assume_role, RoleArn=arn, RoleSessionName="s1")
    assert (answer["status"], answer["Code"]) == (403, "InvalidClientTokenId")


# The patch itself -------------------------------------------------------------------------------------------


@pytest.fixture
def stock_moto() -> Iterator[None]:
    embedded_sts.uninstall()
    try:
        yield
    finally:
        embedded_sts.install()


@pytest.mark.usefixtures("stock_moto")
def test_stock_moto_refuses_nothing() -> None:
    """What the old suite ran against: every refusal above is a pass on moto alone."""
    assert not embedded_sts.installed()
    missing = f"arn:aws:iam::{ACCOUNT}:role/never-created"
    assert sts_as().assume_role(RoleArn=missing, RoleSessionName="s1", DurationSeconds=43200)["Credentials"]
    token = sts_as().assume_role_with_web_identity(RoleArn=missing, RoleSessionName="s1", WebIdentityToken="not.a.jwt")
    assert token["Credentials"]


def test_install_is_idempotent() -> None:
    from moto.sts.responses import TokenResponse

    patched = TokenResponse.assume_role
    embedded_sts.install()
    embedded_sts.install()
    assert TokenResponse.assume_role is patched
    assert embedded_sts.installed()


def test_a_trust_policy_the_embedded_iam_cannot_evaluate_fails_loudly() -> None:
    """Never a silent match or miss: an unknown condition key is an immediate, non-AWS 400 saying so."""
    arn = role("odd", trust({"AWS": ACCOUNT}, Condition={"StringEquals": {"credport:NoSuchKey": "x"}}))
    answer = refused(sts_as().assume_role, RoleArn=arn, RoleSessionName="s1")
    assert (answer["status"], answer["Code"]) == (400, "EmbeddedIamUnsupported")
    assert "credport:NoSuchKey" in answer["Message"]
