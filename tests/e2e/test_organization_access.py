"""OrganizationId on the local stack (``python -m local up --organization``): the API's resource policy lets principals
of the organization call its workload routes (GET /token, GET /whoami, POST /session) from their own accounts, the
gateway refuses everyone else before the app runs, the operator routes stay closed to every other account, and the
public routes still answer anonymous callers.

Across accounts, API Gateway needs the caller's identity policy AND the resource policy to allow; in the API's own
account either suffices (API Gateway Developer Guide, "How API Gateway resource policies affect authorization
workflow", tables A and B), which is why the organization's statement excludes credport's own account: its users
still need an identity policy of their own. Each caller here is an IAM user of its account, made by that account.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from joserfc import jwt
from joserfc.jwk import KeySet

from local.organization import account_client
from tests.e2e.conftest import RunningStack, launch_e2e

pytestmark = pytest.mark.e2e
REGION = "us-east-1"
ACCOUNT = "123456789012"  # the stack's account: the organization's management account
MASKED_TOKEN_ARN = f"arn:aws:execute-api:{REGION}:********{ACCOUNT[-4:]}:local/api/GET/token"
# The README's caller-side policy: execute-api:Invoke on the token route of credport's API, in credport's account.
CALLER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "execute-api:Invoke",
            "Resource": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:*/*/GET/token",
        }
    ],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = launch_e2e(tmp_path_factory.mktemp("organization"), "--quiet", "--organization")
    yield running
    assert running.stop() == 0, running.log_text()


def caller(stack: RunningStack, who: str, *, policy: dict[str, Any] | None = CALLER_POLICY) -> tuple[str, Credentials]:
    """An IAM user of the ``member`` or ``outsider`` account, made by that account's own administrator."""
    iam = account_client(stack.info["organization"][who], "iam", endpoint=stack.info["aws_endpoint"], region=REGION)
    name = f"workload-{uuid.uuid4().hex[:8]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="credport", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def own_user(stack: RunningStack, *, policy: dict[str, Any] | None) -> tuple[str, Credentials]:
    """An IAM user of credport's own account (the stack's), made with the developer's credentials."""
    iam, name = stack.client("iam"), f"own-{uuid.uuid4().hex[:8]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="credport", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def get(stack: RunningStack, path: str, credentials: Credentials | None = None) -> requests.Response:
    return call(stack, "GET", path, credentials)


def call(
    stack: RunningStack, method: str, path: str, credentials: Credentials | None = None, body: bytes = b""
) -> requests.Response:
    headers = {"Content-Type": "application/json"} if body else {}
    request = AWSRequest(method=method, url=stack.api + path, data=body, headers=headers)
    if credentials is not None:
        SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
    return requests.request(method, request.url, data=body, headers=dict(request.headers), timeout=30)


def gateway_refusal(response: requests.Response) -> str:
    """API Gateway's own 403 (ACCESS_DENIED, AccessDeniedException), not the app's: the app never answers with
    x-amzn-ErrorType, and its organization refusal is ``outside_organization``."""
    assert response.status_code == 403, response.text
    assert response.headers.get("x-amzn-ErrorType") == "AccessDeniedException"
    body: dict[str, Any] = response.json()
    assert body["error"] == "forbidden", body
    return str(body["message"])


def test_the_stack_runs_with_an_organization_of_its_account(stack: RunningStack) -> None:
    org = stack.info["organization"]
    assert org["id"].startswith("o-")
    assert org["management_account"] == ACCOUNT
    assert len({ACCOUNT, org["member"]["account_id"], org["outsider"]["account_id"]}) == 3
    assert stack.info["app_env"]["CREDPORT_TOKEN_ORGANIZATION_ID"] == org["id"]  # the app checks it again


def test_a_caller_of_a_member_account_gets_a_token(stack: RunningStack) -> None:
    arn, credentials = caller(stack, "member")
    assert arn.startswith(f"arn:aws:iam::{stack.info['organization']['member']['account_id']}:user/")
    answer = get(stack, "/token", credentials)
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["token"], _jwks(stack), algorithms=["RS256", "ES384"]).claims
    assert claims["sub"] == arn
    assert claims[f"{stack.api}/"]["org_id"] == stack.info["organization"]["id"]


