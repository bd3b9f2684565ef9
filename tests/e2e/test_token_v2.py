"""Token service v2 end to end (issue #18): ``GET /token`` over HTTP with real SigV4 on the local stack, and the
``credport token`` CLI in a subprocess with the stack's developer profile.

Several audiences, the algorithm per request and request tags reach the token; every enabled algorithm verifies
through discovery over HTTP with two independent libraries (joserfc, and PyJWT's ``PyJWKClient``); every kind of
refusal is one line on standard error and exit code 1 (``Exit.REFUSED``, client/errors.py: "the service or AWS
refused (4xx)"; 3, ``UNAVAILABLE``, is for an unreachable or failing service), standard output empty.

The local stack allows ``sts.amazonaws.com`` and any ``https://`` audience (local/stack.py) and enables RS256 and
ES384 (the defaults). The token policy's own refusals (403) need a document narrower than that: a stack of this
module's own loads one (:func:`policy_stack`, through tests/e2e/token_policy_plugin.py).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jwt as pyjwt
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.util import urlsafe_b64decode

from local.launcher import launch
from tests.e2e.conftest import START_TIMEOUT, RunningStack
from tests.e2e.test_token_service import BIN, run

pytestmark = pytest.mark.e2e
ACCOUNT = "123456789012"
A, B = "https://a.example.com", "https://b.example.com"  # allowed by the local stack's "https://*"
C = "https://c.example.com"
ENABLED = ("RS256", "ES384")  # CREDPORT_TOKEN_ALGORITHMS' default, the pair STS GetWebIdentityToken offers
POLICY_PLUGIN = "tests.e2e.token_policy_plugin"


def credport_token(
    stack: RunningStack, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "credport"), "token", "--endpoint", stack.api, *args]
    if env is None:
        return run(stack, *command)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def signed_get(stack: RunningStack, pairs: Sequence[tuple[str, str]]) -> requests.Response:
    """``GET /token`` signed with SigV4 as the developer; the query encoded as SigV4 canonicalises it."""
    url = f"{stack.api}/token" + ("?" + urlencode(pairs, quote_via=quote) if pairs else "")
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(stack.credentials(), "execute-api", stack.region).add_auth(request)
    return requests.get(url, headers=dict(request.headers), timeout=30)


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(urlsafe_b64decode(header.encode())), json.loads(urlsafe_b64decode(payload.encode()))


def identity(stack: RunningStack, claims: dict[str, Any]) -> dict[str, Any]:
    """The caller's AWS identity: one object under the namespace claim, by default the issuer with a ``/``."""
    value: dict[str, Any] = claims[f"{stack.api}/"]
    return value


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], status: str, code: str) -> None:
    """What a script sees of a refusal: exit 1, nothing on standard output, one line naming the answer's code."""
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("credport: GET "), result.stderr
    assert f"/token answered {status}: {code}: " in result.stderr


# Requests and claims ----------------------------------------------------------------------------------------------


def test_two_audiences_es384_and_a_request_tag_from_the_cli(stack: RunningStack) -> None:
    result = credport_token(stack, "--aud", A, "--aud", B, "--alg", "ES384", "--tag", "team=x", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) == {"token", "token_type", "expires_in"}
    header, claims = unverified(answer["token"])
    assert header["alg"] == "ES384"
    assert claims["aud"] == [A, B]  # several audiences: an array, in the order asked
    assert claims["iss"] == stack.api
    assert claims["sub"] == f"arn:aws:iam::{ACCOUNT}:user/credport-developer"
    assert identity(stack, claims)["request_tags"] == {"team": "x"}
    assert set(claims) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", f"{stack.api}/"}

    single = json.loads(credport_token(stack, "--aud", A, "--json").stdout)["token"]
    assert unverified(single)[1]["aud"] == A  # one audience: a string claim
    assert unverified(single)[0]["alg"] == ENABLED[0]  # no --alg: the first enabled algorithm
    assert "request_tags" not in identity(stack, unverified(single)[1])  # none asked: absent, never empty


@pytest.mark.parametrize("alg", ENABLED)
def test_each_enabled_algorithm_verifies_through_discovery_with_joserfc_and_pyjwt(
    stack: RunningStack, alg: str
) -> None:
    """Two relying parties that know only the issuer: each fetches the discovery document and the JWKS it names
    over HTTP, and verifies signature, issuer, audience and lifetime with its own library."""
    discovery = requests.get(f"{stack.api}/.well-known/openid-configuration", timeout=30).json()
    assert discovery["issuer"] == stack.api
    assert discovery["id_token_signing_alg_values_supported"] == list(ENABLED)
    response = signed_get(stack, [("aud", A), ("aud", B), ("alg", alg), ("ttl", "900")])
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert unverified(token)[0]["alg"] == alg

    keys = requests.get(discovery["jwks_uri"], timeout=30).json()
    published = {k["kid"]: k for k in keys["keys"]}
    assert published[unverified(token)[0]["kid"]]["alg"] == alg  # each algorithm signs with keys of its own
    by_joserfc = jwt.decode(token, KeySet.import_key_set(keys), algorithms=[alg])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": stack.api}, aud={"essential": True, "value": B}).validate(
        by_joserfc.claims
    )

    client = pyjwt.PyJWKClient(discovery["jwks_uri"], cache_keys=False)
    by_pyjwt = pyjwt.decode(
        token,
        client.get_signing_key_from_jwt(token).key,
        algorithms=[alg],
        audience=B,
        issuer=discovery["issuer"],
    )
    assert by_pyjwt == by_joserfc.claims
    assert by_pyjwt["exp"] - by_pyjwt["iat"] == 900


