"""Deployment path (b): infrastructure from template.yaml, then ``chalice deploy``, then wiring.

Resources marked ``Metadata: {credport: {needs-app: true}}`` in template.yaml refer to the app's own
functions or API, so they can exist only in the merged SAM stack. For the ``chalice deploy`` path,
:func:`infra_template` leaves them out, and :func:`wire_app` creates their equivalents through the AWS APIs
once chalice has deployed the app, resolving their references with the same template resolver the local
stack uses (stack resources, stack parameters, and chalice's record of what it deployed).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.template import Template, load_template

__all__ = ["NEEDS_APP", "WireError", "app_resources_of", "infra_template", "needs_app", "wire_app"]

NEEDS_APP = "needs-app"


class WireError(Exception):
    pass


def needs_app(resource: Mapping[str, Any]) -> bool:
    return bool(resource.get("Metadata", {}).get("credport", {}).get(NEEDS_APP, False))


def infra_template(template_path: Path) -> dict[str, Any]:
    """template.yaml without the resources that need the app (a template CloudFormation deploys alone)."""
    document = load_template(template_path)
    document["Resources"] = {k: v for k, v in document["Resources"].items() if not needs_app(v)}
    return document


def app_resources_of(deployed: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Attributes of the app's resources from chalice's ``.chalice/deployed/<stage>.json``, by the logical
    ids chalice gives them in a packaged SAM template."""
    from chalice.utils import to_cfn_resource_name

    attributes: dict[str, dict[str, str]] = {}
    for resource in deployed.get("resources", []):
        if resource.get("resource_type") == "lambda_function":
            name = str(resource["name"])
            attributes[to_cfn_resource_name(name)] = {"Ref": name, "Arn": str(resource["lambda_arn"])}
        elif resource.get("resource_type") == "rest_api":
            attributes["RestAPI"] = {"Ref": str(resource["rest_api_id"])}
    return attributes


def wire_app(
    template_path: Path,
    *,
    deployed: Mapping[str, Any],
    stack_resources: Mapping[str, str],
    stack_parameters: Mapping[str, str],
    account_id: str,
    region: str,
    stack_name: str,
    client: Any,
) -> list[str]:
    """Create the needs-app resources through the AWS APIs; returns what was done, one line each.
    Every call is idempotent, so a rerun after a failure finishes the job."""
    document = load_template(template_path)
    declared = set(document.get("Parameters", {}))
    template = Template(
        document,
        parameters={k: v for k, v in stack_parameters.items() if k in declared},
        account_id=account_id,
        region=region,
        stack_name=stack_name,
    )
    template.attributes.update({logical: {"Ref": physical} for logical, physical in stack_resources.items()})
    template.attributes.update(app_resources_of(deployed))
    done: list[str] = []
    api_ids: set[str] = set()
    for logical_id in template.creation_order():
        resource = document["Resources"][logical_id]
        if not needs_app(resource):
            continue
        props = template.resolve(resource.get("Properties", {}))
        kind = resource["Type"]
        if kind == "AWS::Lambda::Permission":
            _permission(client("lambda"), logical_id, props)
        elif kind == "AWS::SecretsManager::RotationSchedule":
            client("secretsmanager").rotate_secret(
                SecretId=props["SecretId"],
                RotationLambdaARN=props["RotationLambdaARN"],
                RotationRules=props.get("RotationRules", {}),
                RotateImmediately=str(props.get("RotateImmediatelyOnUpdate", True)).lower() == "true",
            )
        elif kind == "AWS::ApiGateway::GatewayResponse":
            client("apigateway").put_gateway_response(
                restApiId=props["RestApiId"],
                responseType=props["ResponseType"],
                statusCode=props["StatusCode"],
                responseParameters=props.get("ResponseParameters", {}),
                responseTemplates=props.get("ResponseTemplates", {}),
            )
            api_ids.add(props["RestApiId"])
        else:
            raise WireError(f"{logical_id}: cannot wire {kind}; teach client/deploy.py")
        done.append(f"{logical_id} ({kind})")
    for api_id in sorted(api_ids):  # gateway responses take effect with a new deployment of the stage
        client("apigateway").create_deployment(restApiId=api_id, stageName=_stage_of(deployed))
        done.append(f"deployed REST API {api_id}")
    return done


def _permission(lambda_client: Any, logical_id: str, props: Mapping[str, Any]) -> None:
    args = {
        "FunctionName": props["FunctionName"],
        "StatementId": f"credport-{logical_id}",
        "Action": props["Action"],
        "Principal": props["Principal"],
    }
    args.update({k: props[k] for k in ("SourceAccount", "SourceArn") if k in props})
    with contextlib.suppress(lambda_client.exceptions.ResourceNotFoundException):  # no policy yet
        policy = json.loads(lambda_client.get_policy(FunctionName=args["FunctionName"])["Policy"])
        if any(statement.get("Sid") == args["StatementId"] for statement in policy.get("Statement", [])):
            return  # added by an earlier run
    with contextlib.suppress(lambda_client.exceptions.ResourceConflictException):  # a concurrent run added it
        lambda_client.add_permission(**args)


def _stage_of(deployed: Mapping[str, Any]) -> str:
    for resource in deployed.get("resources", []):
        if resource.get("resource_type") == "rest_api":
            url = str(resource.get("rest_api_url", ""))
            return url.rstrip("/").rsplit("/", 1)[-1] or "api"
    return "api"


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
