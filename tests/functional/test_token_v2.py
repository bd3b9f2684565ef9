"""Token service v2 (issue #18): several audiences, the algorithm per request, request tags, the claims layouts,
large tokens; verified through discovery with joserfc and PyJWT, in both signer modes.

Deployed-shape API Gateway events (IAM identity in requestContext) against moto, as tests/functional/test_tokens.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
import jwt as pyjwt
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

import app as credport_app
from tests.functional.conftest import Configure
from tests.functional.test_principal_details import LOOKUP_ROLE, Organization
from tests.functional.test_principal_details import organization as organization_fixture
from tests.functional.test_tokens import ACCOUNT, ORG, ROLE_NAME, SIGNERS, Reply, caller_identity, decode
from tests.support import gateway_event

pytestmark = pytest.mark.usefixtures("callers_role")

ISSUER = "https://id.example.com"
AUDIENCES = "sts.amazonaws.com,https://a.example.com,https://b.example.com,https://svc.example.org/*"
ALL_ALGORITHMS = "RS256,ES256,ES384"
CURVES = {"RS256": None, "ES256": "P-256", "ES384": "P-384"}


def get(path: str, query: Sequence[tuple[str, str]] | Mapping[str, str] = (), identity: Any = None) -> Reply:
    event = gateway_event(path, caller_identity() if identity is None else identity, query=query)
    response = credport_app.app(event, None)
    return Reply(response["statusCode"], json.loads(response["body"]), dict(response["headers"]))


def token(*query: tuple[str, str], identity: Any = None) -> str:
    reply = get("/token", query, identity)
    assert reply.status == 200, reply.body
    return str(reply.body["token"])


def refused(*query: tuple[str, str], status: int = 400) -> str:
    reply = get("/token", query)
    assert reply.status == status, reply.body
    assert set(reply.body) == {"error", "message"}
    return str(reply.body["error"])


def discovered() -> tuple[dict[str, Any], dict[str, Any]]:
    """The discovery document, then the JWKS found through its ``jwks_uri`` (served by the app)."""
    document = get("/.well-known/openid-configuration", identity={"sourceIp": "203.0.113.7"}).body
    path = document["jwks_uri"].removeprefix(document["issuer"])
    return document, get(path, identity={"sourceIp": "203.0.113.7"}).body


def verify_both(compact: str, audience: str) -> dict[str, Any]:
    """Verified as two relying parties would, each from the JWKS that discovery points to; the claims."""
    document, jwks = discovered()
    alg = decode(compact)[0]["alg"]
    assert alg in document["id_token_signing_alg_values_supported"]
    by_joserfc = jwt.decode(compact, KeySet.import_key_set(jwks), algorithms=[alg])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": audience}
    ).validate(by_joserfc.claims)
    key = pyjwt.PyJWKSet.from_dict(jwks)[decode(compact)[0]["kid"]]
    by_pyjwt = pyjwt.decode(compact, key.key, algorithms=[alg], audience=audience, issuer=ISSUER)
    assert by_pyjwt == by_joserfc.claims
    return dict(by_pyjwt)


@pytest.fixture
def v2(configure: Configure) -> Configure:
    def apply(env: Mapping[str, str] | None = None) -> None:
        configure(
            {
                "CREDPORT_ISSUER": ISSUER,
                "CREDPORT_TOKEN_AUDIENCES": AUDIENCES,
                "CREDPORT_TOKEN_ALGORITHMS": ALL_ALGORITHMS,
                **(env or {}),
            }
        )

    apply()
    return apply


# Audiences ---------------------------------------------------------------------------------------------------------


def test_one_audience_is_a_string_several_are_an_array_in_the_order_asked(v2: Configure) -> None:
    assert decode(token(("aud", "https://a.example.com")))[1]["aud"] == "https://a.example.com"
    asked = ["https://b.example.com", "https://svc.example.org/y", "https://svc.example.org/x", "https://a.example.com"]
    claims = verify_both(token(*[("aud", a) for a in asked]), "https://svc.example.org/x")
    assert claims["aud"] == asked
    assert decode(token())[1]["aud"] == "sts.amazonaws.com"  # none asked: the default audience


def test_audience_counts_and_syntax_are_checked_before_the_policy(v2: Configure) -> None:
    ten = [("aud", f"https://svc.example.org/{i}") for i in range(10)]
    assert len(decode(token(*ten))[1]["aud"]) == 10
    assert refused(*ten, ("aud", "https://svc.example.org/10")) == "invalid_audience"
    assert refused(("aud", "https://a.example.com"), ("aud", "https://a.example.com")) == "invalid_audience"
    assert refused(("aud", "https://svc.example.org/*")) == "invalid_audience"
    assert refused(("aud", "has space")) == "invalid_audience"
    assert refused(("aud", "x" * 257)) == "invalid_audience"
    assert refused(("aud", "https://a.example.com"), ("aud", "")) == "invalid_audience"


def test_every_audience_must_be_allowed(v2: Configure) -> None:
    assert refused(("aud", "https://a.example.com"), ("aud", "https://evil.example"), status=403) == (
        "audience_not_allowed"
    )
    assert refused(("aud", "https://svc.example.org/"), status=403) == "audience_not_allowed"  # '*' needs one char


# Algorithms -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", SIGNERS)
@pytest.mark.parametrize("alg", ["RS256", "ES256", "ES384"])
def test_each_algorithm_signs_with_its_own_keys_and_verifies_through_discovery(
    v2: Configure, signer: str, alg: str
) -> None:
    v2({"CREDPORT_TOKEN_SIGNER": signer})
    compact = token(("alg", alg), ("aud", "https://a.example.com"))
    header = decode(compact)[0]
    assert header["alg"] == alg
    _, jwks = discovered()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert (key["alg"], key.get("crv"), key["use"]) == (alg, CURVES[alg], "sig")
    claims = verify_both(compact, "https://a.example.com")
    assert claims["sub"] == f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"


def test_the_jwks_holds_a_current_and_a_pending_key_per_algorithm(v2: Configure) -> None:
    token()
    document, jwks = discovered()
    assert document["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "ES384"]
    by_alg: dict[str, int] = {}
    for key in jwks["keys"]:
        by_alg[key["alg"]] = by_alg.get(key["alg"], 0) + 1
    assert by_alg == {"RS256": 2, "ES256": 2, "ES384": 2}


def test_without_alg_the_first_enabled_algorithm_signs(v2: Configure) -> None:
    v2({"CREDPORT_TOKEN_ALGORITHMS": "ES384,RS256"})
    assert decode(token())[0]["alg"] == "ES384"
    assert refused(("alg", "ES256")) == "invalid_algorithm"  # not enabled here
    assert refused(("alg", "none")) == "invalid_algorithm"
    assert refused(("alg", "HS256")) == "invalid_algorithm"


def test_the_default_algorithms_are_the_pair_aws_offers(configure: Configure) -> None:
    configure({"CREDPORT_ISSUER": ISSUER})
    assert decode(token())[0]["alg"] == "RS256"
    assert decode(token(("alg", "ES384")))[0]["alg"] == "ES384"
    assert discovered()[0]["id_token_signing_alg_values_supported"] == ["RS256", "ES384"]


def test_rotation_rotates_every_algorithm_and_old_tokens_still_verify(v2: Configure) -> None:
    from tests.conftest import app_services

    before = {alg: token(("alg", alg)) for alg in ("RS256", "ES256", "ES384")}
    reports = app_services().tokens.rotate(force=True)
    assert sorted(r.algorithm for r in reports) == ["ES256", "ES384", "RS256"]
    assert all(r.kind == "rotate" for r in reports)
    for alg, compact in before.items():
        verify_both(compact, "sts.amazonaws.com")
        after = token(("alg", alg))
        assert decode(after)[0]["kid"] != decode(compact)[0]["kid"]
    _, jwks = discovered()
    assert len(jwks["keys"]) == 9  # previous, current and pending of each algorithm


# TTL and parameters -------------------------------------------------------------------------------------------------


def test_ttl_and_unknown_or_repeated_parameters(v2: Configure) -> None:
    v2({"CREDPORT_TOKEN_MAX_TTL": "3600", "CREDPORT_TOKEN_DEFAULT_TTL": "300"})
    claims = decode(token())[1]
    assert claims["exp"] - claims["iat"] == 300
    claims = decode(token(("ttl", "3600")))[1]
    assert claims["exp"] - claims["iat"] == 3600
    assert refused(("ttl", "3601")) == "invalid_ttl"
    assert refused(("ttl", "59")) == "invalid_ttl"
    assert refused(("audience", "https://a.example.com")) == "invalid_parameter"  # a misspelt aud is no default
    assert refused(("alg", "RS256"), ("alg", "ES384")) == "invalid_parameter"
    assert refused(("ttl", "60"), ("ttl", "70")) == "invalid_parameter"


# Request tags -------------------------------------------------------------------------------------------------------


def test_request_tags_become_claims(v2: Configure) -> None:
    tags = {"team": "x", "cost-center": "42", "env:name": "prod/eu=1 +@", "Ünïcode": "välue", "empty": ""}
    claims = decode(token(*[(f"tag.{k}", v) for k, v in tags.items()]))[1]
    assert claims[f"{ISSUER}/"]["request_tags"] == tags


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("aws:team", "x"),
        ("AWS:team", "x"),
        ("credport:team", "x"),
        ("", "x"),
        ("k" * 129, "x"),
        ("team", "v" * 257),
        ("bad*key", "x"),
        ("team", "tab\there"),
        ("team", "new\nline"),
        ("emoji😀", "x"),
    ],
)
def test_request_tags_follow_aws_tag_rules(v2: Configure, key: str, value: str) -> None:
    assert refused((f"tag.{key}", value)) == "invalid_tag"


def test_at_most_fifty_request_tags_with_unique_keys(v2: Configure) -> None:
    fifty = [(f"tag.k{i}", "v") for i in range(50)]
    assert len(decode(token(*fifty))[1][f"{ISSUER}/"]["request_tags"]) == 50
    assert refused(*fifty, ("tag.k50", "v")) == "invalid_tag"
    assert refused(("tag.Team", "a"), ("tag.team", "b")) == "invalid_tag"
    assert refused(("tag.team", "a"), ("tag.team", "b")) == "invalid_tag"


# Claims -----------------------------------------------------------------------------------------------------------


def test_namespaced_claims_hold_the_aws_identity(v2: Configure) -> None:
    claims = decode(token(identity=caller_identity(org=ORG)))[1]
    assert set(claims) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", f"{ISSUER}/"}
    identity = claims[f"{ISSUER}/"]
    assert identity == {
        "aws_account": ACCOUNT,
        "source_region": "us-east-1",
        "principal_id": "AROAEXAMPLE123",
        "principal_type": "role",
        "session_name": "my-session",
        "org_id": ORG,
        **({"principal_tags": identity["principal_tags"]} if "principal_tags" in identity else {}),
    }


def test_the_namespace_is_configurable(v2: Configure) -> None:
    v2({"CREDPORT_TOKEN_CLAIMS_NAMESPACE": "urn:example:aws"})
    claims = decode(token())[1]
    assert "urn:example:aws" in claims
    assert f"{ISSUER}/" not in claims
    assert discovered()[0]["claims_supported"] == ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "urn:example:aws"]


def test_the_flat_layout_keeps_the_claims_of_before(v2: Configure) -> None:
    v2({"CREDPORT_TOKEN_CLAIMS": "flat"})
    claims = decode(token(("tag.team", "x"), identity=caller_identity(org=ORG)))[1]
    assert claims["aws_account"] == ACCOUNT
    assert claims["aws_arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/my-session"
    assert claims["aws_principal_type"] == "role"
    assert claims["aws_principal_id"] == "AROAEXAMPLE123"
    assert claims["aws_session_name"] == "my-session"
    assert claims["aws_org_id"] == ORG
    assert claims["aws_request_tags"] == {"team": "x"}
    assert f"{ISSUER}/" not in claims
    assert "aws_arn" in discovered()[0]["claims_supported"]


def test_principal_tags_of_a_role_of_credports_account_are_claims(v2: Configure) -> None:
    boto3.client("iam").tag_role(RoleName=ROLE_NAME, Tags=[{"Key": "team", "Value": "build"}])
    v2()  # a fresh container: the role (and its tags) is read at the first token
    assert decode(token())[1][f"{ISSUER}/"]["principal_tags"] == {"team": "build"}


# Size -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", SIGNERS)
@pytest.mark.parametrize("alg", ["RS256", "ES256", "ES384"])
def test_fifty_request_and_fifty_principal_tags_sign_past_the_kms_raw_limit(
    v2: Configure, signer: str, alg: str
) -> None:
    """KMS Sign takes 4096 bytes as RAW: a longer signing input goes as its digest (the embedded KMS signs a
    DIGEST as AWS does: local/kms_sign.py), and the signature verifies over the whole token."""
    boto3.client("iam").tag_role(
        RoleName=ROLE_NAME, Tags=[{"Key": f"principal-{i:02}", "Value": "p" * 40} for i in range(50)]
    )
    v2({"CREDPORT_TOKEN_SIGNER": signer})
    compact = token(("alg", alg), *[(f"tag.request-{i:02}", "r" * 40) for i in range(50)])
    assert len(compact.rsplit(".", 1)[0]) > 4096
    identity = verify_both(compact, "sts.amazonaws.com")[f"{ISSUER}/"]
    assert len(identity["request_tags"]) == 50
    assert len(identity["principal_tags"]) == 50


def test_a_token_over_the_documented_maximum_is_refused(v2: Configure) -> None:
    from chalicelib.tokens.claims import MAX_PAYLOAD_BYTES

    biggest = [(f"tag.{i:02}" + "k" * 125, "v" * 256) for i in range(50)]  # ~20 KB of tags
    assert refused(*biggest) == "token_too_large"
    assert MAX_PAYLOAD_BYTES == 12 * 1024


# The token policy ---------------------------------------------------------------------------------------------------

POLICY = {
    "version": "credport-token-policy/1",
    "rules": [
        {
            "name": "build-role",
            "principals": {"arn": [f"arn:aws:iam::{ACCOUNT}:role/App+Role*"], "account": [ACCOUNT]},
            "audiences": ["https://a.example.com", "https://svc.example.org/*"],
            "max_ttl": 900,
            "algorithms": ["ES384"],
            "request_tag_keys": ["team", "env-*"],
        },
        {
            "name": "org-members",
            "principals": {"org_id": ["o-zzzzzzzzzz"]},
            "audiences": ["sts.amazonaws.com"],
        },
    ],
}


@pytest.fixture
def policy_file(v2: Configure) -> Any:
    """A policy document where the deployment keeps it (under chalicelib/, the only folder chalice packages)."""
    import uuid
    from pathlib import Path

    written: list[Path] = []

    def write(document: Any) -> None:
        path = Path(credport_app.__file__).parent / "chalicelib" / f".pytest-policy-{uuid.uuid4().hex}.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        written.append(path)
        v2({"CREDPORT_TOKEN_POLICY_FILE": f"chalicelib/{path.name}"})

    yield write
    for path in written:
        path.unlink(missing_ok=True)


def audit(caplog: pytest.LogCaptureFixture, message: str) -> dict[str, Any]:
    """The fields of the last log record with ``message`` (the app's structured log: the audit trail)."""
    record = next(r for r in reversed(caplog.records) if r.getMessage() == message)
    return dict(vars(record))


def test_a_policy_rule_allows_what_it_lists_and_the_audit_log_names_it(
    policy_file: Any, caplog: pytest.LogCaptureFixture
) -> None:
    policy_file(POLICY)
    compact = token(
        ("aud", "https://a.example.com"),
        ("aud", "https://svc.example.org/x"),
        ("alg", "ES384"),
        ("ttl", "900"),
        ("tag.team", "x"),
        ("tag.env-name", "prod"),
    )
    assert decode(compact)[0]["alg"] == "ES384"
    issued = audit(caplog, "token issued")
    assert issued["rule"] == "build-role"
    assert issued["request_tag_keys"] == ["team", "env-name"]


@pytest.mark.parametrize(
    ("query", "code", "reason_part"),
    [
        ((("aud", "sts.amazonaws.com"), ("alg", "ES384"), ("ttl", "900")), "audience_not_allowed", "sts.amazon"),
        ((("aud", "https://a.example.com"), ("alg", "ES384"), ("ttl", "901")), "ttl_not_allowed", "901"),
        ((("aud", "https://a.example.com"), ("alg", "RS256"), ("ttl", "60")), "algorithm_not_allowed", "RS256"),
        (
            (("aud", "https://a.example.com"), ("ttl", "60"), ("alg", "ES384"), ("tag.cost", "1")),
            "tag_not_allowed",
            "cost",
        ),
    ],
)
def test_a_request_outside_the_policy_is_403_and_only_the_audit_log_names_the_rule(
    policy_file: Any, caplog: pytest.LogCaptureFixture, query: Any, code: str, reason_part: str
) -> None:
    policy_file(POLICY)
    reply = get("/token", query)
    assert (reply.status, reply.body["error"]) == (403, code)
    assert "build-role" not in reply.body["message"]
    assert "org-members" not in reply.body["message"]
    refusal = audit(caplog, "token refused by policy")
    assert (refusal["error"], refusal["rule"]) == (code, "build-role")
    # The caller's text is logged by digest only (a refused value may be anything); a ttl or an algorithm as is.
    assert refusal["aud_sha256"] == [hashlib.sha256(v.encode()).hexdigest()[:16] for k, v in query if k == "aud"]
    sent = [v for _, v in query] + [k for k, _ in query]
    if code in ("ttl_not_allowed", "algorithm_not_allowed"):
        assert reason_part in refusal["reason"]
    else:
        assert "reason" not in refusal
        assert not [text for text in sent if text.startswith(("https://", "tag.")) and text in repr(refusal)]
        assert "cost" not in json.dumps(refusal, default=str)


def test_a_principal_no_rule_matches_is_refused_with_no_rule_named(
    policy_file: Any, caplog: pytest.LogCaptureFixture
) -> None:
    policy_file({**POLICY, "rules": POLICY["rules"][1:]})
    reply = get("/token", [("aud", "sts.amazonaws.com")])
    assert (reply.status, reply.body["error"]) == (403, "audience_not_allowed")
    assert audit(caplog, "token refused by policy")["rule"] is None
    member = caller_identity(org="o-zzzzzzzzzz")
    assert decode(token(identity=member))[1]["aud"] == "sts.amazonaws.com"


def test_a_bad_policy_document_names_every_problem_and_serves_nothing(policy_file: Any) -> None:
    bad = {"version": "credport-token-policy/1", "rules": [{"name": "x", "audiences": ["*"], "max_ttl": 5}, {}]}
    policy_file(bad)
    reply = get("/token", [("aud", "sts.amazonaws.com")])
    assert (reply.status, reply.body["error"]) == (500, "configuration_error")
    from chalicelib.errors import ConfigError
    from tests.conftest import app_services

    with pytest.raises(ConfigError) as raised:
        _ = app_services().tokens.policy
    problems = " ".join(raised.value.problems)
    for place in ("rules[0].audiences[0]", "rules[0].max_ttl", "rules[1]"):
        assert place in problems
    assert all(p.startswith("CREDPORT_TOKEN_POLICY_FILE: ") for p in raised.value.problems)


def test_a_policy_file_outside_chalicelib_is_a_configuration_error(v2: Configure) -> None:
    from chalicelib.config import reset_settings
    from chalicelib.config.environment import get_settings
    from chalicelib.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        v2({"CREDPORT_TOKEN_POLICY_FILE": ".chalice/token-policy.json"})
    reset_settings()
    with pytest.raises(ConfigError):
        get_settings()
    assert raised.value.invalid == ("CREDPORT_TOKEN_POLICY_FILE",)


organization = organization_fixture  # the organization of test_principal_details, with its lookup role


def test_the_ou_path_is_a_claim_where_a_lookup_role_is_set(v2: Configure, organization: Organization) -> None:
    """The caller's account sits right under the organization's root: its path is ``o-…/r-…/``."""
    o = organization
    member = caller_identity(org=o.id)
    assert "ou_path" not in decode(token(identity=member))[1][f"{ISSUER}/"]  # no lookup role: no path
    v2({"CREDPORT_ORGANIZATION_LOOKUP_ROLE_ARN": LOOKUP_ROLE})
    identity = decode(token(identity=member))[1][f"{ISSUER}/"]
    assert (identity["org_id"], identity["ou_path"]) == (o.id, f"{o.id}/{o.root}/")
    assert "ou_path" not in decode(token())[1][f"{ISSUER}/"]  # a caller in no organization has none
    v2({"CREDPORT_TOKEN_CLAIMS": "flat", "CREDPORT_ORGANIZATION_LOOKUP_ROLE_ARN": LOOKUP_ROLE})
    assert decode(token(identity=member))[1]["aws_ou_path"] == f"{o.id}/{o.root}/"


def test_defaults_are_narrowed_to_what_the_allowing_rule_grants(policy_file: Any) -> None:
    """A caller naming no alg gets the first enabled one its rule allows; no ttl, the default or the rule's max_ttl,
    whichever is shorter (CREDPORT_TOKEN_DEFAULT_TTL is 3600 here, build-role's max_ttl 900)."""
    policy_file(POLICY)
    header, claims, _ = decode(token(("aud", "https://a.example.com")))
    assert header["alg"] == "ES384"  # RS256 comes first, but build-role allows ES384 only
    assert claims["exp"] - claims["iat"] == 900
    assert refused(("aud", "https://a.example.com"), ("alg", "RS256"), status=403) == "algorithm_not_allowed"


def test_an_aws_sts_audience_is_only_asked_for_alone(v2: Configure) -> None:
    """AWS STS takes a token for any of its audiences: every other audience's holder could replay it to STS."""
    assert refused(("aud", "https://a.example.com"), ("aud", "sts.amazonaws.com")) == "invalid_audience"
    assert decode(token(("aud", "sts.amazonaws.com")))[1]["aud"] == "sts.amazonaws.com"
    v2({"CREDPORT_TOKEN_EXCLUSIVE_AUDIENCES": "https://a.example.com"})
    assert refused(("aud", "https://a.example.com"), ("aud", "https://b.example.com")) == "invalid_audience"
    assert decode(token(("aud", "https://b.example.com"), ("aud", "sts.amazonaws.com")))[1]["aud"] == [
        "https://b.example.com",
        "sts.amazonaws.com",
    ]


@pytest.mark.parametrize("name", ["aud", "alg", "ttl"])
def test_an_empty_parameter_is_refused_never_a_default(v2: Configure, name: str) -> None:
    """`credport token --aud "$UNSET"` must not print a token for the default audience."""
    assert refused((name, "")) == {"aud": "invalid_audience", "alg": "invalid_algorithm", "ttl": "invalid_ttl"}[name]


@pytest.mark.parametrize(
    "keys",
    [
        [" aws:x"],  # a reader trims
        ["aws:x "],
        ["\u00a0aws:x"],
        ["\uff41\uff57\uff53:x"],  # full-width letters: NFKC makes them aws:x
        ["\U0001d41a\U0001d430\U0001d42c:x"],  # mathematical bold
        ["\uff43\uff52\uff45\uff44\uff50\uff4f\uff52\uff54:y"],
        ["stra\u00dfe", "STRASSE"],  # one key, case-folded
        ["kelvin", "\u212aELVIN"],  # the Kelvin sign folds to k
    ],
)
def test_tag_keys_are_compared_as_a_reader_would(v2: Configure, keys: list[str]) -> None:
    assert refused(*[(f"tag.{key}", "v") for key in keys]) == "invalid_tag"
