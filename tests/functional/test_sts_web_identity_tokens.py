"""AssumeRoleWithWebIdentity checks the token as AWS STS does (local/iam/web_identity.py, local/iam/sts.py).

Sources: STS API Reference, AssumeRoleWithWebIdentity ("Errors"); IAM User Guide, "Create a role for OpenID
Connect federation", "Available keys for AWS OIDC federation", "Role chaining". The issuer here is a test IdP
whose JWKS the embedded STS gets through a plugged-in resolver; credport's own tokens are in
``test_sts_credport_tokens.py`` and, over HTTP on the local stack, in ``tests/e2e/test_sts_web_identity.py``.
moto alone accepts every token below (``test_sts_emulation.py::test_stock_moto_refuses_nothing``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey

from local.iam import sts as embedded_sts
from local.iam.jwks import IdpUnreachable, KeysUnavailable
from local.iam.web_identity import (
    MALFORMED,
    MAX_TOKEN_CHARS,
    NO_KEY,
    TOO_LONG,
    TOO_SHORT,
    WebIdentityRefused,
    verify_web_identity,
)
from tests.idp import TestIdp, unsigned

ACCOUNT = "123456789012"
ISSUER = "https://idp.example.test/tenant-7"
URL = "idp.example.test/tenant-7"  # how IAM stores the provider URL: no scheme; the condition-key prefix
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{URL}"
NOT_AUTHORIZED = {
    "status": 403,
    "Code": "AccessDenied",
    "Message": "Not authorized to perform sts:AssumeRoleWithWebIdentity",
}


def trust(provider: str = PROVIDER_ARN, **conditions: str) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
    }
    if conditions:
        statement["Condition"] = {"StringEquals": {f"{URL}:{k}": v for k, v in conditions.items()}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_role(name: str, document: str, **extra: Any) -> str:
    return str(
        boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=document, **extra)["Role"]["Arn"]
    )


def web_identity(token: str, role_arn: str, **extra: Any) -> dict[str, Any]:
    sts = boto3.client("sts")  # AssumeRoleWithWebIdentity is unsigned: the token is the only credential
    result: dict[str, Any] = sts.assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName="workload", WebIdentityToken=token, **extra
    )
    return result


def refusal(token: str, role_arn: str, **extra: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        web_identity(token, role_arn, **extra)
    response = caught.value.response
    return {"status": response["ResponseMetadata"]["HTTPStatusCode"], **response["Error"]}


@pytest.fixture
def idp(moto: None) -> Iterator[TestIdp]:
    """A registered IAM OIDC provider for the test IdP, its keys reachable by the embedded STS."""
    provider = TestIdp(ISSUER)
    iam = boto3.client("iam")
    arn = iam.create_open_id_connect_provider(
        Url=ISSUER, ClientIDList=["sts.amazonaws.com", "second-client"], ThumbprintList=["a" * 40]
    )
    assert arn["OpenIDConnectProviderArn"] == PROVIDER_ARN

    def resolver(issuer: str) -> Mapping[str, Any]:
        if issuer != ISSUER:
            raise KeysUnavailable(issuer)
        return provider.jwks

    with embedded_sts.use_jwks_resolver(resolver):
        yield provider


@pytest.fixture
def role(idp: TestIdp) -> str:
    return make_role("web", trust(aud="sts.amazonaws.com", sub="workload-1"), MaxSessionDuration=7200)


# Accepted ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_valid_token_gives_working_credentials_and_the_fields_sts_returns(idp: TestIdp, role: str, alg: str) -> None:
    answer = web_identity(idp.token(alg=alg), role)
    assert answer["SubjectFromWebIdentityToken"] == "workload-1"
    assert answer["Provider"] == ISSUER  # the API Reference: "the value of the iss field"
    assert answer["Audience"] == "sts.amazonaws.com"
    role_id = boto3.client("iam").get_role(RoleName="web")["Role"]["RoleId"]
    assert answer["AssumedRoleUser"] == {
        "AssumedRoleId": f"{role_id}:workload",
        "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/web/workload",
    }
    creds = answer["Credentials"]
    caller = boto3.client(
        "sts",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).get_caller_identity()
    assert caller["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/web/workload"


def test_azp_is_the_audience_when_the_token_has_one(idp: TestIdp) -> None:
    """IAM User Guide, "Available keys for AWS OIDC federation": ``<url>:aud`` is ``azp`` when present, and the
    client id check accepts it; ``aud`` is then ``<url>:oaud``."""
    arn = make_role("azp", trust(aud="sts.amazonaws.com"))
    answer = web_identity(idp.token(aud="https://some-api.example", azp="sts.amazonaws.com"), arn)
    assert answer["Audience"] == "sts.amazonaws.com"
    assert refusal(idp.token(aud="sts.amazonaws.com", azp="another-client"), arn) == {
        "Type": "Sender",
        **NOT_AUTHORIZED,
    }


def test_a_list_aud_is_accepted_when_one_value_is_a_client_id(idp: TestIdp) -> None:
    arn = make_role("listed", trust())
    assert (
        web_identity(idp.token(aud=["https://x.example", "sts.amazonaws.com"]), arn)["Audience"] == "sts.amazonaws.com"
    )


# Refused: the token -----------------------------------------------------------------------------------------


def _hs256(idp: TestIdp) -> str:
    payload = json.dumps(idp.claims()).encode()
    return jws.serialize_compact(
        {"alg": "HS256", "kid": "rsa-1"}, payload, OctKey.generate_key(256), algorithms=["HS256"]
    )


TOKENS: dict[str, tuple[Callable[[TestIdp], str], str, str]] = {
    "garbage": (lambda _: "not.a.jwt", "InvalidIdentityToken", "The ID Token provided is not a valid JWT."),
    "two segments": (
        lambda _: "aGVhZGVy.cGF5bG9hZA",
        "InvalidIdentityToken",
        "The ID Token provided is not a valid JWT.",
    ),
    "alg none": (
        lambda i: unsigned({"alg": "none", "kid": "rsa-1"}, i.claims()),
        "InvalidIdentityToken",
        'algorithm STS does not accept: "none"',
    ),
    "HS256 (symmetric)": (_hs256, "InvalidIdentityToken", 'algorithm STS does not accept: "HS256"'),
    "same kid, another key": (
        lambda i: i.token(key=RSAKey.generate_key(2048)),
        "InvalidIdentityToken",
        "its signature does not verify",
    ),
    "unknown kid": (lambda i: i.token(kid="rotated-away"), "InvalidIdentityToken", NO_KEY),
    "RS256 header naming the EC key": (lambda i: i.token(kid="ec-1"), "InvalidIdentityToken", NO_KEY),
    "expired": (
        lambda i: i.token(exp=1_600_000_000, iat=1_599_999_000),
        "ExpiredTokenException",
        "must be before the expiration date/time 1600000000",
    ),
    "not yet valid": (lambda i: i.token(nbf=4_000_000_000), "InvalidIdentityToken", "nbf is in the future"),
    "no aud": (lambda i: i.token(aud=None), "InvalidIdentityToken", "Missing a required claim: aud"),
    "no sub": (lambda i: i.token(sub=None), "InvalidIdentityToken", "Missing a required claim: sub"),
    "wrong aud": (lambda i: i.token(aud="api://someone-else"), "InvalidIdentityToken", "Incorrect token audience"),
    "issuer with no provider": (
        lambda i: i.token(iss="https://other.example.test"),
        "InvalidIdentityToken",
        "No OpenIDConnect provider found in your account for https://other.example.test",
    ),
    "http issuer (not loopback)": (
        lambda i: i.token(iss=f"http://{URL}"),
        "InvalidIdentityToken",
        f"No OpenIDConnect provider found in your account for http://{URL}",
    ),
}


@pytest.mark.parametrize("case", list(TOKENS))
def test_a_token_sts_would_refuse_is_refused_by_the_right_check(idp: TestIdp, role: str, case: str) -> None:
    build, code, message = TOKENS[case]
    answer = refusal(build(idp), role)
    assert (answer["status"], answer["Code"]) == (400, code)
    assert message in answer["Message"]


def test_the_issuers_keys_cannot_be_had(idp: TestIdp, role: str) -> None:
    def unreachable(issuer: str) -> Mapping[str, Any]:
        raise IdpUnreachable(issuer)

    def unusable(issuer: str) -> Mapping[str, Any]:
        raise KeysUnavailable(issuer)

    with embedded_sts.use_jwks_resolver(unreachable):
        answer = refusal(idp.token(), role)
    assert (answer["status"], answer["Code"]) == (400, "IDPCommunicationError")
    with embedded_sts.use_jwks_resolver(unusable):
        answer = refusal(idp.token(), role)
    assert (answer["status"], answer["Code"], answer["Message"]) == (400, "InvalidIdentityToken", NO_KEY)


def _token_of_length(idp: TestIdp, length: int) -> str:
    """A genuine token of exactly ``length`` characters, padded with a claim. Unpadded base64url never has a length
    of 4k+1, so one of the two algorithms (other header and signature lengths) may be needed to hit it."""
    for alg in ("RS256", "ES256"):
        base = len(idp.token(alg=alg, pad=""))
        for extra in range(max(0, (length - base) * 3 // 4 - 4), length):
            token = idp.token(alg=alg, pad="x" * extra)
            if len(token) >= length:
                if len(token) == length:
                    return token
                break
    raise AssertionError(f"no padding gives a token of {length} characters")


def test_the_token_length_is_checked_as_the_api_constrains_it(idp: TestIdp, role: str) -> None:
    """API Reference, AssumeRoleWithWebIdentity, WebIdentityToken: "Minimum length of 4. Maximum length of 20000."
    STS's request validation answers ValidationError before it reads the token: one character more than a valid
    token of the maximum length is refused by the length check, not by the signature check it would fail next."""
    longest = _token_of_length(idp, MAX_TOKEN_CHARS)
    assert web_identity(longest, role)["SubjectFromWebIdentityToken"] == "workload-1"  # the limit is inclusive
    assert refusal(longest + "A", role) == {
        "Type": "Sender",
        "status": 400,
        "Code": "ValidationError",
        "Message": TOO_LONG,
    }
    assert refusal("a" * MAX_TOKEN_CHARS, role)["Message"] == MALFORMED  # within the limit: read, and not a JWT
    # botocore refuses a token under 4 characters itself (ParamValidationError): the emulator's check, directly.
    with pytest.raises(WebIdentityRefused) as caught:
        verify_web_identity("a.b", providers={}, resolver=lambda _: {}, now=0)
    assert (caught.value.code, caught.value.message) == ("ValidationError", TOO_SHORT)


# Refused: the role -------------------------------------------------------------------------------------------


def test_the_trust_policy_conditions_on_sub_and_aud(idp: TestIdp, role: str) -> None:
    assert refusal(idp.token(sub="workload-2"), role) == {"Type": "Sender", **NOT_AUTHORIZED}
    # A client id of the provider passes the token checks; the role trusts only sts.amazonaws.com.
    assert refusal(idp.token(aud="second-client"), role) == {"Type": "Sender", **NOT_AUTHORIZED}
    assert web_identity(idp.token(), role)["Credentials"]


def test_a_role_trusting_another_provider_or_no_role_at_all(idp: TestIdp) -> None:
    other = make_role("other-idp", trust(f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"))
    assert refusal(idp.token(), other) == {"Type": "Sender", **NOT_AUTHORIZED}
    aws_principal = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRoleWithWebIdentity"}
            ],
        }
    )
    assert refusal(idp.token(), make_role("aws-only", aws_principal)) == {"Type": "Sender", **NOT_AUTHORIZED}
    assert refusal(idp.token(), f"arn:aws:iam::{ACCOUNT}:role/missing") == {"Type": "Sender", **NOT_AUTHORIZED}


def test_durations_and_chaining_from_a_web_identity_session(idp: TestIdp, role: str) -> None:
    answer = refusal(idp.token(), role, DurationSeconds=7201)
    assert (answer["Code"], answer["Message"]) == (
        "ValidationError",
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
    )
    creds = web_identity(idp.token(), role, DurationSeconds=7200)["Credentials"]
    target = make_role(
        "next-hop",
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
            }
        ),
        MaxSessionDuration=43200,
    )
    sts = boto3.client(
        "sts",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    with pytest.raises(ClientError) as caught:
        sts.assume_role(RoleArn=target, RoleSessionName="hop", DurationSeconds=7200)
    assert caught.value.response["Error"]["Message"] == (
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    )
    assert sts.assume_role(RoleArn=target, RoleSessionName="hop", DurationSeconds=3600)["Credentials"]


def test_session_tags_in_the_token_need_tag_session_in_the_trust_policy(idp: TestIdp) -> None:
    tags = {"principal_tags": {"team": ["blue"]}, "transitive_tag_keys": ["team"]}
    claims: dict[str, Any] = {"https://aws.amazon.com/tags": tags}
    token = idp.token(**claims)
    plain = make_role("no-tag-session", trust())
    assert refusal(token, plain) == {"Type": "Sender", **NOT_AUTHORIZED}
    statement = json.loads(trust())
    statement["Statement"][0]["Action"] = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]
    tagging = make_role("tag-session", json.dumps(statement))
    assert web_identity(token, tagging)["Credentials"]
