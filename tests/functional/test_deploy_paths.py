"""Deployment path (b): the infrastructure-only template, and wiring what needs the app after chalice deploy."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from botocore.stub import Stubber

from chalicelib.aws.clients import ClientFactory
from client.deploy import infra_template, needs_app, wire_app
from local.provision import Provisioned
from local.template import Template, load_template
from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT

TEMPLATE = REPO_ROOT / "template.yaml"


def test_the_infrastructure_template_is_self_contained_and_lints_clean(tmp_path: Path) -> None:
    document = infra_template(TEMPLATE)
    full = load_template(TEMPLATE)
    assert set(document["Resources"]) == {k for k, v in full["Resources"].items() if not needs_app(v)}
    assert {k for k, v in full["Resources"].items() if needs_app(v)} >= {
        "SessionKeyRotation",
        "BearerUnauthorizedResponse",
    }
    template = Template(document, parameters={}, account_id=ACCOUNT_ID, region=REGION, stack_name="s")
    for logical_id in document["Resources"]:
        assert template.dependencies(logical_id) <= set(document["Resources"]), logical_id
    for resource in document["Resources"].values():
        assert "cfn-lint" not in resource.get("Metadata", {})  # no check is silenced in what CloudFormation deploys
    path = tmp_path / "infra.json"
    path.write_text(json.dumps(document))
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
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


def test_wire_app_creates_what_needs_the_app(provisioned: Provisioned, factory: ClientFactory) -> None:
    rotation_arn = _function(factory, "credport-prod-rotate_session_key")
    apigateway = factory.client("apigateway")
    api_id = apigateway.create_rest_api(name="credport")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]  # as deployed by chalice: with methods
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    deployed = {
        "resources": [
            {"name": "rotate_session_key", "resource_type": "lambda_function", "lambda_arn": rotation_arn},
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
    for _ in range(2):
        stubbed.add_response("rotate_secret", {"ARN": secret_arn}, expected)

    def client(service: str) -> Any:
        return secrets if service == "secretsmanager" else factory.client(service)

    stack_resources = {k: attrs["Ref"] for k, attrs in provisioned.attributes.items() if k in provisioned.types}
    with stubbed:
        for _ in range(2):  # a rerun finishes or repeats harmlessly
            done = wire_app(
                TEMPLATE,
                deployed=deployed,
                stack_resources=stack_resources,
                stack_parameters={"Prefix": "credport-dev"},
                account_id=ACCOUNT_ID,
                region=REGION,
                stack_name="credport-dev",
                client=client,
            )
        stubbed.assert_no_pending_responses()
    assert "SessionKeyRotation (AWS::SecretsManager::RotationSchedule)" in done
    policy = json.loads(factory.client("lambda").get_policy(FunctionName=rotation_arn)["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "secretsmanager.amazonaws.com"}
    response = factory.client("apigateway").get_gateway_response(restApiId=api_id, responseType="UNAUTHORIZED")
    assert response["statusCode"] == "401"
    assert json.loads(response["responseTemplates"]["application/json"])["error"] == "invalid_token"
    assert factory.client("apigateway").get_deployments(restApiId=api_id)["items"]


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
