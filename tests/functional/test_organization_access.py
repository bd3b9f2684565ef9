"""OrganizationId (issue #16): the API's resource policy exists only with it (parameter set C); every route of the app
is public (anyone's statement), a workload route (the organization's statement, never for the API's own account) or
an operator route (in no statement); every stack update deploys the stage again, so a changed policy takes effect;
the functions get the organization for the app's own check; ``wire-app`` puts the policy on the API ``chalice deploy``
made when the definition merge does not carry it, and removes the one it put once OrganizationId is cleared."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from chalice.app import IAMAuthorizer

from chalicelib.aws.clients import ClientFactory
from chalicelib.config import Env, Settings
from client.deploy import WireError, wire_app
from client.wire_access import expand_policy
from local.apidef import RESOURCE_POLICY
from local.iam.policy import Decision, Principal, Request, authorize
from local.provision import Provisioned
from local.template import Template, load_template
from tests.conftest import ACCOUNT_ID, REGION
from tests.deploy_parameter_sets import A, B, C, resolved
from tests.packaging import TEMPLATE, packaged_stage, translate_with, translated
from tests.support import app_routes

WORKLOAD_ROUTES = "OrganizationCallsWorkloadRoutes"
PUBLIC_ROUTES = "AnyoneCallsPublicRoutes"
# IAM routes for credport's operators only: in no statement, so refused from other accounts (API Gateway needs the
# resource policy's Allow across accounts) and, from credport's own account, allowed by identity policies alone.
OPERATOR_ROUTES = {("POST", "/transfer/import"), ("POST", "/transfer/clients/*/send")}
API_ID = "a1b2c3d4e5"
MEMBER_ACCOUNT = "111122223333"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _policy(document: dict[str, Any]) -> Any:
    return document["Resources"]["RestAPI"]["Properties"]["DefinitionBody"].get(RESOURCE_POLICY)


def test_the_resource_policy_exists_only_with_an_organization(template: dict[str, Any]) -> None:
    assert _policy(resolved(template, A)) is None
    assert _policy(resolved(template, B)) is None
    policy = _policy(resolved(template, C))
    organization = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "execute-api:Invoke"}
    assert policy["Statement"][0] == {
        "Sid": WORKLOAD_ROUTES,
        **organization,
        "Resource": ["execute-api:/*/GET/whoami", "execute-api:/*/GET/token", "execute-api:/*/POST/session"],
        "Condition": {
            "StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}},
            # never for credport's own account, where the resource policy's Allow alone would suffice (table A)
            "StringNotEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}},
        },
    }
    public = policy["Statement"][1]
    assert {k: v for k, v in public.items() if k != "Resource"} == {
        "Sid": PUBLIC_ROUTES,
        "Effect": "Allow",
        "Principal": "*",
        "Action": "execute-api:Invoke",
    }
    assert len(policy["Statement"]) == 2
    assert "Condition" not in public
    assert resolved(template, C)["Parameters"]["OrganizationId"]["Default"] == "o-abcdefghij"


def _route(resource: str) -> tuple[str, str]:
    stage, method, path = resource.removeprefix("execute-api:/").split("/", 2)
    assert stage == "*", resource  # every stage of this API
    return method, "/" + path


def test_every_route_is_public_workload_or_operator(template: dict[str, Any]) -> None:
    """Routes without IAM to anyone (their own authorizer, or none, decides), IAM routes either workload routes (the
    organization's statement) or operator routes (OPERATOR_ROUTES, in no statement): a route added to the app without
    a class fails here, as it would be refused by API Gateway, or let in from every account of the organization."""
    statements = {s["Sid"]: s for s in _policy(resolved(template, C))["Statement"]}
    assert set(statements) == {WORKLOAD_ROUTES, PUBLIC_ROUTES}
    listed = {sid: [_route(r) for r in s["Resource"]] for sid, s in statements.items()}
    for routes in listed.values():
        assert len(routes) == len(set(routes))
    routes = {(m, p.replace("{client_id}", "*")): e for (m, p), e in app_routes().items()}
    iam = {key for key, entry in routes.items() if isinstance(entry.authorizer, IAMAuthorizer)}
    workload = set(listed[WORKLOAD_ROUTES])
    assert workload == {("GET", "/whoami"), ("GET", "/token"), ("POST", "/session")}
    assert workload | OPERATOR_ROUTES == iam
    assert not workload & OPERATOR_ROUTES
    assert set(listed[PUBLIC_ROUTES]) == set(routes) - iam
    assert {("GET", "/health"), ("POST", "/auto-id"), ("GET", "/session")} <= set(listed[PUBLIC_ROUTES])
    # Nor does any pattern of any statement reach an operator route by a wildcard.
    for method, path in OPERATOR_ROUTES:
        concrete = f"execute-api:/api/{method}{path.replace('*', 'client-1')}"
        for statement in statements.values():
            assert not [r for r in statement["Resource"] if fnmatch.fnmatchcase(concrete, r)], (concrete, statement)


def _decision(template: dict[str, Any], account: str, identity: list[dict[str, Any]], route: str) -> Decision:
    """AWS's decision on ``execute-api:Invoke`` of ``route`` ("METHOD /path") by a user of ``account`` (a principal
    of the organization) with these identity policies, under the deployed resource policy of set C: API Gateway
    Developer Guide, "How API Gateway resource policies affect authorization workflow" (same account: identity OR
    resource policy, table A; another account: both, table B), as the local gateway evaluates it."""
    stack = Template(template, parameters=C, account_id=ACCOUNT_ID, region=REGION, stack_name="credport-prod")
    policy = expand_policy(stack.resolve(_policy(template)), api_id=API_ID, region=REGION, account_id=ACCOUNT_ID)
    method, path = route.split(" ")
    arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/api/{method}{path}"
    user = Principal(f"arn:aws:iam::{account}:user/caller", account)
    context = {"aws:PrincipalArn": user.arn, "aws:PrincipalAccount": account, "aws:PrincipalOrgID": C["OrganizationId"]}
    return authorize(Request("execute-api:Invoke", arn, user, context), identity, policy, resource_account=ACCOUNT_ID)


def _invoke(resource: str) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": resource}
    return {"Version": "2012-10-17", "Statement": [statement]}


@pytest.mark.parametrize("route", ["GET /token", "POST /session", "POST /transfer/import"])
def test_the_organization_statement_grants_nothing_to_credports_own_account(
    template: dict[str, Any], route: str
) -> None:
    """Same account: the resource policy's Allow alone would let any principal of credport's account in (table A);
    aws:PrincipalAccount keeps it out: these callers need an identity policy of their own, as without OrganizationId."""
    assert _decision(template, ACCOUNT_ID, [], route) is Decision.NONE
    assert _decision(template, ACCOUNT_ID, [_invoke("*")], route) is Decision.ALLOW


def test_other_accounts_of_the_organization_reach_the_workload_routes_only(template: dict[str, Any]) -> None:
    everything = [_invoke("*")]  # an admin role of a member account
    for route in ("GET /token", "GET /whoami", "POST /session"):
        assert _decision(template, MEMBER_ACCOUNT, everything, route) is Decision.ALLOW
        assert _decision(template, MEMBER_ACCOUNT, [], route) is Decision.NONE  # its identity policy is needed too
    for route in ("POST /transfer/import", "POST /transfer/clients/client-1/send"):
        assert _decision(template, MEMBER_ACCOUNT, everything, route) is Decision.NONE


def test_every_stack_update_deploys_the_stage_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed resource policy takes effect only with a new deployment (API Gateway Developer Guide, "Create and
    attach an API Gateway resource policy to an API"). SAM names the AWS::ApiGateway::Deployment after a hash of the
    definition as written, where the policy is an unresolved Fn::If on OrganizationId: without AlwaysDeploy, every
    OrganizationId gives the same deployment, which CloudFormation never makes again. With it, SAM hashes the time of
    the transform (samtranslator.model.apigateway, make_auto_deployable): every update a new Deployment resource, and
    the stage pointed at it."""
    import samtranslator.model.apigateway as sam_apigateway

    sam = packaged_stage("prod")[1]
    assert sam["Resources"]["RestAPI"]["Properties"]["AlwaysDeploy"] is True
    without = json.loads(json.dumps(sam))
    del without["Resources"]["RestAPI"]["Properties"]["AlwaysDeploy"]
    other = {**C, "OrganizationId": "o-zzzzzzzzzz"}
    assert len({_deployment(translate_with(without, parameters)) for parameters in (A, C, other)}) == 1
    deployments = set()
    for now in (1_700_000_000, 1_700_000_001):  # two stack updates, the same parameters
        monkeypatch.setattr(sam_apigateway, "time", SimpleNamespace(time=lambda now=now: float(now)))
        deployments.add(_deployment(translate_with(sam, C)))
    assert len(deployments) == 2


