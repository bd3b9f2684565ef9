"""credport's own tokens are web identities AWS STS accepts, in-process: the embedded STS verifies them against
the JWKS the app publishes (GET /.well-known/jwks.json), for an IAM OIDC provider registered for the issuer.
Over HTTP on the local stack: tests/e2e/test_sts_web_identity.py."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from local.iam import sts as embedded_sts
from local.iam.jwks import KeysUnavailable
from tests.functional.conftest import Configure
from tests.functional.test_tokens import SIGNERS, call, caller_identity, decode, request_token
from tests.support import existing_user

ACCOUNT = "123456789012"
ISSUER = "https://tokens.example.com/tenant-a"
URL = "tokens.example.com/tenant-a"
AUDIENCE = "sts.amazonaws.com"
# The workload asking credport for a token: an IAM user, as API Gateway reports one for a SigV4 request.
WORKLOAD = caller_identity(f"arn:aws:iam::{ACCOUNT}:user/workload-a", caller="AIDAEXAMPLEWORKLOAD01")


@pytest.fixture
def published_keys(configure: Configure) -> Iterator[None]:
    """STS fetches credport's keys where credport publishes them (here: the app's JWKS route, in-process)."""

    def resolver(issuer: str) -> Mapping[str, Any]:
        if issuer != ISSUER:
            raise KeysUnavailable(issuer)
        reply = call("/.well-known/jwks.json")
        assert reply.status == 200
        return reply.body

    with embedded_sts.use_jwks_resolver(resolver):
        yield


def credport_token(signer: str, configure: Configure) -> tuple[str, dict[str, Any], dict[str, Any]]:
    configure({"CREDPORT_ISSUER": ISSUER, "CREDPORT_TOKEN_AUDIENCES": AUDIENCE, "CREDPORT_TOKEN_SIGNER": signer})
    existing_user("workload-a", "AIDAEXAMPLEWORKLOAD01")  # credport reads a same-account user's tags (GetUser)
    reply = request_token(WORKLOAD, aud=AUDIENCE)
    assert reply.status == 200, reply.body
    token = str(reply.body["token"])
    header, claims, _ = decode(token)
    return token, header, claims


def trusting_role(subject: str) -> str:
    provider = boto3.client("iam").create_open_id_connect_provider(
        Url=ISSUER, ClientIDList=[AUDIENCE], ThumbprintList=["0" * 40]
    )["OpenIDConnectProviderArn"]
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{URL}:aud": AUDIENCE, f"{URL}:sub": subject}},
    }
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    return str(
        boto3.client("iam").create_role(RoleName="trusts-credport", AssumeRolePolicyDocument=document)["Role"]["Arn"]
    )


def assume(token: str, role_arn: str) -> dict[str, Any]:
    answer: dict[str, Any] = boto3.client("sts").assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName="from-credport", WebIdentityToken=token
    )
    return answer


@pytest.mark.usefixtures("published_keys")
@pytest.mark.parametrize("signer", SIGNERS)
def test_a_credport_token_assumes_a_role_that_trusts_credport(configure: Configure, signer: str) -> None:
    token, _, claims = credport_token(signer, configure)
    role_arn = trusting_role(claims["sub"])
    answer = assume(token, role_arn)
    assert (answer["SubjectFromWebIdentityToken"], answer["Provider"], answer["Audience"]) == (
        claims["sub"],
        ISSUER,
        AUDIENCE,
    )
    creds = answer["Credentials"]
    caller = boto3.client(
        "sts",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).get_caller_identity()
    assert caller["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/trusts-credport/from-credport"


@pytest.mark.usefixtures("published_keys")
@pytest.mark.parametrize("signer", SIGNERS)
def test_a_token_forged_under_credports_kid_is_refused(configure: Configure, signer: str) -> None:
    token, header, claims = credport_token(signer, configure)
    role_arn = trusting_role(claims["sub"])
    forger = RSAKey.generate_key(2048) if header["alg"].startswith("RS") else ECKey.generate_key("P-256")
    forged = jws.serialize_compact(header, json.dumps(claims).encode(), forger, algorithms=[header["alg"]])
    with pytest.raises(ClientError) as caught:
        assume(forged, role_arn)
    assert caught.value.response["Error"]["Code"] == "InvalidIdentityToken"
    assert "signature does not verify" in caught.value.response["Error"]["Message"]
    assert assume(token, role_arn)["Credentials"]  # the genuine token, same role: accepted


@pytest.mark.usefixtures("published_keys")
def test_another_workloads_credport_token_does_not_match_the_sub_condition(configure: Configure) -> None:
    token, _, claims = credport_token("kms", configure)
    role_arn = trusting_role(claims["sub"] + "-someone-else")
    with pytest.raises(ClientError) as caught:
        assume(token, role_arn)
    assert caught.value.response["Error"] == {
        "Type": "Sender",
        "Code": "AccessDenied",
        "Message": "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    }
