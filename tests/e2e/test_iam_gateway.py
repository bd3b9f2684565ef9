"""End to end over HTTP with real SigV4: the local stack's API Gateway checks execute-api:Invoke as AWS does, and
answers a failing authorizer through the gateway responses template.yaml declares in the API's definition.

API Gateway Developer Guide: "Control access to a REST API with IAM permissions", "How API Gateway resource
policies affect authorization workflow" (table B), "Gateway response types".
"""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.apidef import REST_API, gateway_responses
from local.template import load_template
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
REGION = "us-east-1"
ACCOUNT = "123456789012"
TOKEN_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:local/api/GET/token"
MASKED_TOKEN_ARN = f"arn:aws:execute-api:{REGION}:********{ACCOUNT[-4:]}:local/api/GET/token"


def get(stack: RunningStack, path: str, credentials: Credentials) -> requests.Response:
    request = AWSRequest(method="GET", url=stack.api + path)
    SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
    return requests.get(request.url, headers=dict(request.headers), timeout=10)


def forged(stack: RunningStack, target: str, credentials: Credentials, host: str) -> http.client.HTTPResponse:
    """GET ``target`` with ``host`` as Host, signed as a forger would: over that Host, and over the URL a gateway
    reading ``http://{host}{target}`` sees (the method ARN came from it)."""
    authority = urlsplit(stack.api).netloc
    seen = urlsplit(f"http://{host}{target}")
    signed = f"http://{authority}{seen.path}" + (f"?{seen.query}" if seen.query else "")
    request = AWSRequest(method="GET", url=signed, headers={"Host": host})
    SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
    connection = http.client.HTTPConnection(authority, timeout=10)
    connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
    for name, value in request.headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer


def new_user(stack: RunningStack) -> tuple[str, Credentials]:
    """An IAM user with an access key and no policy, made with the developer's credentials."""
    iam, name = stack.client("iam"), f"e2e-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def invoke_policy(effect: str, resource: str) -> str:
    statement = {"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def refused(response: requests.Response) -> str:
    """The refusal of an IAM caller: 403 AccessDeniedException, in credport's shape (template.yaml's
    ACCESS_DENIED response) carrying API Gateway's message."""
    assert response.status_code == 403, response.text
    assert response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == "forbidden"
    return str(body["message"])


def test_a_user_without_any_policy_gets_403_from_token(stack: RunningStack) -> None:
    name, credentials = new_user(stack)
    assert refused(get(stack, "/token", credentials)) == (
        f"User: arn:aws:iam::{ACCOUNT}:user/{name} is not authorized to perform: execute-api:Invoke on resource: "
        f"{MASKED_TOKEN_ARN} because no identity-based policy allows the execute-api:Invoke action"
    )


def test_an_invoke_grant_on_token_gets_a_token_and_an_explicit_deny_wins(stack: RunningStack) -> None:
    name, credentials = new_user(stack)
    iam = stack.client("iam")
    iam.put_user_policy(UserName=name, PolicyName="token", PolicyDocument=invoke_policy("Allow", TOKEN_ARN))
    granted = get(stack, "/token", credentials)
    assert granted.status_code == 200, granted.text
    assert granted.json()["token_type"] == "Bearer"
    # A token is the caller's own: no cache on the way keeps it (RFC 6749 section 5.1).
    assert (granted.headers["Cache-Control"], granted.headers["Content-Type"]) == ("no-store", "application/json")
    assert "no identity-based policy allows" in refused(get(stack, "/whoami", credentials))  # one method only
    iam.put_user_policy(UserName=name, PolicyName="no-token", PolicyDocument=invoke_policy("Deny", "*"))
    assert refused(get(stack, "/token", credentials)).endswith(
        f"{MASKED_TOKEN_ARN} with an explicit deny in an identity-based policy"
    )


def test_the_developer_is_an_administrator_and_the_workload_role_may_call_the_api(stack: RunningStack) -> None:
    iam = stack.client("iam")
    (attached,) = iam.list_attached_user_policies(UserName="credport-developer")["AttachedPolicies"]
    version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
    assert document["Statement"] == [{"Effect": "Allow", "Action": "*", "Resource": "*"}]  # AdministratorAccess
    assumed = stack.client("sts").assume_role(RoleArn=stack.info["workload_role_arn"], RoleSessionName="e2e-iam")
    c = assumed["Credentials"]
    session = Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    for path in ("/token", "/whoami"):
        assert get(stack, path, session).status_code == 200, path
    (name,) = iam.list_role_policies(RoleName="credport-local-workload")["PolicyNames"]
    statements = iam.get_role_policy(RoleName="credport-local-workload", PolicyName=name)["PolicyDocument"]
    assert [s["Action"] for s in statements["Statement"]] == ["execute-api:Invoke"]  # nothing else


def test_an_authorizer_outage_answers_through_authorizer_configuration_error(stack: RunningStack) -> None:
    # The stack plugin (tests/e2e/stack_plugin.py, OUTAGE_TOKEN) makes the bearer authorizer meet a throttled
    # Secrets Manager: it raises, which API Gateway maps to AUTHORIZER_CONFIGURATION_ERROR.
    definition = load_template(REPO_ROOT / "template.yaml")["Resources"][REST_API]["Properties"]["DefinitionBody"]
    declared = gateway_responses(definition)["AUTHORIZER_CONFIGURATION_ERROR"]
    response = requests.get(
        stack.api + "/session", headers={"Authorization": "Bearer e2e-authorizer-outage"}, timeout=10
    )
    assert response.status_code == declared.status == 503
    assert response.headers["x-amzn-ErrorType"] == "AuthorizerConfigurationException"
    assert response.content == declared.body(None)
    assert (response.headers["Retry-After"], response.headers["Cache-Control"]) == ("1", "no-store")


def test_a_host_carrying_a_path_never_gets_a_token_for_a_caller_allowed_only_whoami(stack: RunningStack) -> None:
    # "GET /token" with Host "127.0.0.1:PORT/whoami#" was authorised as GET/whoami and answered a token.
    name, credentials = new_user(stack)
    whoami = TOKEN_ARN.removesuffix("/token") + "/whoami"
    stack.client("iam").put_user_policy(UserName=name, PolicyName="w", PolicyDocument=invoke_policy("Allow", whoami))
    authority = urlsplit(stack.api).netloc
    assert forged(stack, "/token", credentials, f"{authority}/whoami#").status == 400
    assert get(stack, "/whoami", credentials).status_code == 200
    assert "no identity-based policy allows" in refused(get(stack, "/token", credentials))


@pytest.mark.parametrize("how", ["host with a fragment", "trailing slash"])
def test_an_explicit_deny_on_token_is_not_escaped(stack: RunningStack, how: str) -> None:
    # Host "127.0.0.1:PORT#" made the method ARN GET/, "GET /token/" made it GET/token/: both escaped the Deny.
    name, credentials = new_user(stack)
    iam = stack.client("iam")
    api = TOKEN_ARN.removesuffix("/GET/token")
    iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=invoke_policy("Allow", f"{api}/*"))
    iam.put_user_policy(UserName=name, PolicyName="no-token", PolicyDocument=invoke_policy("Deny", TOKEN_ARN))
    assert get(stack, "/whoami", credentials).status_code == 200
    authority = urlsplit(stack.api).netloc
    if how == "trailing slash":
        assert refused(get(stack, "/token/", credentials)).endswith(
            f"{MASKED_TOKEN_ARN} with an explicit deny in an identity-based policy"
        )
    else:
        assert forged(stack, "/token", credentials, f"{authority}#").status == 400
