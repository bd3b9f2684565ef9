"""Verifying issued tokens, the OIDC discovery document and JWKS, ES256 and first-use key bootstrap."""

from __future__ import annotations

import json
import os
from typing import Any

import jwt
import pytest
from joserfc.jwk import ECKey, RSAKey

from chalicelib.aws.clients import ClientFactory
from chalicelib.tokens import TokenRejected, TokenVerifier
from tests.functional.conftest import Configure
from tests.functional.test_tokens import (
    SIGNERS,
    SIGNING_ALIAS,
    Reply,
    call,
    caller_identity,
    decode,
    key_thumbprint,
    request_token,
)

# The callers' role exists with the id their identity carries: credport reads it (iam:GetRole).
pytestmark = pytest.mark.usefixtures("callers_role")

ISSUER = "https://tokens.example.com/tenant-a"
AUDIENCES = "api://one,https://svc.example.com/*"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def documents() -> tuple[Reply, Reply]:
    return call("/.well-known/openid-configuration"), call("/.well-known/jwks.json")


def issue(aud: str | None = None) -> str:
    reply = request_token() if aud is None else request_token(aud=aud)
    assert reply.status == 200, reply.body
    return str(reply.body["token"])


def pyjwt_decode(token: str, jwks: dict[str, Any], *, alg: str, audience: str, issuer: str = ISSUER) -> dict[str, Any]:
    """Independent verification with PyJWT (no joserfc, no credport code)."""
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key.key, algorithms=[alg], audience=audience, issuer=issuer)


# 6. Verification -------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", SIGNERS)
def test_tokens_verify_with_the_published_jwks(configure: Configure, signer: str) -> None:
    configure({"CREDPORT_ISSUER": ISSUER, "CREDPORT_TOKEN_AUDIENCES": AUDIENCES, "CREDPORT_TOKEN_SIGNER": signer})
    aud = "https://svc.example.com/a"
    token = issue(aud)
    jwks = call("/.well-known/jwks.json").body
    verifier = TokenVerifier(jwks, issuer=ISSUER, audiences=AUDIENCES.split(","))
    claims = verifier.verify(token, audience=aud)
    assert claims == decode(token)[1]
    assert claims["sub"] == "arn:aws:iam::123456789012:role/App+Role=x,y.z@w_v-1"

    independent = pyjwt_decode(token, jwks, alg="RS256", audience=aud)
    assert independent == claims

    # The checks above can fail: another issuer, another audience or a tampered token is refused by both.
    with pytest.raises(TokenRejected) as rejected:
        TokenVerifier(jwks, issuer="https://other.example.com").verify(token)
    assert rejected.value.check == "iss"
    with pytest.raises(TokenRejected) as rejected:
        verifier.verify(token, audience="api://one")
    assert rejected.value.check == "aud"
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    with pytest.raises(TokenRejected) as rejected:
        verifier.verify(tampered)
    assert rejected.value.check == "signature"
    with pytest.raises(jwt.InvalidTokenError):
        pyjwt_decode(token, jwks, alg="RS256", audience="api://one")
    with pytest.raises(jwt.InvalidTokenError):
        pyjwt_decode(tampered, jwks, alg="RS256", audience=aud)


# 7. Discovery and JWKS -------------------------------------------------------------------------------