def _deployment(document: dict[str, Any]) -> str:
    """The logical id of the stack's one API deployment, which its one stage serves."""
    resources: dict[str, Any] = document["Resources"]
    (deployment,) = (str(k) for k, r in resources.items() if r["Type"] == "AWS::ApiGateway::Deployment")
    (stage,) = (r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage")
    assert stage["Properties"]["DeploymentId"] == {"Ref": deployment}
    return deployment


def test_the_packaged_api_carries_the_policy_only_with_an_organization() -> None:
    sam = packaged_stage("prod")[1]
    for parameters, expected in ((A, False), (C, True)):
        (api,) = (
            r
            for r in translated("prod", resolved(sam, parameters))["Resources"].values()
            if r["Type"] == "AWS::ApiGateway::RestApi"
        )
        assert (RESOURCE_POLICY in api["Properties"]["Body"]) is expected


@pytest.mark.parametrize(("parameters", "value", "setting"), [(A, "-", None), (C, "o-abcdefghij", "o-abcdefghij")])
def test_the_functions_get_the_organization_for_the_apps_own_check(
    template: dict[str, Any], provisioned: Provisioned, parameters: dict[str, str], value: str, setting: str | None
) -> None:
    stack = Template(template, parameters=parameters, account_id=ACCOUNT_ID, region=REGION, stack_name="credport")
    variables = stack.resolve(
        template["Globals"]["Function"]["Environment"]["Variables"]["CREDPORT_TOKEN_ORGANIZATION_ID"]
    )
    assert variables == value == stack.resolve(template["Outputs"]["TokenOrganizationId"]["Value"])  # path (b)
    assert provisioned.app_environment()[Env.TOKEN_ORGANIZATION_ID] == "-"  # the local stack's default: none
    environ = {**provisioned.app_environment(), Env.TOKEN_ORGANIZATION_ID: value}
    assert Settings.from_env(environ).token_organization_id == setting


# ---- wire-app (path b) ---------------------------------------------------------------------------------------


def _policy_template(tmp_path: Path, template: dict[str, Any]) -> Path:
    """template.yaml's RestAPI with the policy only (its gateway responses and paths are wire-app's other tests')."""
    document = json.loads(json.dumps(template))
    body = document["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    document["Resources"] = {"RestAPI": document["Resources"]["RestAPI"]}
    document["Resources"]["RestAPI"]["Properties"]["DefinitionBody"] = {RESOURCE_POLICY: body[RESOURCE_POLICY]}
    document.pop("Outputs")
    path = tmp_path / "template.json"
    path.write_text(json.dumps(document))
    return path


def _wire(path: Path, apigateway: Any, factory: ClientFactory, parameters: dict[str, str] = C) -> list[str]:
    api_url = f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/api/"
    return wire_app(
        path,
        deployed={"resources": [{"resource_type": "rest_api", "rest_api_id": API_ID, "rest_api_url": api_url}]},
        stack_resources={},
        stack_parameters=parameters,
        account_id=ACCOUNT_ID,
        region=REGION,
        stack_name="credport-prod",
        client=lambda service: apigateway if service == "apigateway" else factory.client(service),
    )


def _declared(template: dict[str, Any]) -> dict[str, Any]:
    stack = Template(template, parameters=C, account_id=ACCOUNT_ID, region=REGION, stack_name="credport-prod")
    policy: dict[str, Any] = stack.resolve(_policy(template))
    return expand_policy(policy, api_id=API_ID, region=REGION, account_id=ACCOUNT_ID)


def _held(policy: dict[str, Any] | None) -> dict[str, Any]:
    # API Gateway returns the document with its quotes escaped. The API is named after the Prefix already (an earlier
    # run renamed it: test_deploy_paths.py), so only the policy is under test here.
    held = {"id": API_ID, "name": C["Prefix"]}
    return held if policy is None else {**held, "policy": json.dumps(policy).replace('"', '\\"')}


def test_wire_app_puts_the_policy_the_merge_did_not_carry_then_deploys(
    template: dict[str, Any], factory: ClientFactory, tmp_path: Path
) -> None:
    path, wanted = _policy_template(tmp_path, template), _declared(template)
    assert wanted["Statement"][0]["Resource"][1] == f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/*/GET/token"
    apigateway = factory.client("apigateway")
    with Stubber(apigateway) as stubber:
        stubber.add_response("get_rest_api", _held(None), {"restApiId": API_ID})  # the title
        stubber.add_response("put_rest_api", {"id": API_ID}, {"restApiId": API_ID, "mode": "merge", "body": ANY})
        stubber.add_response("get_gateway_responses", {"items": []}, {"restApiId": API_ID, "limit": 500})
        stubber.add_response("get_rest_api", _held(None), {"restApiId": API_ID})  # the merge did not carry it
        patch = [{"op": "replace", "path": "/policy", "value": json.dumps(wanted)}]
        stubber.add_response("update_rest_api", {"id": API_ID}, {"restApiId": API_ID, "patchOperations": patch})
        stubber.add_response("get_rest_api", _held(wanted), {"restApiId": API_ID})
        stubber.add_response("create_deployment", {"id": "d1"}, {"restApiId": API_ID, "stageName": "api"})
        assert _wire(path, apigateway, factory) == ["RestAPI (AWS::Serverless::Api)", f"deployed REST API {API_ID}"]
        stubber.assert_no_pending_responses()


def test_wire_app_leaves_a_held_policy_and_refuses_one_api_gateway_does_not_keep(
    template: dict[str, Any], factory: ClientFactory, tmp_path: Path
) -> None:
    path, wanted = _policy_template(tmp_path, template), _declared(template)
    apigateway = factory.client("apigateway")
    with Stubber(apigateway) as stubber:  # the merge carried it: no UpdateRestApi
        stubber.add_response("get_rest_api", _held(None), {"restApiId": API_ID})
        stubber.add_response("put_rest_api", {"id": API_ID}, {"restApiId": API_ID, "mode": "merge", "body": ANY})
        stubber.add_response("get_gateway_responses", {"items": []}, {"restApiId": API_ID, "limit": 500})
        stubber.add_response("get_rest_api", _held(wanted), {"restApiId": API_ID})
        stubber.add_response("create_deployment", {"id": "d1"}, {"restApiId": API_ID, "stageName": "api"})
        _wire(path, apigateway, factory)
        stubber.assert_no_pending_responses()
    other = json.loads(json.dumps(wanted))
    other["Statement"][0]["Condition"]["StringEquals"]["aws:PrincipalOrgID"] = "o-zzzzzzzzzz"
    with Stubber(apigateway) as stubber:  # another organization's policy is replaced; one still not held: refused
        stubber.add_response("get_rest_api", _held(None), {"restApiId": API_ID})
        stubber.add_response("put_rest_api", {"id": API_ID}, {"restApiId": API_ID, "mode": "merge", "body": ANY})
        stubber.add_response("get_gateway_responses", {"items": []}, {"restApiId": API_ID, "limit": 500})
        stubber.add_response("get_rest_api", _held(other), {"restApiId": API_ID})
        stubber.add_response("update_rest_api", {"id": API_ID}, {"restApiId": API_ID, "patchOperations": ANY})
        stubber.add_response("get_rest_api", _held(other), {"restApiId": API_ID})
        with pytest.raises(WireError, match="does not hold the declared resource policy"):
            _wire(path, apigateway, factory)
        stubber.assert_no_pending_responses()  # and no deployment of the stage


def _merge(stubber: Stubber, held: dict[str, Any]) -> None:
    stubber.add_response("get_rest_api", held, {"restApiId": API_ID})  # what the API holds before the merge
    stubber.add_response("put_rest_api", {"id": API_ID}, {"restApiId": API_ID, "mode": "merge", "body": ANY})
    stubber.add_response("get_gateway_responses", {"items": []}, {"restApiId": API_ID, "limit": 500})


def test_wire_app_removes_the_policy_it_put_once_the_organization_is_cleared(
    template: dict[str, Any], factory: ClientFactory, tmp_path: Path
) -> None:
    """OrganizationId cleared (set A): the policy wire-app put (every statement one template.yaml declares) is removed
    (UpdateRestApi, replace /policy with nothing) and the stage deployed, which is said; a rerun finds none."""
    path, put = _policy_template(tmp_path, template), _declared(template)
    apigateway = factory.client("apigateway")
    removal = [{"op": "replace", "path": "/policy", "value": ""}]
    deploy = {"restApiId": API_ID, "stageName": "api"}
    with Stubber(apigateway) as stubber:
        _merge(stubber, _held(put))
        stubber.add_response("update_rest_api", _held(None), {"restApiId": API_ID, "patchOperations": removal})
        stubber.add_response("create_deployment", {"id": "d1"}, deploy)
        assert _wire(path, apigateway, factory, A) == [
            f"RestAPI (AWS::Serverless::Api): resource policy removed from REST API {API_ID}",
            f"deployed REST API {API_ID}",
        ]
        _merge(stubber, _held(None))  # a rerun: no policy held, none removed
        stubber.add_response("create_deployment", {"id": "d2"}, deploy)
        assert _wire(path, apigateway, factory, A) == ["RestAPI (AWS::Serverless::Api)", f"deployed REST API {API_ID}"]
        stubber.assert_no_pending_responses()


def test_wire_app_leaves_a_policy_it_did_not_put_and_refuses_one_that_stays(
    template: dict[str, Any], factory: ClientFactory, tmp_path: Path
) -> None:
    path, put = _policy_template(tmp_path, template), _declared(template)
    apigateway = factory.client("apigateway")
    theirs = json.loads(json.dumps(put))
    theirs["Statement"].append({**theirs["Statement"][1], "Sid": "OperatorsOwn"})
    with Stubber(apigateway) as stubber:  # an operator's statement in it: left as it is, and said
        _merge(stubber, _held(theirs))
        stubber.add_response("create_deployment", {"id": "d1"}, {"restApiId": API_ID, "stageName": "api"})
        (line, _deployed) = _wire(path, apigateway, factory, A)
        assert line == (
            f"RestAPI (AWS::Serverless::Api): resource policy of REST API {API_ID} left as it is: credport did not put "
            f"it (Sids: AnyoneCallsPublicRoutes, OperatorsOwn, {WORKLOAD_ROUTES})"
        )
        stubber.assert_no_pending_responses()
    with Stubber(apigateway) as stubber:  # API Gateway still holds it after the removal: refused, stage not deployed
        _merge(stubber, _held(put))
        stubber.add_response("update_rest_api", _held(put), {"restApiId": API_ID, "patchOperations": ANY})
        with pytest.raises(WireError, match="still holds a resource policy"):
            _wire(path, apigateway, factory, A)
        stubber.assert_no_pending_responses()
