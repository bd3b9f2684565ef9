"""STS on the local stack as AWS runs it: a credport token is a web identity AWS STS accepts (one audience or several,
RS256 or ES384); a forged one, one for another audience, an expired one and one over the API's length limit are
not; and AssumeRole checks roles, trust and role chaining (local/iam/sts.py in the stack's ThreadedMotoServer).
This is issue #18's acceptance, end to end.

The embedded STS fetches the issuers' keys over HTTP from loopback addresses (local/iam/jwks.py): the stack's own
``/.well-known/openid-configuration`` for credport tokens, a test IdP on 127.0.0.1 for the hand-made ones.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from joserfc.util import urlsafe_b64decode

from local.iam.web_identity import MAX_TOKEN_CHARS, TOO_LONG
from tests.e2e.conftest import RunningStack
from tests.e2e.test_token_service import get_token
from tests.e2e.test_token_v2 import signed_get
from tests.idp import TestIdp, served, unsigned

pytestmark = pytest.mark.e2e
ACCOUNT = "123456789012"
AUDIENCE = "sts.amazonaws.com"
# An audience the local stack lets credport sign for (local/stack.py: CREDPORT_TOKEN_AUDIENCES defaults to
# "sts.amazonaws.com,https://*" there) that is not the IAM provider's client id, which the role's trust names.
OTHER_AUDIENCE = "https://relying-party.example.com"


def _token(stack: RunningStack, *query: tuple[str, str]) -> str:
    """A credport token for ``query``'s pairs (``aud`` may repeat), encoded as SigV4 canonicalises a query."""
    return str(get_token(stack, "?" + urlencode(query, quote_via=quote))["token"])


def _claims(token: str) -> dict[str, Any]:
    header, payload, _ = token.split(".")
    return {"header": json.loads(urlsafe_b64decode(header.encode())), **json.loads(urlsafe_b64decode(payload.encode()))}


def _anonymous_sts(stack: RunningStack) -> Any:
    """AssumeRoleWithWebIdentity is unsigned on AWS: the token is the only credential."""
    return boto3.session.Session(region_name=stack.info["region"]).client(
        "sts", endpoint_url=stack.info["aws_endpoint"], config=Config(signature_version=UNSIGNED)
    )


def _provider(stack: RunningStack, issuer: str) -> str:
    iam = stack.client("iam")
    try:
        created = iam.create_open_id_connect_provider(Url=issuer, ClientIDList=[AUDIENCE], ThumbprintList=["0" * 40])
        return str(created["OpenIDConnectProviderArn"])
    except iam.exceptions.EntityAlreadyExistsException:
        return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer.split('://', 1)[1]}"


def _federated_role(stack: RunningStack, name: str, provider_arn: str, operator: str = "StringEquals") -> str:
    """A role trusting the provider's tokens for AUDIENCE only, as the IAM console writes it (``<provider>:aud``)."""
    provider = provider_arn.split(":oidc-provider/", 1)[1]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {operator: {f"{provider}:aud": AUDIENCE}},
            }
        ],
    }
    role = stack.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])


def _refusal(stack: RunningStack, token: str, role_arn: str) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        _anonymous_sts(stack).assume_role_with_web_identity(
            RoleArn=role_arn, RoleSessionName="e2e-forged", WebIdentityToken=token
        )
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


@pytest.fixture(scope="module")
def credport_role(stack: RunningStack) -> str:
    """A role that trusts credport's issuer (the stack's API URL) registered as an IAM OIDC provider."""
    return _federated_role(stack, "e2e-trusts-credport", _provider(stack, stack.api))


@pytest.fixture(scope="module")
def test_idp(stack: RunningStack) -> Iterator[tuple[TestIdp, str]]:
    """A second issuer on 127.0.0.1, registered as a provider too, for tokens credport would never sign."""
    with served() as (idp, _):
        yield idp, _federated_role(stack, "e2e-trusts-test-idp", _provider(stack, idp.issuer))


@pytest.fixture(scope="module", autouse=True)
def short_lived_token(stack: RunningStack) -> str:
    """A token of 60 seconds (the shortest credport signs), minted as the module starts (autouse) so that the test
    needing it expired, the module's last, waits only for what the other tests left of its minute."""
    return _token(stack, ("aud", AUDIENCE), ("ttl", "60"))


def test_a_credport_token_is_a_web_identity_sts_accepts(stack: RunningStack, credport_role: str) -> None:
    token = get_token(stack, f"?aud={AUDIENCE}")["token"]
    claims = _claims(token)
    answer = _anonymous_sts(stack).assume_role_with_web_identity(
        RoleArn=credport_role, RoleSessionName="e2e-web", WebIdentityToken=token
    )
    assert answer["SubjectFromWebIdentityToken"] == claims["sub"]
    assert answer["Provider"] == stack.api
    assert answer["Audience"] == AUDIENCE
    creds = answer["Credentials"]
    caller = boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=stack.info["region"],
    ).client("sts", endpoint_url=stack.info["aws_endpoint"])
    assert caller.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/e2e-trusts-credport/e2e-web"