# Refusals ---------------------------------------------------------------------------------------------------------

REFUSALS = {
    "invalid_audience": (["--aud", A, "--aud", A], "400 Bad Request"),  # each audience once
    "invalid_algorithm": (["--alg", "ES256"], "400 Bad Request"),  # a known algorithm this deployment has not enabled
    "invalid_ttl": (["--ttl", "59"], "400 Bad Request"),  # under CREDPORT_TOKEN_MIN_TTL
    "invalid_tag": (["--tag", "aws:team=x"], "400 Bad Request"),  # a reserved prefix
    "audience_not_allowed": (["--aud", "api://not-allowed"], "403 Forbidden"),  # the implicit policy's allow-list
}


@pytest.mark.parametrize("code", list(REFUSALS))
def test_a_refusal_is_one_line_and_exit_1(stack: RunningStack, code: str) -> None:
    args, status = REFUSALS[code]
    assert_one_line_refusal(credport_token(stack, *args, "--json"), status, code)


def test_an_unknown_query_parameter_is_refused_not_ignored(stack: RunningStack) -> None:
    """The CLI only sends the parameters it knows; over HTTP a misspelt ``aud`` must not mean the default one."""
    response = signed_get(stack, [("audience", A)])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_parameter"
    assert "'audience'" in response.json()["message"]


@pytest.fixture
def heavily_tagged_user(stack: RunningStack, tmp_path: Path) -> dict[str, str]:
    """A CLI environment as a new IAM user of credport's account with fifty maximal IAM tags (128-character keys,
    256-character values): its tags are claims (``principal_tags``), about 19 KB of them."""
    iam, name = stack.client("iam"), f"e2e-tagged-{uuid.uuid4().hex[:8]}"
    tags = [{"Key": f"{i:02}" + "k" * 126, "Value": "v" * 256} for i in range(50)]
    iam.create_user(UserName=name, Tags=tags)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=name, PolicyName="credport", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    env = {k: v for k, v in stack.env().items() if k != "AWS_PROFILE"}
    env.update(
        AWS_ACCESS_KEY_ID=key["AccessKeyId"],
        AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
        AWS_DEFAULT_REGION=stack.region,
    )
    return env


def test_a_token_too_large_is_refused_before_it_is_signed(
    stack: RunningStack, heavily_tagged_user: dict[str, str]
) -> None:
    """chalicelib/tokens/claims.py caps the claims at 12 KiB, so every token fits STS's 20,000-character
    WebIdentityToken. Principal tags reach the cap with a short request; request tags alone would need a query of
    more than 12 KiB, which API Gateway's quotas on a request's URL and headers may not let through on AWS."""
    assert_one_line_refusal(
        credport_token(stack, "--json", env=heavily_tagged_user), "400 Bad Request", "token_too_large"
    )


# The token policy's refusals: a stack of this module's own, with a policy document -----------------------------

POLICY = {
    "version": "credport-token-policy/1",
    "rules": [
        {
            "name": "e2e-narrow",
            "description": "Narrower than the deployment on every axis, so each of the policy's checks can refuse.",
            "principals": {"account": [ACCOUNT]},
            "audiences": ["sts.amazonaws.com", A, C],
            "max_ttl": 900,
            "algorithms": ["RS256"],
            "request_tag_keys": ["team"],
        }
    ],
}
# The policy checks audience, ttl, algorithm, tags in that order and names the first that fails: each request is
# within the rule but for one part.
POLICY_REFUSALS = {
    "audience_not_allowed": ["--aud", B, "--ttl", "900"],  # https, so the deployment's allow-list would take it
    "ttl_not_allowed": ["--ttl", "901"],  # within the deployment's 60..43200
    "algorithm_not_allowed": ["--alg", "ES384", "--ttl", "900"],  # enabled by the deployment
    "tag_not_allowed": ["--tag", "env=prod", "--ttl", "900"],  # a valid tag whose key the rule does not list
}


@pytest.fixture(scope="module")
def policy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A local stack whose token policy is :data:`POLICY` (``CREDPORT_TOKEN_POLICY_FILE``, read from a scratch app
    root by tests/e2e/token_policy_plugin.py); the variables reach the stack's process through its environment."""
    root = tmp_path_factory.mktemp("policy-app-root")
    (root / "chalicelib").mkdir()
    (root / "chalicelib" / "e2e-token-policy.json").write_text(json.dumps(POLICY))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CREDPORT_TOKEN_POLICY_FILE", "chalicelib/e2e-token-policy.json")
        patch.setenv("CREDPORT_E2E_APP_ROOT", str(root))
        running = launch(
            tmp_path_factory.mktemp("policy-stack"), "--quiet", plugins=(POLICY_PLUGIN,), timeout=START_TIMEOUT
        )
    yield running
    assert running.stop() == 0, running.log_text()


def test_what_the_policy_allows_is_signed(policy_stack: RunningStack) -> None:
    result = credport_token(policy_stack, "--aud", A, "--aud", C, "--ttl", "900", "--tag", "team=x")
    assert result.returncode == 0, result.stderr
    _, claims = unverified(result.stdout.strip())
    assert claims["aud"] == [A, C]
    assert identity(policy_stack, claims)["request_tags"] == {"team": "x"}


@pytest.mark.parametrize("code", list(POLICY_REFUSALS))
def test_each_policy_refusal_is_one_line_and_exit_1(policy_stack: RunningStack, code: str) -> None:
    assert_one_line_refusal(credport_token(policy_stack, *POLICY_REFUSALS[code], "--json"), "403 Forbidden", code)
