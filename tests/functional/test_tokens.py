"""GET /token through deployed-shape API Gateway events (IAM identity in requestContext), against moto.

chalice's test client does not fill ``requestContext.identity``, so every /token request here is a raw
REST API proxy event passed to ``app.app(event, None)``, as Lambda receives it behind ``IAMAuthorizer``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey
from joserfc.util import urlsafe_b64decode

import app as credport_app
from chalicelib.aws.clients import ClientFactory
from tests.functional.conftest import Configure
from tests.support import existing_user, gateway_event

ACCOUNT = "123456789012"
ROLE_NAME = "App+Role=x,y.z@w_v-1"
ROLE_SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/my-session"
ROLE_CALLER = "AROAEXAMPLE123:my-session"
ORG = "o-abcdefghij"
SIGNING_ALIAS = "alias/credport-dev/signing/{}"
ENVELOPE_ROLES_ITEM = {"pk": {"S": "signing-keys"}, "sk": {"S": "envelope-roles"}}
SIGNERS = ("kms", "envelope")


def caller_identity(
    user_arn: str | None = ROLE_SESSION_ARN,
    *,
    caller: str | None = ROLE_CALLER,
    account_id: str | None = ACCOUNT,
    org: str | None = None,
) -> dict[str, Any]:
    """``requestContext.identity`` as API Gateway fills it for a SigV4-signed request."""
    return {
        "userArn": user_arn,
        "accountId": account_id,
        "caller": caller,
        "user": caller,
        "accessKey": "ASIAEXAMPLEKEY000001",
        "sourceIp": "203.0.113.7",
        "principalOrgId": org,
    }


ANONYMOUS: dict[str, Any] = {"sourceIp": "203.0.113.7"}


# The callers' role exists with the id their identity carries: credport reads it (iam:GetRole).
pytestmark = pytest.mark.usefixtures("callers_role")


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def call(
    path: str,
    identity: Mapping[str, Any] = ANONYMOUS,
    *,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    response = credport_app.app(gateway_event(path, identity, query=query, headers=headers), None)
    return Reply(response["statusCode"], json.loads(response["body"]), dict(response["headers"]))


def request_token(identity: Mapping[str, Any] | None = None, **query: str) -> Reply:
    return call("/token", caller_identity() if identity is None else identity, query=query)


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, claims and raw signature of a compact JWS, without verifying anything."""
    header, claims, signature = token.split(".")
    return (
        json.loads(urlsafe_b64decode(header.encode())),
        json.loads(urlsafe_b64decode(claims.encode())),
        urlsafe_b64decode(signature.encode()),
    )


def claims_of(identity: Mapping[str, Any] | None = None, **query: str) -> dict[str, Any]:
    reply = request_token(identity, **query)
    assert reply.status == 200, reply.body
    return decode(reply.body["token"])[1]