def test_one_issuer_for_every_account_of_the_organization(stack: RunningStack) -> None:
    """Issue #18, "one issuer for many accounts": unlike STS GetWebIdentityToken, whose issuer is a URL of each
    account, a caller of a member account gets a token whose ``iss`` is exactly the one a caller of credport's own
    account gets, verified with the same keys: those the discovery document of that one issuer points to. A relying
    party (an IAM OIDC provider in any account) registers one issuer for the whole organization."""
    discovery = get(stack, "/.well-known/openid-configuration").json()
    assert discovery["issuer"] == stack.api
    keys = KeySet.import_key_set(requests.get(discovery["jwks_uri"], timeout=30).json())
    member_arn, member = caller(stack, "member")
    own_arn, own = own_user(stack, policy=CALLER_POLICY)
    claims = {}
    for who, credentials in (("member", member), ("own", own)):
        answer = get(stack, "/token?aud=sts.amazonaws.com&alg=ES384", credentials)
        assert answer.status_code == 200, answer.text
        token = jwt.decode(answer.json()["token"], keys, algorithms=discovery["id_token_signing_alg_values_supported"])
        claims[who] = token.claims
    assert claims["member"]["iss"] == claims["own"]["iss"] == discovery["issuer"]
    assert (claims["member"]["sub"], claims["own"]["sub"]) == (member_arn, own_arn)
    accounts = {who: c[f"{stack.api}/"]["aws_account"] for who, c in claims.items()}
    assert accounts == {"member": stack.info["organization"]["member"]["account_id"], "own": ACCOUNT}


def test_a_caller_outside_the_organization_is_refused_by_the_gateway(stack: RunningStack) -> None:
    arn, credentials = caller(stack, "outsider")  # its own account allows it: the resource policy does not
    assert gateway_refusal(get(stack, "/token", credentials)) == (
        f"User: {arn} is not authorized to perform: execute-api:Invoke on resource: {MASKED_TOKEN_ARN} "
        "because no resource-based policy allows the execute-api:Invoke action"
    )


def test_a_member_caller_still_needs_its_own_accounts_permission(stack: RunningStack) -> None:
    _arn, credentials = caller(stack, "member", policy=None)
    assert gateway_refusal(get(stack, "/token", credentials)).endswith(
        "because no identity-based policy allows the execute-api:Invoke action"
    )


def test_a_user_of_credports_own_account_needs_its_own_identity_policy(stack: RunningStack) -> None:
    """The organization's statement would otherwise let every principal of credport's own account in without any
    identity policy (same account: either policy suffices); with one, the user still gets a token."""
    arn, credentials = own_user(stack, policy=None)
    assert arn.startswith(f"arn:aws:iam::{ACCOUNT}:user/")
    assert gateway_refusal(get(stack, "/token", credentials)) == (
        f"User: {arn} is not authorized to perform: execute-api:Invoke on resource: {MASKED_TOKEN_ARN} "
        "because no identity-based policy allows the execute-api:Invoke action"
    )
    arn, credentials = own_user(stack, policy=CALLER_POLICY)
    answer = get(stack, "/token", credentials)
    assert answer.status_code == 200, answer.text
    assert jwt.decode(answer.json()["token"], _jwks(stack), algorithms=["RS256", "ES384"]).claims["sub"] == arn


# An administrator of a member account: execute-api:Invoke on everything, as its own account sees it.
INVOKE_ANYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}],
}


@pytest.mark.parametrize("path", ["/transfer/clients/x/send", "/transfer/import"])
def test_no_other_account_reaches_the_operator_routes(stack: RunningStack, path: str) -> None:
    """A member account's administrator is refused at the gateway on the operator routes, which no statement of the
    resource policy allows; the same caller, and a member caller with the README's policy, still get a token."""
    arn, credentials = caller(stack, "member", policy=INVOKE_ANYTHING)
    resource = f"arn:aws:execute-api:{REGION}:********{ACCOUNT[-4:]}:local/api/POST{path}"
    assert gateway_refusal(call(stack, "POST", path, credentials, b"{}")) == (
        f"User: {arn} is not authorized to perform: execute-api:Invoke on resource: {resource} "
        "because no resource-based policy allows the execute-api:Invoke action"
    )
    assert get(stack, "/token", credentials).status_code == 200  # a workload route: its account and the org allow
    _readme_arn, readme_credentials = caller(stack, "member")
    assert get(stack, "/token", readme_credentials).status_code == 200


PUBLIC = ["/health", "/.well-known/openid-configuration", "/.well-known/jwks.json", "/transfer/import-key"]


@pytest.mark.parametrize("path", [*PUBLIC, "/auto-id/keys"])
def test_public_routes_answer_anonymous_callers(stack: RunningStack, path: str) -> None:
    answer = get(stack, path)
    assert answer.status_code == 200, answer.text


def test_the_unauthenticated_and_bearer_routes_reach_the_app(stack: RunningStack) -> None:
    """POST /auto-id (a function of its own) and the bearer routes are the app's to refuse, not the gateway's."""
    autoid = requests.post(f"{stack.api}/auto-id", json={"jwe": "x"}, timeout=30)
    assert autoid.status_code in (400, 401), autoid.text
    assert "x-amzn-ErrorType" not in autoid.headers
    session = get(stack, "/session")  # no bearer token: the authorizer's 401, not the resource policy's 403
    assert session.status_code == 401, session.text


def _jwks(stack: RunningStack) -> Any:
    return KeySet.import_key_set(get(stack, "/.well-known/jwks.json").json())
