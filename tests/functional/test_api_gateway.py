"""The local gateway as API Gateway runs an API: execute-api:Invoke on IAM routes, custom authorizer outcomes,
gateway responses and the API's resource policy. A small app served in-process, callers and policies in moto.

API Gateway Developer Guide: "Control access to a REST API with IAM permissions", "How API Gateway resource
policies affect authorization workflow" (tables A and B), "Gateway response types".
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from chalice.app import AuthRequest, AuthResponse, Chalice, IAMAuthorizer

from chalicelib.aws.clients import ClientFactory
from local.apidef import GatewayResponse
from local.credentials import MotoCredentials
from local.gateway import ApiServer, make_thread_safe
from tests.conftest import ACCOUNT_ID, REGION, provision_template

OTHER_ACCOUNT = "111111111111"
API = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:local/api"
MASKED = f"arn:aws:execute-api:{REGION}:********{ACCOUNT_ID[-4:]}:local/api"
NO_IDENTITY_ALLOW = "because no identity-based policy allows the execute-api:Invoke action"
NO_RESOURCE_ALLOW = "because no resource-based policy allows the execute-api:Invoke action"


def small_app() -> Chalice:
    app = Chalice(app_name="gateway-under-test")

    @app.authorizer(ttl_seconds=0)
    def bearer(auth_request: AuthRequest) -> Any:
        token = auth_request.token
        if token == "Bearer raise":  # a dependency failed while the authorizer worked
            raise RuntimeError("ThrottlingException")
        if token == "Bearer nothing":
            return None
        if token == "Bearer other-route":
            return AuthResponse(routes=["/elsewhere"], principal_id="p")
        if token == "Bearer ok":
            return AuthResponse(routes=["*"], principal_id="p")
        raise Exception("Unauthorized")

    @app.route("/bearer", authorizer=bearer)
    def bearer_route() -> dict[str, str]:
        return {"ok": "bearer"}

    @app.route("/iam/{item}", methods=["GET", "POST"], authorizer=IAMAuthorizer())
    def iam_route(item: str) -> Any:
        assert app.current_request is not None
        return app.current_request.context["identity"]

    @app.route("/open")
    def open_route() -> dict[str, str]:
        return {"ok": "open"}

    return make_thread_safe(app)


@dataclass
class Gateway:
    url: str
    server: ApiServer

    def get(self, path: str, credentials: Credentials | None = None, **headers: str) -> requests.Response:
        request = AWSRequest(method="GET", url=self.url + path, headers=headers)
        if credentials is not None:
            SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
        return requests.get(request.url, headers=dict(request.headers), timeout=10)


def serve(responses: dict[str, GatewayResponse] | None = None, policy: Mapping[str, Any] | None = None) -> ApiServer:
    server = ApiServer(
        small_app(),
        host="127.0.0.1",
        port=0,
        credentials=MotoCredentials(),
        account_id=ACCOUNT_ID,
        region=REGION,
        responses=responses,
        resource_policy=policy,
        quiet=True,
    )
    server.start()
    return server


@pytest.fixture
def gateway(moto: None) -> Iterator[Gateway]:
    server = serve()
    yield Gateway(f"http://127.0.0.1:{server.port}", server)
    server.stop()


def allow(resource: str, effect: str = "Allow", **extra: Any) -> str:
    statement = {"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource, **extra}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def iam() -> Any:
    return boto3.client("iam", region_name=REGION)


def user(name: str) -> Credentials:
    iam().create_user(UserName=name)
    key = iam().create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def refusal(response: requests.Response) -> str:
    assert response.status_code == 403, response.text
    assert response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert set(response.json()) == {"Message"}  # API Gateway's own answer: no ACCESS_DENIED response configured
    message: str = response.json()["Message"]
    return message


def test_a_signed_caller_without_execute_api_invoke_is_refused(gateway: Gateway) -> None:
    nobody = user("nobody")
    message = refusal(gateway.get("/iam/a", nobody))
    assert message == (
        f"User: arn:aws:iam::{ACCOUNT_ID}:user/nobody is not authorized to perform: execute-api:Invoke on resource: "
        f"{MASKED}/GET/iam/a {NO_IDENTITY_ALLOW}"
    )


@pytest.mark.parametrize("where", ["user inline", "user managed", "group inline", "group managed"])
def test_execute_api_invoke_counts_from_every_identity_policy_of_a_user(gateway: Gateway, where: str) -> None:
    caller = user("caller")
    document = allow(f"{API}/GET/iam/a")
    if where.startswith("group"):
        iam().create_group(GroupName="callers")
        iam().add_user_to_group(GroupName="callers", UserName="caller")
    if where.endswith("managed"):
        arn = iam().create_policy(PolicyName="invoke", PolicyDocument=document)["Policy"]["Arn"]
        if where.startswith("group"):
            iam().attach_group_policy(GroupName="callers", PolicyArn=arn)
        else:
            iam().attach_user_policy(UserName="caller", PolicyArn=arn)
    elif where.startswith("group"):
        iam().put_group_policy(GroupName="callers", PolicyName="invoke", PolicyDocument=document)
    else:
        iam().put_user_policy(UserName="caller", PolicyName="invoke", PolicyDocument=document)
    answer = gateway.get("/iam/a", caller)
    assert answer.status_code == 200, answer.text
    assert answer.json()["userArn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/caller"
    assert NO_IDENTITY_ALLOW in refusal(gateway.get("/iam/b", caller))  # the grant names one method


def test_only_the_default_version_of_a_managed_policy_counts(gateway: Gateway) -> None:
    caller = user("versioned")
    arn = iam().create_policy(PolicyName="invoke", PolicyDocument=allow(f"{API}/GET/iam/a"))["Policy"]["Arn"]
    iam().attach_user_policy(UserName="versioned", PolicyArn=arn)
    iam().create_policy_version(PolicyArn=arn, PolicyDocument=allow(f"{API}/GET/iam/b"), SetAsDefault=True)
    assert gateway.get("/iam/b", caller).status_code == 200
    refusal(gateway.get("/iam/a", caller))  # v1 still exists, but is not the default
    iam().set_default_policy_version(PolicyArn=arn, VersionId="v1")
    assert gateway.get("/iam/a", caller).status_code == 200


def test_an_explicit_deny_wins_over_any_allow(gateway: Gateway) -> None:
    caller = user("denied")
    iam().put_user_policy(UserName="denied", PolicyName="all", PolicyDocument=allow(f"{API}/*"))
    iam().put_user_policy(UserName="denied", PolicyName="not-b", PolicyDocument=allow(f"{API}/*/iam/b", "Deny"))
    assert gateway.get("/iam/a", caller).status_code == 200
    assert refusal(gateway.get("/iam/b", caller)).endswith(
        f"{MASKED}/GET/iam/b with an explicit deny in an identity-based policy"
    )


def test_a_policy_the_embedded_iam_cannot_evaluate_never_lets_the_caller_in(gateway: Gateway) -> None:
    caller = user("odd")
    unknown_key = {"StringEquals": {"aws:RequestedRegion": REGION}}
    iam().put_user_policy(UserName="odd", PolicyName="p", PolicyDocument=allow(f"{API}/*", Condition=unknown_key))
    answer = gateway.get("/iam/a", caller)
    assert answer.status_code == 500
    assert answer.headers["x-amzn-ErrorType"] == "LocalPolicyUnsupported"


def role_session(
    name: str, policy: str | None = None, *, boundary: str | None = None, session: str | None = None
) -> Credentials:
    """A session of a new role trusting the account; ``boundary``: its permissions boundary; ``session``: the
    session policy passed to AssumeRole."""
    trust = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}
    args: dict[str, Any] = {"RoleName": name, "AssumeRolePolicyDocument": json.dumps({"Statement": [trust]})}
    if boundary is not None:
        limit = iam().create_policy(PolicyName=f"{name}-boundary", PolicyDocument=boundary)["Policy"]
        args["PermissionsBoundary"] = limit["Arn"]
    role = iam().create_role(**args)["Role"]
    if policy is not None:
        iam().put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=policy)
    assume: dict[str, Any] = {"RoleArn": role["Arn"], "RoleSessionName": "s1"}
    if session is not None:
        assume["Policy"] = session
    c = boto3.client("sts", region_name=REGION).assume_role(**assume)["Credentials"]
    return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def test_a_role_session_holds_what_its_role_allows_within_its_boundary_and_session_policy(gateway: Gateway) -> None:
    everything = allow(f"{API}/*")
    plain = role_session("plain", everything)
    assert gateway.get("/iam/a", plain).json()["userArn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/plain/s1"
    assert refusal(gateway.get("/iam/a", role_session("bare"))).startswith(
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/bare/s1 is not authorized"
    )
    bounded = role_session("bounded", everything, boundary=allow(f"{API}/GET/iam/a"))
    assert gateway.get("/iam/a", bounded).status_code == 200
    assert NO_IDENTITY_ALLOW in refusal(gateway.get("/iam/b", bounded))
    narrowed = role_session("narrowed", everything, session=allow(f"{API}/GET/iam/b"))
    assert gateway.get("/iam/b", narrowed).status_code == 200
    refusal(gateway.get("/iam/a", narrowed))


def resource_policy(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_the_resource_policy_grants_and_denies_within_the_account(moto: None) -> None:
    nobody, allowed = user("nobody"), user("allowed")
    iam().put_user_policy(UserName="allowed", PolicyName="all", PolicyDocument=allow(f"{API}/*"))
    policy = resource_policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/nobody"},
            "Action": "execute-api:Invoke",
            "Resource": f"{API}/GET/iam/a",
        },
        {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": f"{API}/GET/iam/b"},
    )
    server = serve(policy=policy)
    gateway = Gateway(f"http://127.0.0.1:{server.port}", server)
    try:
        assert gateway.get("/iam/a", nobody).status_code == 200  # same account: the resource policy alone suffices
        assert refusal(gateway.get("/iam/b", allowed)).endswith(
            f"{MASKED}/GET/iam/b with an explicit deny in a resource-based policy"
        )
        assert NO_IDENTITY_ALLOW in refusal(gateway.get("/iam/c", nobody))
    finally:
        server.stop()


def test_without_iam_the_caller_is_anonymous_to_the_resource_policy(moto: None) -> None:
    elsewhere = {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}
    everyone = {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke"}
    strict = resource_policy(
        {**everyone, "Resource": f"{API}/GET/open", "Condition": elsewhere},
        {**everyone, "Effect": "Deny", "Resource": f"{API}/GET/bearer"},
    )
    server = serve(policy=strict)
    try:
        gateway = Gateway(f"http://127.0.0.1:{server.port}", server)
        assert refusal(gateway.get("/open")) == (
            f"User: anonymous is not authorized to perform: execute-api:Invoke on resource: {MASKED}/GET/open "
            f"{NO_RESOURCE_ALLOW}"
        )
        # A custom-authorizer route: the policy's Deny refuses before the authorizer runs (it would allow).
        denied = refusal(gateway.get("/bearer", Authorization="Bearer ok"))
        assert denied.endswith("with an explicit deny in a resource-based policy")
    finally:
        server.stop()
    server = serve(policy=resource_policy({**everyone, "Resource": f"{API}/GET/open"}))
    try:
        gateway = Gateway(f"http://127.0.0.1:{server.port}", server)
        assert gateway.get("/open").json() == {"ok": "open"}
        assert gateway.get("/bearer", Authorization="Bearer ok").json() == {"ok": "bearer"}  # the authorizer decides
    finally:
        server.stop()


def test_across_accounts_both_the_identity_and_the_resource_policy_must_allow(
    moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", OTHER_ACCOUNT)
    foreign = user("foreign")
    iam().put_user_policy(UserName="foreign", PolicyName="all", PolicyDocument=allow(f"{API}/*"))
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    foreign_arn = f"arn:aws:iam::{OTHER_ACCOUNT}:user/foreign"
    grant = {
        "Effect": "Allow",
        "Principal": {"AWS": foreign_arn},
        "Action": "execute-api:Invoke",
        "Resource": f"{API}/*",
    }
    for policy, expected in ((None, NO_RESOURCE_ALLOW), (resource_policy(grant), None)):
        server = serve(policy=policy)
        try:
            answer = Gateway(f"http://127.0.0.1:{server.port}", server).get("/iam/a", foreign)
            if expected is None:
                assert answer.json()["accountId"] == OTHER_ACCOUNT
            else:
                assert refusal(answer).endswith(expected)
        finally:
            server.stop()


def configured(**kinds: int) -> dict[str, GatewayResponse]:
    """One distinct answer per response type, so a test sees which type the gateway chose."""
    return {
        kind: GatewayResponse(status, {"Content-Type": "application/json", "X-Type": kind}, f'{{"type": "{kind}"}}')
        for kind, status in kinds.items()
    }


@pytest.mark.parametrize(
    ("token", "kind", "error_type"),
    [
        ("Bearer raise", "AUTHORIZER_CONFIGURATION_ERROR", "AuthorizerConfigurationException"),
        ("Bearer nothing", "AUTHORIZER_CONFIGURATION_ERROR", "AuthorizerConfigurationException"),
        ("Bearer refused", "UNAUTHORIZED", "UnauthorizedException"),
        (None, "UNAUTHORIZED", "UnauthorizedException"),
        ("Bearer other-route", "ACCESS_DENIED", "AccessDeniedException"),
    ],
)
def test_each_authorizer_outcome_answers_with_its_gateway_response(
    moto: None, token: str | None, kind: str, error_type: str
) -> None:
    # AUTHORIZER_FAILURE is configured too, with another answer: a raising authorizer must not pick it.
    server = serve(
        responses=configured(
            AUTHORIZER_CONFIGURATION_ERROR=503, AUTHORIZER_FAILURE=502, UNAUTHORIZED=401, ACCESS_DENIED=403
        )
    )
    try:
        gateway = Gateway(f"http://127.0.0.1:{server.port}", server)
        answer = gateway.get("/bearer", **({"Authorization": token} if token else {}))
        assert (answer.status_code, answer.json(), answer.headers["X-Type"]) == (
            {"AUTHORIZER_CONFIGURATION_ERROR": 503, "UNAUTHORIZED": 401, "ACCESS_DENIED": 403}[kind],
            {"type": kind},
            kind,
        )
        assert answer.headers["x-amzn-ErrorType"] == error_type
        assert gateway.get("/bearer", Authorization="Bearer ok").json() == {"ok": "bearer"}
    finally:
        server.stop()


def test_unconfigured_a_raising_authorizer_is_api_gateways_opaque_500(gateway: Gateway) -> None:
    answer = gateway.get("/bearer", Authorization="Bearer raise")
    assert (answer.status_code, answer.json()) == (500, {"message": None})
    assert answer.headers["x-amzn-ErrorType"] == "AuthorizerConfigurationException"


def test_the_gateway_answers_from_the_definition_in_template_yaml(factory: ClientFactory) -> None:
    provisioned = provision_template(factory)
    declared = provisioned.gateway_responses["AUTHORIZER_CONFIGURATION_ERROR"]
    server = serve(responses=dict(provisioned.gateway_responses))
    try:
        gateway = Gateway(f"http://127.0.0.1:{server.port}", server)
        answer = gateway.get("/bearer", Authorization="Bearer raise")
        assert answer.status_code == declared.status == 503
        assert answer.content == declared.body(None)
        assert {k: answer.headers[k] for k in declared.headers} == dict(declared.headers)
        denied = gateway.get("/iam/a", user("nobody"))
        assert denied.status_code == 403
        assert denied.json()["error"] == "forbidden"
        assert denied.json()["message"].endswith(NO_IDENTITY_ALLOW)
    finally:
        server.stop()


def send_raw(gateway: Gateway, target: str, credentials: Credentials, *, host: str | None = None) -> tuple[int, str]:
    """A signed GET of ``target`` exactly as written on the request line (requests would normalise it) with ``host``
    as Host, signed as a forger would: over that Host, and over the URL a gateway reading ``http://{host}{target}``
    would see."""
    authority = gateway.url.removeprefix("http://")
    host = authority if host is None else host
    try:
        seen = urlsplit(f"http://{host}{target}")
        signed = f"http://{authority}{seen.path}" + (f"?{seen.query}" if seen.query else "")
    except ValueError:  # no URL at all ("[::1"): sign the target
        signed = f"http://{authority}{target}"
    request = AWSRequest(method="GET", url=signed, headers={"Host": host})
    SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
    connection = http.client.HTTPConnection(authority, timeout=10)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def test_a_host_carrying_a_path_never_moves_the_method_arn(gateway: Gateway) -> None:
    # GET /iam/a with Host "127.0.0.1:PORT/iam/b#" was authorised as GET/iam/b (the ARN came from Host + path).
    caller = user("only-b")
    iam().put_user_policy(UserName="only-b", PolicyName="b", PolicyDocument=allow(f"{API}/GET/iam/b"))
    authority = gateway.url.removeprefix("http://")
    status, body = send_raw(gateway, "/iam/a", caller, host=f"{authority}/iam/b#")
    assert (status, json.loads(body)) == (400, {"message": "Bad Request"})
    assert gateway.get("/iam/b", caller).status_code == 200
    assert NO_IDENTITY_ALLOW in refusal(gateway.get("/iam/a", caller))


@pytest.mark.parametrize(
    "host",
    ["{a}#", "{a}/", "{a}/iam/a", "{a}?x=1", "user@{a}", "{a} x", "{a}\\x", "{a}:80", "[::1", "{a},evil.example", ""],
)
def test_a_host_that_is_not_host_and_port_is_a_bad_request(gateway: Gateway, host: str) -> None:
    # Host "127.0.0.1:PORT#" made the ARN GET/ and escaped an explicit Deny on GET/iam/a.
    caller = user("denied-a")
    iam().put_user_policy(UserName="denied-a", PolicyName="all", PolicyDocument=allow(f"{API}/*"))
    iam().put_user_policy(UserName="denied-a", PolicyName="not-a", PolicyDocument=allow(f"{API}/GET/iam/a", "Deny"))
    authority = gateway.url.removeprefix("http://")
    status, body = send_raw(gateway, "/iam/a", caller, host=host.format(a=authority))
    assert (status, json.loads(body)) == (400, {"message": "Bad Request"})
    assert gateway.get("/iam/b", caller).status_code == 200  # a well-formed Host still passes
    assert gateway.get("/iam/b", caller, Host=f"LOCALHOST:{gateway.server.port}").status_code == 200


def test_a_repeated_host_is_a_bad_request(gateway: Gateway) -> None:
    caller = user("twice")
    iam().put_user_policy(UserName="twice", PolicyName="all", PolicyDocument=allow(f"{API}/*"))
    authority = gateway.url.removeprefix("http://")
    request = AWSRequest(method="GET", url=f"{gateway.url}/iam/a", headers={"Host": authority})
    SigV4Auth(caller, "execute-api", REGION).add_auth(request)  # valid for the first Host
    connection = http.client.HTTPConnection(authority, timeout=10)
    try:
        connection.putrequest("GET", "/iam/a", skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.items():
            connection.putheader(name, value)
        connection.putheader("Host", "elsewhere.example")
        connection.endheaders()
        assert connection.getresponse().status == 400
    finally:
        connection.close()


@pytest.mark.parametrize("target", ["/iam/a/", "/iam/a/?x=1", "/iam/a;x", "/iam/a#x", "/iam/a//", "/iam/a/;x"])
def test_every_target_chalice_routes_to_a_method_is_authorised_as_that_method(gateway: Gateway, target: str) -> None:
    # "GET /iam/a/" was authorised as GET/iam/a/ and so escaped an explicit Deny on GET/iam/a, though routed to it;
    # so were targets whose path Chalice parses otherwise than the signature check (params, an authority, a fragment).
    caller = user("denied-a")
    iam().put_user_policy(UserName="denied-a", PolicyName="all", PolicyDocument=allow(f"{API}/*"))
    iam().put_user_policy(UserName="denied-a", PolicyName="not-a", PolicyDocument=allow(f"{API}/GET/iam/a", "Deny"))
    status, body = send_raw(gateway, target, caller)
    if target in ("/iam/a/", "/iam/a/?x=1"):  # API Gateway drops a trailing slash: the request is GET /iam/a
        assert status == 403, body
        assert json.loads(body)["Message"].endswith(
            f"{MASKED}/GET/iam/a with an explicit deny in an identity-based policy"
        )
    else:  # a path Chalice would read differently from API Gateway: refused, never routed
        assert (status, json.loads(body)) == (400, {"message": "Bad Request"})


def test_a_trailing_slash_is_authorised_as_the_route_it_reaches(gateway: Gateway) -> None:
    caller = user("only-a")
    iam().put_user_policy(UserName="only-a", PolicyName="a", PolicyDocument=allow(f"{API}/GET/iam/a"))
    answer = gateway.get("/iam/a/", caller)
    assert answer.status_code == 200, answer.text
    assert answer.json()["userArn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/only-a"
    status, _ = send_raw(gateway, "/iam/b/", caller)
    assert status == 403