def test_the_sdk_web_identity_provider_runs_on_a_credport_token(
    stack: RunningStack, credport_role: str, tmp_path: Path
) -> None:
    """What a workload does on AWS: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, and the SDK calls STS itself."""
    token_file = tmp_path / "token"
    token_file.write_text(get_token(stack, f"?aud={AUDIENCE}")["token"])
    script = (
        "import boto3;"
        f"print(boto3.client('sts', endpoint_url={stack.info['aws_endpoint']!r}).get_caller_identity()['Arn'])"
    )
    env = {
        **{k: v for k, v in stack.env().items() if not k.startswith("AWS_")},
        "AWS_ROLE_ARN": credport_role,
        "AWS_ROLE_SESSION_NAME": "sdk-session",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_DEFAULT_REGION": stack.info["region"],
        "AWS_ENDPOINT_URL": stack.info["aws_endpoint"],
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"arn:aws:sts::{ACCOUNT}:assumed-role/e2e-trusts-credport/sdk-session"


def test_forged_credport_tokens_are_refused_by_the_check_sts_makes(stack: RunningStack, credport_role: str) -> None:
    token = get_token(stack, f"?aud={AUDIENCE}")["token"]
    claims = _claims(token)
    header = claims.pop("header")
    payload = json.dumps(claims).encode()
    other_key = RSAKey.generate_key(2048) if header["alg"].startswith("RS") else ECKey.generate_key("P-256")
    same_kid = jws.serialize_compact(header, payload, other_key, algorithms=[header["alg"]])
    assert _refusal(stack, same_kid, credport_role)[:2] == (400, "InvalidIdentityToken")
    assert "signature does not verify" in _refusal(stack, same_kid, credport_role)[2]

    alg_none = unsigned({"alg": "none", "typ": "JWT", "kid": header["kid"]}, claims)
    assert _refusal(stack, alg_none, credport_role) == (
        400,
        "InvalidIdentityToken",
        'The ID Token is signed with an algorithm STS does not accept: "none"',
    )
    status, code, message = _refusal(stack, "not.a.jwt", credport_role)
    assert (status, code) == (400, "InvalidIdentityToken")
    assert message.startswith("The ID Token provided is not a valid JWT.")


def test_tokens_of_another_issuer_are_checked_against_its_own_keys(
    stack: RunningStack, test_idp: tuple[TestIdp, str]
) -> None:
    idp, role = test_idp
    assert _anonymous_sts(stack).assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="e2e-idp", WebIdentityToken=idp.token()
    )["Credentials"]
    assert idp.hits >= 2  # the stack fetched the test IdP's discovery document and JWKS over loopback HTTP

    assert _refusal(stack, idp.token(aud="api://someone-else"), role) == (
        400,
        "InvalidIdentityToken",
        "Incorrect token audience",
    )
    status, code, message = _refusal(stack, idp.token(exp=1_600_000_000, iat=1_599_999_000), role)
    assert (status, code) == (400, "ExpiredTokenException")
    assert message.endswith("must be before the expiration date/time 1600000000")


def test_an_issuer_with_no_provider_is_refused(stack: RunningStack, credport_role: str) -> None:
    with served() as (stranger, _):
        status, code, message = _refusal(stack, stranger.token(), credport_role)
    assert (status, code) == (400, "InvalidIdentityToken")
    assert message == f"No OpenIDConnect provider found in your account for {stranger.issuer}"
    assert stranger.hits == 0  # STS looks for the provider first: no provider, no fetch


def test_a_credport_token_for_a_role_that_trusts_another_issuer(
    stack: RunningStack, test_idp: tuple[TestIdp, str]
) -> None:
    _, role_trusting_the_test_idp = test_idp
    token = get_token(stack, f"?aud={AUDIENCE}")["token"]
    assert _refusal(stack, token, role_trusting_the_test_idp) == (
        403,
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
    )


def test_an_es384_token_is_accepted_and_no_token_shares_the_sts_audience(
    stack: RunningStack, credport_role: str
) -> None:
    """ES384, credport's second default algorithm, is one STS takes. A token for several audiences is never for STS:
    STS accepts an ``aud`` array when any of its values is a client id of the provider, so every other audience's
    holder could exchange it for credentials; credport refuses to sign one (CREDPORT_TOKEN_EXCLUSIVE_AUDIENCES)."""
    es384 = _token(stack, ("aud", AUDIENCE), ("alg", "ES384"))
    assert _claims(es384)["header"]["alg"] == "ES384"
    answer = _anonymous_sts(stack).assume_role_with_web_identity(
        RoleArn=credport_role, RoleSessionName="e2e-v2", WebIdentityToken=es384
    )
    assert answer["Audience"] == AUDIENCE
    assert answer["SubjectFromWebIdentityToken"] == _claims(es384)["sub"]
    refused = signed_get(stack, [("aud", OTHER_AUDIENCE), ("aud", AUDIENCE)])
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_audience")