def aws_identity(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's AWS identity in a token of the default (namespaced) layout: the one object under the namespace
    claim, by default the issuer with a trailing ``/`` (chalicelib/tokens/claims.py)."""
    return dict(claims[f"{claims['iss']}/"])


def key_thumbprint(
    factory: ClientFactory, role: str = "current", alg: str = "RS256", signer: str = "kms", key_set: str = ""
) -> str:
    """RFC 7638 thumbprint of the key holding a role, computed independently of the service: from the public
    key behind the KMS alias, or from the private PEM of the secret the envelope signer's roles item names.
    ``key_set`` names an algorithm's own keys (``es384``); empty for the legacy algorithm's (RS256 by default),
    which keep the names of before per-algorithm keys."""
    if signer == "envelope":
        table = os.environ["CREDPORT_STATE_TABLE"]
        item = {**ENVELOPE_ROLES_ITEM, "sk": {"S": "envelope-roles" + (f"/{key_set}" if key_set else "")}}
        roles = factory.client("dynamodb").get_item(TableName=table, Key=item)["Item"]
        material = factory.client("secretsmanager").get_secret_value(SecretId=roles[role]["S"])["SecretString"]
    else:
        alias = SIGNING_ALIAS.format(f"{key_set}/{role}" if key_set else role)
        material = factory.client("kms").get_public_key(KeyId=alias)["PublicKey"]
    key = RSAKey.import_key(material) if alg == "RS256" else ECKey.import_key(material)
    return key.thumbprint()


# 1. Principals ---------------------------------------------------------------------------------------


def test_assumed_role_maps_to_its_role(configure: Configure) -> None:
    configure()
    claims = claims_of()
    assert claims["sub"] == f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
    assert aws_identity(claims) == {  # no org_id (outside any organization), no principal_tags (the role has none)
        "aws_account": ACCOUNT,
        "source_region": "us-east-1",
        "principal_id": "AROAEXAMPLE123",
        "principal_type": "role",
        "session_name": "my-session",
    }


def test_iam_user_keeps_its_path(configure: Configure) -> None:
    configure()
    arn = existing_user("alice", "AIDAEXAMPLE456", path="/division/team/")  # credport reads its tags (GetUser)
    assert arn == f"arn:aws:iam::{ACCOUNT}:user/division/team/alice"
    claims = claims_of(caller_identity(arn, caller="AIDAEXAMPLE456"))
    assert claims["sub"] == arn
    assert aws_identity(claims) == {  # no session_name (not a role session)
        "aws_account": ACCOUNT,
        "source_region": "us-east-1",
        "principal_id": "AIDAEXAMPLE456",
        "principal_type": "user",
    }


def test_federated_user_maps_to_itself(configure: Configure) -> None:
    configure()
    arn = f"arn:aws:sts::{ACCOUNT}:federated-user/bob"
    claims = claims_of(caller_identity(arn, caller=f"{ACCOUNT}:bob"))
    assert claims["sub"] == arn
    assert aws_identity(claims) == {
        "aws_account": ACCOUNT,
        "source_region": "us-east-1",
        "principal_id": f"{ACCOUNT}:bob",  # AWS's own id for a federated user, kept whole
        "principal_type": "federated-user",
    }


USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/division/team/alice"
FEDERATED_ARN = f"arn:aws:sts::{ACCOUNT}:federated-user/bob"
# Each kind of caller: its identity, and the flat claims (besides aws_account) a relying party of v1 tokens reads.
FLAT_CLAIMS = {
    "role": (
        caller_identity(),
        {"aws_arn": ROLE_SESSION_ARN, "aws_principal_id": "AROAEXAMPLE123", "aws_session_name": "my-session"},
    ),
    "user": (
        caller_identity(USER_ARN, caller="AIDAEXAMPLE456"),
        {"aws_arn": USER_ARN, "aws_principal_id": "AIDAEXAMPLE456"},
    ),
    "federated-user": (
        caller_identity(FEDERATED_ARN, caller=f"{ACCOUNT}:bob"),
        {"aws_arn": FEDERATED_ARN, "aws_principal_id": f"{ACCOUNT}:bob"},
    ),
}


@pytest.mark.parametrize("kind", FLAT_CLAIMS)
def test_the_flat_layout_gives_relying_parties_the_claims_they_read_before(configure: Configure, kind: str) -> None:
    """CREDPORT_TOKEN_CLAIMS=flat: a relying party of tokens before v2 reads the caller's ARN as API Gateway verified
    it (``aws_arn``: the session's, for a role) beside the other ``aws_*`` claims, and no namespace claim."""
    configure({"CREDPORT_TOKEN_CLAIMS": "flat"})
    existing_user("alice", "AIDAEXAMPLE456", path="/division/team/")
    identity, expected = FLAT_CLAIMS[kind]
    claims = claims_of(identity)
    assert set(claims) - {name for name in claims if name.startswith("aws_")} == {
        *("iss", "sub", "aud", "iat", "nbf", "exp", "jti")
    }
    assert {name: value for name, value in claims.items() if name.startswith("aws_")} == {
        "aws_account": ACCOUNT,
        "aws_principal_type": kind,
        **expected,
    }


REFUSED_PRINCIPALS = {
    "root": caller_identity(f"arn:aws:iam::{ACCOUNT}:root", caller=ACCOUNT),
    "unknown shape": caller_identity(f"arn:aws:iam::{ACCOUNT}:group/devs", caller="AGPAEXAMPLE"),
    "unknown service": caller_identity(f"arn:aws:s3:::{ACCOUNT}-bucket/x", caller="AIDAEXAMPLE"),
    "role, not a session": caller_identity(f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}", caller="AROAEXAMPLE123"),
    "illegal character !": caller_identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/Bad!Role/s1"),
    "illegal space": caller_identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/Bad Role/s1"),
    "illegal user name": caller_identity(f"arn:aws:iam::{ACCOUNT}:user/al*ce", caller="AIDAEXAMPLE"),
    "non-ascii name": caller_identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/Rôle/s1"),
    "role name of 65 characters": caller_identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/{'r' * 65}/s1"),
    "one-character session": caller_identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/s"),
    "empty user path segment": caller_identity(f"arn:aws:iam::{ACCOUNT}:user/a//alice", caller="AIDAEXAMPLE"),
    "account mismatch": caller_identity(account_id="210987654321"),
    "missing caller": caller_identity(caller=None),
}


@pytest.mark.parametrize("identity", REFUSED_PRINCIPALS.values(), ids=REFUSED_PRINCIPALS.keys())
def test_unsupported_principals_are_refused(configure: Configure, identity: dict[str, Any]) -> None:
    configure()
    reply = request_token(identity)
    assert (reply.status, reply.body["error"]) == (403, "unsupported_principal")
    assert "token" not in reply.body


@pytest.mark.parametrize(
    "identity",
    [
        caller_identity(ROLE_SESSION_ARN + "\n"),
        caller_identity(f"arn:aws:iam::{ACCOUNT}:user/alice\n", caller="AIDAEXAMPLE456"),
    ],
    ids=["assumed role", "user"],
)
def test_an_arn_with_a_trailing_newline_is_refused(configure: Configure, identity: dict[str, Any]) -> None:
    configure()
    reply = request_token(identity)
    assert (reply.status, reply.body.get("error")) == (403, "unsupported_principal")


@pytest.mark.parametrize(
    "identity",
    [{}, ANONYMOUS, {**caller_identity(), "userArn": None}, {**caller_identity(), "userArn": "AROAEXAMPLE123"}],
    ids=["empty", "source ip only", "null userArn", "not an arn"],
)
def test_a_request_without_an_iam_identity_is_forbidden(configure: Configure, identity: dict[str, Any]) -> None:
    configure()
    reply = request_token(identity)
    assert (reply.status, reply.body["error"]) == (403, "forbidden")
    assert "token" not in reply.body


# 2. Response and claims ------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", SIGNERS)
def test_response_shape_header_and_registered_claims(configure: Configure, factory: ClientFactory, signer: str) -> None:
    issuer = "https://tokens.example.com/tenant-a"
    configure({"CREDPORT_ISSUER": issuer, "CREDPORT_TOKEN_SIGNER": signer})
    before = int(time.time())
    reply = request_token()
    after = int(time.time())
    assert reply.status == 200, reply.body
    assert set(reply.body) == {"token", "token_type", "expires_in"}
    assert reply.body["token_type"] == "Bearer"
    assert reply.body["expires_in"] == 3600
    header, claims, _ = decode(reply.body["token"])
    assert header == {"alg": "RS256", "typ": "JWT", "kid": key_thumbprint(factory, signer=signer)}
    assert claims["iss"] == issuer
    assert claims["aud"] == "sts.amazonaws.com"
    assert before <= claims["iat"] <= after
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] == claims["iat"] + 3600
    assert set(claims) == {*("iss", "sub", "aud", "iat", "nbf", "exp", "jti"), f"{issuer}/"}
    assert set(claims[f"{issuer}/"]) == {
        *("aws_account", "source_region", "principal_id", "principal_type", "session_name"),
    }


def test_jti_is_unique_across_tokens(configure: Configure) -> None:
    configure()
    jtis = [claims_of()["jti"] for _ in range(50)]
    assert len(set(jtis)) == 50
    assert all(isinstance(jti, str) and len(jti) >= 16 for jti in jtis)


# 3. Audiences ----------------------------------------------------------------------------------------

AUDIENCES = {"CREDPORT_TOKEN_AUDIENCES": "api://one,https://svc.example.com/*"}
SVC = "https://svc.example.com/"


def test_default_audience_is_the_first_allowed_one(configure: Configure) -> None:
    configure(AUDIENCES)
    assert claims_of()["aud"] == "api://one"


def test_configured_default_audience(configure: Configure) -> None:
    configure({**AUDIENCES, "CREDPORT_TOKEN_DEFAULT_AUDIENCE": SVC + "default"})
    assert claims_of()["aud"] == SVC + "default"


@pytest.mark.parametrize("aud", ["api://one", SVC + "a", SVC + "a/b?c=d", SVC + "a" * (256 - len(SVC))])
def test_allowed_audiences_are_issued(configure: Configure, aud: str) -> None:
    configure(AUDIENCES)
    assert claims_of(aud=aud)["aud"] == aud


NOT_ALLOWED_AUDIENCES = [
    "api://two",
    "api://one/x",
    "api://on",
    "API://ONE",
    SVC,  # the bare prefix is not an audience under it
    "https://svc.example.com.evil.test/a",
    "https://svc.example.com",
    "sts.amazonaws.com",  # the built-in default is not allowed once the list is configured
]
MALFORMED_AUDIENCES = [
    SVC + "*",  # a wildcard is the allow-list's, never an audience
    "api://one*",
    "*",
    SVC + "a" * (257 - len(SVC)),  # over 256 characters
    SVC + "a" * 5000,
]


def test_audiences_outside_the_allow_list_are_the_policys_refusal(configure: Configure) -> None:
    """Well-formed, but not allowed: the token policy refuses (403), as it would any request it does not allow."""
    configure(AUDIENCES)
    for aud in NOT_ALLOWED_AUDIENCES:
        reply = request_token(aud=aud)
        assert (reply.status, reply.body["error"]) == (403, "audience_not_allowed"), aud


def test_malformed_audiences_are_refused_before_the_policy(configure: Configure) -> None:
    configure(AUDIENCES)
    for aud in MALFORMED_AUDIENCES:
        reply = request_token(aud=aud)
        assert (reply.status, reply.body["error"]) == (400, "invalid_audience"), aud


@pytest.mark.parametrize("aud", [SVC + "a b", SVC + "a\nb", SVC + "a\x00"], ids=["space", "newline", "nul"])
def test_audiences_with_spaces_or_control_characters_are_refused(configure: Configure, aud: str) -> None:
    configure(AUDIENCES)
    reply = request_token(aud=aud)
    assert (reply.status, reply.body.get("error")) == (400, "invalid_audience")


# 4. TTL ----------------------------------------------------------------------------------------------


def ttl_of(claims: Mapping[str, Any]) -> int:
    assert claims["nbf"] == claims["iat"]
    return int(claims["exp"]) - int(claims["iat"])


def test_default_ttl(configure: Configure) -> None:
    configure()
    reply = request_token()
    assert reply.body["expires_in"] == 3600
    assert ttl_of(decode(reply.body["token"])[1]) == 3600


@pytest.mark.parametrize("ttl", [60, 600, 43200])
def test_ttl_within_bounds_is_honoured(configure: Configure, ttl: int) -> None:
    configure()
    reply = request_token(ttl=str(ttl))
    assert reply.status == 200, reply.body
    assert reply.body["expires_in"] == ttl
    assert ttl_of(decode(reply.body["token"])[1]) == ttl


BAD_TTLS = ["59", "43201", "0", "abc", "-600", "1e3", "600.0", " 600", "0x258", "9" * 30, "99999999999"]


def test_ttl_out_of_bounds_or_malformed_is_refused(configure: Configure) -> None:
    configure()
    for ttl in BAD_TTLS:
        reply = request_token(ttl=ttl)
        assert (reply.status, reply.body["error"]) == (400, "invalid_ttl"), ttl


@pytest.mark.parametrize(
    "ttl",
    ["²", "١٢٠٠"],
    ids=["superscript two", "arabic-indic digits"],
)
def test_non_ascii_digit_ttl_is_refused(configure: Configure, ttl: str) -> None:
    configure()
    reply = request_token(ttl=ttl)
    assert (reply.status, reply.body.get("error")) == (400, "invalid_ttl")


def test_configured_ttl_bounds(configure: Configure) -> None:
    configure({"CREDPORT_TOKEN_MIN_TTL": "300", "CREDPORT_TOKEN_MAX_TTL": "7200", "CREDPORT_TOKEN_DEFAULT_TTL": "900"})
    assert ttl_of(claims_of()) == 900
    assert ttl_of(claims_of(ttl="300")) == 300
    assert ttl_of(claims_of(ttl="7200")) == 7200
    for ttl in ("299", "7201", "60", "43200"):
        reply = request_token(ttl=ttl)
        assert (reply.status, reply.body["error"]) == (400, "invalid_ttl"), ttl


# 5. Organisation -------------------------------------------------------------------------------------


def test_caller_in_the_organisation_gets_a_token(configure: Configure) -> None:
    configure({"CREDPORT_TOKEN_ORGANIZATION_ID": ORG})
    claims = claims_of(caller_identity(org=ORG))
    assert aws_identity(claims)["org_id"] == ORG
    assert claims["sub"] == f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"


@pytest.mark.parametrize("org", ["o-zzzzzzzzzz", "o-ABCDEFGHIJ", "o-abcdefghij0", "", None])
def test_caller_outside_the_organisation_is_refused(configure: Configure, org: str | None) -> None:
    configure({"CREDPORT_TOKEN_ORGANIZATION_ID": ORG})
    reply = request_token(caller_identity(org=org))
    assert (reply.status, reply.body["error"]) == (403, "outside_organization")
    assert "token" not in reply.body


@pytest.mark.parametrize("org", ["o-zzzzzzzzzz", "", None])
def test_a_session_is_refused_outside_the_organisation_too(configure: Configure, org: str | None) -> None:
    """Sessions serve the callers tokens serve: the resource policy's second layer covers POST /session as well."""
    configure({"CREDPORT_TOKEN_ORGANIZATION_ID": ORG})
    event = gateway_event("/session", caller_identity(org=org), method="POST")
    response = credport_app.app(event, None)
    assert (response["statusCode"], json.loads(response["body"])["error"]) == (403, "outside_organization")
    inside = credport_app.app(gateway_event("/session", caller_identity(org=ORG), method="POST"), None)
    assert inside["statusCode"] == 200, inside["body"]
    assert json.loads(inside["body"])["token"]


def test_without_a_required_organisation_the_callers_org_is_still_reported(configure: Configure) -> None:
    configure()
    assert aws_identity(claims_of(caller_identity(org=ORG)))["org_id"] == ORG


# 9. Warm path ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signer", "calls_per_token"), [("kms", ["kms:Sign"]), ("envelope", [])], ids=["kms", "envelope"]
)
def test_a_warm_container_makes_one_kms_sign_per_token_or_no_call_at_all_with_envelope_keys(
    configure: Configure, signer: str, calls_per_token: list[str]
) -> None:
    """With the envelope signer, exactly none: the key was opened once and signs in memory."""
    configure({"CREDPORT_TOKEN_SIGNER": signer})
    assert request_token().status == 200  # warm-up: bootstraps the keys and loads the key ring
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(f"{model.service_model.service_name}:{model.name}")

    import app

    factory = app.services().aws.factory  # the very factory the app's handlers use
    if signer == "envelope":
        assert "kms" not in factory.created  # not even for the bootstrap: Secrets Manager used the data key
    for service in ("kms", "dynamodb", "s3", "sns", "secretsmanager", "iam"):  # iam: the role was read once
        factory.client(service).meta.events.register(f"before-call.{service}", record)
    created = set(factory.created)
    for _ in range(20):
        assert request_token().status == 200
    assert calls == calls_per_token * 20
    assert set(factory.created) == created  # and no client for any other service either


@pytest.mark.parametrize("signer", SIGNERS)
def test_a_warm_container_serves_the_jwks_with_no_aws_call(configure: Configure, signer: str) -> None:
    """The JWKS is public and unauthenticated: a warm container answers it from its key rings' cache (refreshed
    within the store's interval and on a key event), so no caller can make it call KMS or DynamoDB per request,
    nor drop the keys the token path signs with."""
    configure({"CREDPORT_TOKEN_SIGNER": signer})
    first = call("/.well-known/jwks.json")  # bootstraps every algorithm's keys and loads the key rings
    assert first.status == 200, first.body
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(f"{model.service_model.service_name}:{model.name}")

    import app

    factory = app.services().aws.factory
    for service in ("kms", "dynamodb", "secretsmanager"):
        factory.client(service).meta.events.register(f"before-call.{service}", record)
    for _ in range(5):
        assert call("/.well-known/jwks.json").body == first.body
    assert calls == []