def test_discovery_document(configure: Configure) -> None:
    configure({"CREDPORT_ISSUER": ISSUER})
    claims = decode(issue())[1]
    reply = call(
        "/.well-known/openid-configuration",
        headers={"Host": "evil.example.com", "X-Forwarded-Host": "evil.example.com", "X-Forwarded-Proto": "http"},
    )
    assert reply.status == 200, reply.body
    document = reply.body
    assert document["issuer"] == ISSUER
    assert document["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert "evil" not in json.dumps(document)
    assert document["response_types_supported"] == ["id_token"]
    assert document["subject_types_supported"] == ["public"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256", "ES384"]  # the default algorithms
    assert set(claims) <= set(document["claims_supported"])
    assert document["claims_supported"] == ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", ISSUER + "/"]
    assert claims["iss"] == document["issuer"]


# Each default algorithm's keys: their key set's name (empty: the legacy names), key type and curve.
KEY_SETS = {"RS256": ("", "RSA", None), "ES384": ("es384", "EC", "P-384")}


@pytest.mark.parametrize("signer", SIGNERS)
def test_jwks_holds_the_current_and_pending_public_keys(
    configure: Configure, factory: ClientFactory, signer: str
) -> None:
    configure({"CREDPORT_TOKEN_SIGNER": signer})
    reply = call("/.well-known/jwks.json")
    assert reply.status == 200, reply.body
    keys = reply.body["keys"]
    assert set(reply.body) == {"keys"}
    assert len(keys) == 4  # a current and a pending key of each default algorithm
    for alg, (key_set, _kty, _crv) in KEY_SETS.items():
        assert {k["kid"] for k in keys if k["alg"] == alg} == {
            key_thumbprint(factory, role, alg=alg, signer=signer, key_set=key_set) for role in ("current", "pending")
        }
    for key in keys:
        key_set, kty, crv = KEY_SETS[key["alg"]]
        assert (key["kty"], key.get("crv"), key["use"]) == (kty, crv, "sig")
        assert not PRIVATE_MEMBERS & set(key)
        assert key["kid"] == (RSAKey if kty == "RSA" else ECKey).import_key(key).thumbprint()
    assert decode(issue())[0]["kid"] == key_thumbprint(factory, "current", signer=signer)
    es384 = request_token(alg="ES384")
    assert es384.status == 200, es384.body
    assert decode(es384.body["token"])[0]["kid"] == key_thumbprint(
        factory, "current", alg="ES384", signer=signer, key_set="es384"
    )


def test_public_documents_are_cacheable_for_an_hour_by_default(configure: Configure) -> None:
    configure()
    for reply in documents():
        assert reply.status == 200, reply.body
        assert reply.headers["Cache-Control"] == "public, max-age=3600"
        assert reply.headers["Content-Type"] == "application/json"


def test_public_documents_honour_the_configured_max_age(configure: Configure) -> None:
    configure({"CREDPORT_JWKS_MAX_AGE": "600"})
    for reply in documents():
        assert reply.status == 200, reply.body
        cache_control = reply.headers["Cache-Control"]
        assert cache_control == "public, max-age=600"
        assert "no-cache" not in cache_control
        assert "no-store" not in cache_control


# 8. ES256 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", SIGNERS)
def test_es256_tokens_on_a_fresh_deployment(configure: Configure, factory: ClientFactory, signer: str) -> None:
    configure({"CREDPORT_TOKEN_ALGORITHM": "ES256", "CREDPORT_ISSUER": ISSUER, "CREDPORT_TOKEN_SIGNER": signer})
    token = issue("sts.amazonaws.com")
    header, claims, signature = decode(token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": key_thumbprint(factory, alg="ES256", signer=signer)}
    assert len(signature) == 64  # r || s, not DER

    discovery, jwks_reply = documents()
    jwks = jwks_reply.body
    assert discovery.body["id_token_signing_alg_values_supported"] == ["ES256"]
    assert len(jwks["keys"]) == 2
    for key in jwks["keys"]:
        assert (key["kty"], key["crv"], key["use"], key["alg"]) == ("EC", "P-256", "sig", "ES256")
        assert "d" not in key

    assert TokenVerifier(jwks, issuer=ISSUER).verify(token, audience="sts.amazonaws.com") == claims
    assert pyjwt_decode(token, jwks, alg="ES256", audience="sts.amazonaws.com") == claims
    with pytest.raises(TokenRejected) as rejected:
        TokenVerifier(jwks, issuer=ISSUER, algorithms=["RS256"]).verify(token)
    assert rejected.value.check == "alg"


# 10. Bootstrap on first use --------------------------------------------------------------------------


def signing_aliases(factory: ClientFactory) -> set[str]:
    aliases = factory.client("kms").list_aliases()["Aliases"]
    return {a["AliasName"] for a in aliases if a["AliasName"].startswith(SIGNING_ALIAS.format(""))}


def test_first_token_bootstraps_keys_and_publishes_documents(configure: Configure, factory: ClientFactory) -> None:
    configure()
    s3 = factory.client("s3")
    bucket = os.environ["CREDPORT_PUBLIC_BUCKET"]
    assert signing_aliases(factory) == set()
    assert s3.list_objects_v2(Bucket=bucket, Prefix="oidc/").get("KeyCount", 0) == 0

    reply = request_token(caller_identity())
    assert reply.status == 200, reply.body

    assert signing_aliases(factory) == {SIGNING_ALIAS.format("current"), SIGNING_ALIAS.format("pending")}
    kms = factory.client("kms")
    current = kms.describe_key(KeyId=SIGNING_ALIAS.format("current"))["KeyMetadata"]
    pending = kms.describe_key(KeyId=SIGNING_ALIAS.format("pending"))["KeyMetadata"]
    assert current["KeyId"] != pending["KeyId"]
    for meta in (current, pending):
        assert (meta["KeyUsage"], meta["KeyState"]) == ("SIGN_VERIFY", "Enabled")
    assert decode(reply.body["token"])[0]["kid"] == key_thumbprint(factory, "current")

    served = dict(zip(("openid-configuration", "jwks.json"), documents(), strict=True))
    for name, api_reply in served.items():
        stored = s3.get_object(Bucket=bucket, Key=f"oidc/.well-known/{name}")
        assert json.loads(stored["Body"].read()) == api_reply.body
        assert stored["CacheControl"] == "public, max-age=3600"
        assert stored["ContentType"] == "application/json"

    # Bootstrap runs once: a second token leaves the keys as they are.
    assert request_token().status == 200
    assert kms.describe_key(KeyId=SIGNING_ALIAS.format("current"))["KeyMetadata"]["KeyId"] == current["KeyId"]