def test_a_credport_token_for_another_audience_is_refused(stack: RunningStack, credport_role: str) -> None:
    """credport signs it (the stack allows the audience), but the IAM provider's only client id, the audience the
    role's trust policy names, is not in it: STS's audience check refuses it before the trust policy is read."""
    token = _token(stack, ("aud", OTHER_AUDIENCE))
    assert _claims(token)["aud"] == OTHER_AUDIENCE
    assert _refusal(stack, token, credport_role) == (400, "InvalidIdentityToken", "Incorrect token audience")
    several_others = _token(stack, ("aud", OTHER_AUDIENCE), ("aud", "https://another.example.com"))
    assert _refusal(stack, several_others, credport_role) == (400, "InvalidIdentityToken", "Incorrect token audience")


def test_a_token_over_the_apis_length_limit_is_a_validation_error(stack: RunningStack, credport_role: str) -> None:
    """API Reference, AssumeRoleWithWebIdentity: WebIdentityToken is 4 to 20000 characters, and STS's request
    validation refuses a longer one (ValidationError) before reading it. credport's own tokens stay under the limit
    (chalicelib/tokens/claims.py caps the claims at 12 KiB): one with fifty long request tags is accepted."""
    status, code, message = _refusal(stack, "a" * (MAX_TOKEN_CHARS + 1), credport_role)
    assert (status, code, message) == (400, "ValidationError", TOO_LONG)
    status, code, _ = _refusal(stack, "a" * MAX_TOKEN_CHARS, credport_role)
    assert (status, code) == (400, "InvalidIdentityToken")  # at the limit: read, and not a JWT

    big = _token(stack, ("aud", AUDIENCE), *[(f"tag.request-{i:02}", "v" * 200) for i in range(50)])
    assert 15_000 < len(big) <= MAX_TOKEN_CHARS
    answer = _anonymous_sts(stack).assume_role_with_web_identity(
        RoleArn=credport_role, RoleSessionName="e2e-big", WebIdentityToken=big
    )
    assert answer["Audience"] == AUDIENCE


# AssumeRole --------------------------------------------------------------------------------------------------


def test_assume_role_of_a_missing_or_untrusting_role_is_access_denied(stack: RunningStack) -> None:
    sts = stack.client("sts")
    developer = stack.info["developer_arn"]
    untrusting = stack.client("iam").create_role(
        RoleName="e2e-trusts-nobody", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    for arn in (f"arn:aws:iam::{ACCOUNT}:role/e2e-never-created", untrusting):
        with pytest.raises(ClientError) as caught:
            sts.assume_role(RoleArn=arn, RoleSessionName="e2e")
        error = caught.value.response["Error"]
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert (error["Code"], error["Message"]) == (
            "AccessDenied",
            f"User: {developer} is not authorized to perform: sts:AssumeRole on resource: {arn}",
        )


def test_a_role_session_cannot_chain_into_a_session_longer_than_an_hour(stack: RunningStack) -> None:
    workload = stack.info["workload_role_arn"]
    iam = stack.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": workload}, "Action": "sts:AssumeRole"}],
    }
    long = iam.create_role(
        RoleName="e2e-long-sessions", AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=43200
    )["Role"]["Arn"]
    creds = stack.client("sts").assume_role(RoleArn=workload, RoleSessionName="e2e-hop-1")["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=stack.info["region"],
    ).client("sts", endpoint_url=stack.info["aws_endpoint"])
    with pytest.raises(ClientError) as caught:
        session.assume_role(RoleArn=long, RoleSessionName="e2e-hop-2", DurationSeconds=7200)
    assert caught.value.response["Error"] == {
        "Type": "Sender",
        "Code": "ValidationError",
        "Message": "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
    }
    assert session.assume_role(RoleArn=long, RoleSessionName="e2e-hop-2", DurationSeconds=3600)["Credentials"]


# Last in the module: it waits for the module's short-lived token to expire ------------------------------------


def test_an_expired_credport_token_is_refused(stack: RunningStack, credport_role: str, short_lived_token: str) -> None:
    """Last in the module on purpose: its token was minted with the module's first test (``short_lived_token``,
    ttl=60, credport's minimum), so by now the other tests have used up most of its minute and this test sleeps
    only for the rest (a minute when run alone). STS compares ``exp`` with its own clock, the same host's here."""
    claims = _claims(short_lived_token)
    assert claims["exp"] - claims["iat"] == 60
    time.sleep(max(0.0, claims["exp"] - time.time() + 1))
    status, code, message = _refusal(stack, short_lived_token, credport_role)
    assert (status, code) == (400, "ExpiredTokenException")
    expected = rf"Token expired: current date/time (\d+) must be before the expiration date/time {claims['exp']}"
    match = re.fullmatch(expected, message)
    assert match is not None, message
    assert int(match.group(1)) >= claims["exp"]
