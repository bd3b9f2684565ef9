"""Deployment path (b): the infrastructure-only template, and wiring what needs the app after chalice deploy."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from chalicelib.aws.clients import ClientFactory
from client.deploy import infra_template, needs_app, wire_app
from local.apidef import GATEWAY_RESPONSES
from local.provision import Provisioned
from local.template import Template, load_template
from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT
from tests.packaging import cfn_lint, deployed_function_names, deployed_role_names

TEMPLATE = REPO_ROOT / "template.yaml"
ISSUER = "https://id.example.com"


def test_the_infrastructure_template_is_self_contained_and_lints_clean(tmp_path: Path) -> None:
    document = infra_template(TEMPLATE)
    full = load_template(TEMPLATE)
    assert set(document["Resources"]) == {k for k, v in full["Resources"].items() if not needs_app(v)}
    assert {k for k, v in full["Resources"].items() if needs_app(v)} >= {
        "SessionKeyRotation",
        "RestAPI",  # the gateway responses, in chalice's REST API definition
    }
    template = Template(document, parameters={"Issuer": ISSUER}, account_id=ACCOUNT_ID, region=REGION, stack_name="s")
    for logical_id in document["Resources"]:
        assert template.dependencies(logical_id) <= set(document["Resources"]), logical_id
    for resource in document["Resources"].values():
        assert "cfn-lint" not in resource.get("Metadata", {})  # no check is silenced in what CloudFormation deploys
    path = tmp_path / "infra.json"
    path.write_text(json.dumps(document))
    lint = cfn_lint(path)  # informational checks included
    assert lint.returncode == 0, lint.stdout


def _function(factory: ClientFactory, name: str) -> str:
    iam = factory.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="fn")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    response = factory.client("lambda").create_function(
        FunctionName=name, Runtime="python3.11", Role=role, Handler="app.handler", Code={"ZipFile": code.getvalue()}
    )
    return str(response["FunctionArn"])


def _app_functions(factory: ClientFactory) -> list[dict[str, str]]:
    """What `chalice deploy --stage dev` records of the app's functions and their roles, under chalice's names."""
    functions = [
        {"name": name, "resource_type": "lambda_function", "lambda_arn": _function(factory, function_name)}
        for name, function_name in deployed_function_names("dev").items()
    ]
    roles = [
        {
            "name": name,
            "resource_type": "iam_role",
            "role_name": role,
            "role_arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role}",
        }
        for name, role in deployed_role_names("dev").items()
    ]
    return functions + roles


def test_wire_app_creates_what_needs_the_app(provisioned: Provisioned, factory: ClientFactory) -> None:
    functions = _app_functions(factory)
    (rotation_arn,) = (f["lambda_arn"] for f in functions if f["name"] == "rotate_session_key")
    api_id = "a1b2c3d4e5"
    # chalice deploy names the API credport (its app name); the first run names it after the Prefix, the rerun finds
    # it named so (wire-app runs after every chalice deploy, which may name it credport again).
    apigateway, merged = _stubbed_apigateway(factory, api_id, runs=2, names=["credport", "credport-dev"])
    deployed = {
        "resources": [
            *functions,
            {
                "name": "rest_api",
                "resource_type": "rest_api",
                "rest_api_id": api_id,
                "rest_api_url": f"https://{api_id}.execute-api.{REGION}.amazonaws.com/api/",
            },
        ]
    }
    secret_arn = provisioned.outputs["SessionKeySecretArn"]
    secrets = factory.client("secretsmanager")
    stubbed = Stubber(secrets)  # moto would try to run the rotation Lambda in Docker: check the request instead
    expected = {
        "SecretId": secret_arn,
        "RotationLambdaARN": rotation_arn,
        "RotationRules": {"ScheduleExpression": "rate(7 days)"},
        "RotateImmediately": True,
    }
    # Each run puts the session key's rotation schedule, and any other secret's the template declares after it.
    schedules = [r for r in load_template(TEMPLATE)["Resources"].values() if r["Type"].endswith("RotationSchedule")]
    for _ in range(2):
        stubbed.add_response("rotate_secret", {"ARN": secret_arn}, expected)
        for _ in schedules[1:]:
            stubbed.add_response("rotate_secret", {"ARN": secret_arn}, {**expected, "SecretId": ANY})

    def client(service: str) -> Any:
        stubs = {"secretsmanager": secrets, "apigateway": apigateway.client}
        return stubs[service] if service in stubs else factory.client(service)

    stack_resources = {k: attrs["Ref"] for k, attrs in provisioned.attributes.items() if k in provisioned.types}
    with stubbed, apigateway:
        runs = []
        for _ in range(2):  # a rerun finishes or repeats harmlessly
            done = wire_app(
                TEMPLATE,
                deployed=deployed,
                stack_resources=stack_resources,
                stack_parameters={"Prefix": "credport-dev", "Issuer": ISSUER},
                account_id=ACCOUNT_ID,
                region=REGION,
                stack_name="credport-dev",
                client=client,
            )
            runs.append(done)
        stubbed.assert_no_pending_responses()
        apigateway.assert_no_pending_responses()  # each run: merge, read back, (rename,) deploy the stage
    renamed = f"RestAPI (AWS::Serverless::Api): REST API {api_id} renamed from credport to credport-dev"
    assert renamed in runs[0]
    assert "RestAPI (AWS::Serverless::Api)" in runs[1]
    assert "SessionKeyRotation (AWS::SecretsManager::RotationSchedule)" in done
    assert f"deployed REST API {api_id}" in done
    # SNS- and schedule-driven functions: failed asynchronous invocations end in the stack's retained queue.
    lambda_client = factory.client("lambda")
    for name in ("key_events", "rotate_signing_keys", "rotate_transfer_secrets", "rotate_autoid_keys"):
        config = lambda_client.get_function_event_invoke_config(FunctionName=f"credport-dev-{name}")
        assert config["MaximumRetryAttempts"] == 2
        assert (
            config["DestinationConfig"]["OnFailure"]["Destination"]
            == provisioned.attributes["AsyncDeadLetterQueue"]["Arn"]
        )
    policy = json.loads(factory.client("lambda").get_policy(FunctionName=rotation_arn)["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "secretsmanager.amazonaws.com"}
    # The API chalice deployed got template.yaml's definition fragment merged in, nothing else: chalice's paths
    # stay (merge mode), POST /auto-id is added, integrated with the auto_id function chalice deployed, and the
    # gateway responses are those the SAM stack's RestAPI carries.
    (autoid_arn,) = (f["lambda_arn"] for f in functions if f["name"] == "auto_id")
    assert len(merged) == 2
    for body in merged:
        assert set(body["paths"]) == {"/auto-id"}
        integration = body["paths"]["/auto-id"]["post"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        assert (
            integration["uri"]
            == f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{autoid_arn}/invocations"
        )
        assert body["x-amazon-apigateway-gateway-responses"] == _declared_gateway_responses()
        assert set(body) == {"swagger", "info", "paths", "x-amazon-apigateway-gateway-responses"}
    # API Gateway may invoke auto_id for that method of that API only (added once, however many runs).
    (invoke,) = json.loads(factory.client("lambda").get_policy(FunctionName=autoid_arn)["Policy"])["Statement"]
    assert invoke["Principal"] == {"Service": "apigateway.amazonaws.com"}
    source = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api_id}/*/POST/auto-id"
    assert invoke["Condition"]["ArnLike"]["AWS:SourceArn"] == source


def _declared_gateway_responses() -> dict[str, Any]:
    fragment: dict[str, Any] = load_template(TEMPLATE)["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    responses: dict[str, Any] = fragment["x-amazon-apigateway-gateway-responses"]
    return responses


def _stubbed_apigateway(
    factory: ClientFactory,
    api_id: str,
    *,
    runs: int,
    held: dict[str, Any] | None = None,
    names: list[str] | None = None,
) -> tuple[Stubber, list[dict[str, Any]]]:
    """API Gateway as ``wire-app`` meets it after ``chalice deploy`` (moto's PutRestApi takes no swagger 2.0 and
    ignores gateway responses): the requests are checked, the merged bodies collected, and GetGatewayResponses
    answers ``held`` (by default what was declared, as API Gateway would after the merge). ``names``: the API's
    name at each run (by default the deployment's, credport-dev); any other is renamed credport-dev."""
    client = factory.client("apigateway")
    stubber, merged = Stubber(client), []
    client.meta.events.register(
        "before-parameter-build.api-gateway.PutRestApi", lambda params, **_: merged.append(json.loads(params["body"]))
    )
    declared = _declared_gateway_responses() if held is None else held
    items = [{"responseType": kind, "defaultResponse": False, **spec} for kind, spec in declared.items()]
    for name in names or ["credport-dev"] * runs:
        stubber.add_response("get_rest_api", {"id": api_id, "name": name}, {"restApiId": api_id})
        stubber.add_response("put_rest_api", {"id": api_id}, {"restApiId": api_id, "mode": "merge", "body": ANY})
        stubber.add_response("get_gateway_responses", {"items": items}, {"restApiId": api_id, "limit": 500})
        if name != "credport-dev":
            rename = [{"op": "replace", "path": "/name", "value": "credport-dev"}]
            renamed = {"id": api_id, "name": "credport-dev"}
            stubber.add_response("update_rest_api", renamed, {"restApiId": api_id, "patchOperations": rename})
        stubber.add_response("create_deployment", {"id": "d1"}, {"restApiId": api_id, "stageName": "api"})
    return stubber, merged


def test_wire_app_refuses_a_definition_api_gateway_did_not_take(factory: ClientFactory) -> None:
    """If API Gateway refuses the definition, or holds other gateway responses after the merge (it ignored some),
    wire-app stops with one line and the stage is not deployed."""
    from client.deploy import WireError, _merge_definition

    declared = _declared_gateway_responses()
    held = {**declared, "AUTHORIZER_CONFIGURATION_ERROR": {"statusCode": "500", "responseTemplates": {}}}
    apigateway, _ = _stubbed_apigateway(factory, "a1b2c3d4e5", runs=1, held=held)
    with apigateway, pytest.raises(WireError, match="AUTHORIZER_CONFIGURATION_ERROR"):
        _merge_definition(apigateway.client, "RestAPI", "a1b2c3d4e5", {"DefinitionBody": {GATEWAY_RESPONSES: declared}})
    refusing = Stubber(factory.client("apigateway"))  # the importer refuses the definition: one line, no traceback
    refusing.add_response("get_rest_api", {"id": "a1b2c3d4e5", "name": "credport"}, {"restApiId": "a1b2c3d4e5"})
    refusing.add_client_error("put_rest_api", "BadRequestException", "Invalid gateway response", 400)
    with refusing, pytest.raises(WireError, match="API Gateway refused the definition"):
        _merge_definition(refusing.client, "RestAPI", "a1b2c3d4e5", {"DefinitionBody": {GATEWAY_RESPONSES: declared}})


def test_the_installed_commands_run_outside_the_repository(tmp_path: Path) -> None:
    """Console scripts import only what the package installs (pytest's path hides a missing package)."""
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "infra.json"
    admin = subprocess.run(
        [str(bin_dir / "credport-admin"), "infra-template", "--template", str(TEMPLATE), "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert admin.returncode == 0, admin.stderr
    assert "SessionKeySecret" in json.loads(out.read_text())["Resources"]
    for command in ("credport", "credport-admin"):
        shown = subprocess.run(
            [str(bin_dir / command), "--help"], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60
        )
        assert shown.returncode == 0, shown.stderr


def test_wire_app_refuses_a_function_chalice_named_otherwise(provisioned: Provisioned, factory: ClientFactory) -> None:
    """The SAM stack names functions by template.yaml; `chalice deploy` by its own rule. Should they ever differ
    (here: the infrastructure stack's Prefix is not the stage's), the stage's log permissions would fit one
    path only: wiring stops at the first such function, before any is configured."""
    from client.deploy import WireError

    deployed = {"resources": _app_functions(factory)}
    stack_resources = {k: attrs["Ref"] for k, attrs in provisioned.attributes.items() if k in provisioned.types}
    refusal = r"^\w+: template.yaml names it credport-qa(-\w+)?, chalice deployed credport-dev(-\w+)?$"
    with pytest.raises(WireError, match=refusal):
        wire_app(
            TEMPLATE,
            deployed=deployed,
            stack_resources=stack_resources,
            stack_parameters={"Prefix": "credport-qa", "Issuer": ISSUER},
            account_id=ACCOUNT_ID,
            region=REGION,
            stack_name="credport-qa",
            client=factory.client,
        )
    assert not factory.client("lambda").list_function_event_invoke_configs(FunctionName="credport-dev-key_events")[
        "FunctionEventInvokeConfigs"
    ]


def test_wire_app_refuses_a_role_chalice_named_otherwise(provisioned: Provisioned, factory: ClientFactory) -> None:
    """A signing key's key policy names the roles of the functions that use it as template.yaml and `chalice deploy`
    both name them: should chalice's role names ever differ, wiring stops with one line."""
    from client.deploy import WireError

    resources = _app_functions(factory)
    for resource in resources:
        if resource["resource_type"] == "iam_role" and resource["name"] == "api_handler_role":
            resource["role_name"] = "credport-dev-renamed"
    api_id = "a1b2c3d4e5"
    resources.append({"name": "rest_api", "resource_type": "rest_api", "rest_api_id": api_id, "rest_api_url": ""})
    apigateway, _merged = _stubbed_apigateway(factory, api_id, runs=1)
    stack_resources = {k: attrs["Ref"] for k, attrs in provisioned.attributes.items() if k in provisioned.types}
    refusal = "^ApiHandlerRole: template.yaml names it credport-dev-api_handler, chalice deployed credport-dev-renamed$"

    def client(service: str) -> Any:
        return apigateway.client if service == "apigateway" else factory.client(service)

    with apigateway, pytest.raises(WireError, match=refusal):
        wire_app(
            TEMPLATE,
            deployed={"resources": resources},
            stack_resources=stack_resources,
            stack_parameters={"Prefix": "credport-dev", "Issuer": ISSUER},
            account_id=ACCOUNT_ID,
            region=REGION,
            stack_name="credport-dev",
            client=client,
        )


def test_wire_app_names_the_api_after_the_prefix_once(factory: ClientFactory, tmp_path: Path) -> None:
    """REST API metrics carry the API's name, not its id: each deployment's API is named after its Prefix (as the SAM
    stack's RestAPI Name does), so credport-prod's alarm does not watch credport-dev's API. chalice deploy names
    every stage's API credport; wire-app renames it after the merge and says so, and a rerun changes nothing."""
    from client.deploy import WireError

    declared = load_template(TEMPLATE)["Resources"]["RestAPI"]
    assert declared["Properties"]["Name"] == {"Ref": "Prefix"}
    document = {
        "Parameters": {"Prefix": {"Type": "String"}},
        "Resources": {"RestAPI": {**declared, "Properties": {"Name": declared["Properties"]["Name"]}}},
    }
    path = tmp_path / "template.json"
    path.write_text(json.dumps(document))
    api_id = "a1b2c3d4e5"
    api_url = f"https://{api_id}.execute-api.{REGION}.amazonaws.com/api/"
    apigateway = factory.client("apigateway")

    def wire() -> list[str]:
        return wire_app(
            path,
            deployed={"resources": [{"resource_type": "rest_api", "rest_api_id": api_id, "rest_api_url": api_url}]},
            stack_resources={},
            stack_parameters={"Prefix": "credport-prod"},
            account_id=ACCOUNT_ID,
            region=REGION,
            stack_name="credport-prod",
            client=lambda service: apigateway if service == "apigateway" else factory.client(service),
        )

    def merge(stubber: Stubber, name: str) -> None:
        stubber.add_response("get_rest_api", {"id": api_id, "name": name}, {"restApiId": api_id})
        stubber.add_response("put_rest_api", {"id": api_id}, {"restApiId": api_id, "mode": "merge", "body": ANY})
        stubber.add_response("get_gateway_responses", {"items": []}, {"restApiId": api_id, "limit": 500})

    rename = {"restApiId": api_id, "patchOperations": [{"op": "replace", "path": "/name", "value": "credport-prod"}]}
    deploy = {"restApiId": api_id, "stageName": "api"}
    with Stubber(apigateway) as stubber:
        merge(stubber, "credport")  # as chalice deploy left it
        stubber.add_response("update_rest_api", {"id": api_id, "name": "credport-prod"}, rename)
        stubber.add_response("create_deployment", {"id": "d1"}, deploy)
        assert wire() == [
            f"RestAPI (AWS::Serverless::Api): REST API {api_id} renamed from credport to credport-prod",
            f"deployed REST API {api_id}",
        ]
        merge(stubber, "credport-prod")  # a rerun: named already, no UpdateRestApi
        stubber.add_response("create_deployment", {"id": "d2"}, deploy)
        assert wire() == ["RestAPI (AWS::Serverless::Api)", f"deployed REST API {api_id}"]
        stubber.assert_no_pending_responses()
    with Stubber(apigateway) as stubber:  # API Gateway kept another name: one line, and the stage is not deployed
        merge(stubber, "credport")
        stubber.add_response("update_rest_api", {"id": api_id, "name": "credport"}, rename)
        with pytest.raises(
            WireError, match=f"^RestAPI: API Gateway named REST API {api_id} credport, not credport-prod$"
        ):
            wire()
        stubber.assert_no_pending_responses()
