"""Creators for template.yaml's parts of what chalice generates: the app's functions (and their invoke permissions),
their roles (or a role declared whole), and the REST API's definition."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from local.apidef import API_ID, REST_API, STAGE, gateway_responses, proxy_routes, resource_policy
from local.template import TemplateError

from .properties import strict
from .results import AsyncInvokeConfig

if TYPE_CHECKING:
    from .provisioner import Provisioner

__all__ = ["app_function", "iam_role", "lambda_permission", "rest_api"]


def lambda_permission(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    strict(logical_id, p, {"FunctionName", "Action", "Principal", "SourceAccount", "SourceArn"})
    # The local stack invokes functions directly; a resource policy has nothing to guard here.
    return {"Ref": logical_id}


def app_function(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    """template.yaml's part of one of the app's functions (chalice generates the rest). Locally functions
    keep their handler names (FunctionName is the name on AWS); the event pump applies EventInvokeConfig."""
    strict(logical_id, p, {"FunctionName", "EventInvokeConfig"})
    function = provisioner.template.attributes.get(logical_id)
    if function is None:
        raise TemplateError(f"{logical_id}: the app defines no function with this logical id")
    if "EventInvokeConfig" in p:
        config = p["EventInvokeConfig"]
        strict(f"{logical_id}.EventInvokeConfig", config, {"MaximumRetryAttempts", "DestinationConfig"})
        destinations = config.get("DestinationConfig", {})
        strict(f"{logical_id}.DestinationConfig", destinations, {"OnFailure"})
        queue_url = None
        if "OnFailure" in destinations:
            on_failure = destinations["OnFailure"]
            if on_failure.get("Type") != "SQS":
                raise TemplateError(f"{logical_id}: the local stack delivers on-failure records to SQS only")
            queue_url = provisioner.client("sqs").get_queue_url(QueueName=on_failure["Destination"].rsplit(":", 1)[1])
        provisioner.async_configs[function["Ref"]] = AsyncInvokeConfig(
            max_retries=int(config.get("MaximumRetryAttempts", 2)),  # Lambda's default
            on_failure_queue_url=str(queue_url["QueueUrl"]) if queue_url else None,
        )
    return dict(function)


def iam_role(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    """A role template.yaml declares whole (its trust and inline policies), or its part of a function's role
    (only the name; chalice makes the rest: Lambda may assume it, and it holds the function's policy file, from
    ``role_policies``; none when the caller gives none)."""
    strict(logical_id, p, {"RoleName", "Description", "MaxSessionDuration", "AssumeRolePolicyDocument", "Policies"})
    lambda_trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam = provisioner.client("iam")
    args: dict[str, Any] = {
        "RoleName": p["RoleName"],
        "AssumeRolePolicyDocument": json.dumps(p.get("AssumeRolePolicyDocument", lambda_trust)),
    }
    args.update({k: p[k] for k in ("Description",) if k in p})
    if "MaxSessionDuration" in p:
        args["MaxSessionDuration"] = int(p["MaxSessionDuration"])
    role = iam.create_role(**args)["Role"]
    policies: list[tuple[str, Any]] = []
    if "AssumeRolePolicyDocument" not in p and provisioner.role_policies is not None:
        if logical_id not in provisioner.role_policies:
            raise TemplateError(f"{logical_id}: no policy file names this function's role (.chalice/config.json)")
        policies.append((f"{logical_id}Policy", provisioner.role_policies[logical_id]))
    policies += [(str(x["PolicyName"]), x["PolicyDocument"]) for x in p.get("Policies", [])]
    for name, document in policies:
        if document is not None:
            iam.put_role_policy(RoleName=role["RoleName"], PolicyName=name, PolicyDocument=json.dumps(document))
    return {"Ref": str(role["RoleName"]), "Arn": str(role["Arn"]), "RoleId": str(role["RoleId"])}


def rest_api(provisioner: Provisioner, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
    """template.yaml's part of chalice's REST API: its name, its definition's gateway responses and resource policy
    (chalice generates the rest; the local gateway plays the API and answers from this definition). The name is the
    one the API gets on AWS (the SAM stack's RestApi Name; ``wire-app`` renames chalice's), so the ``Name`` attribute
    is what the alarm and the dashboard, which find the API's metrics by its name, must name. ``AlwaysDeploy`` (a new
    deployment on every stack update) has nothing to do here: the local gateway serves the definition as it is."""
    strict(logical_id, p, {"AlwaysDeploy", "DefinitionBody", "Name"})
    if logical_id != REST_API:
        raise TemplateError(f"{logical_id}: the app has one REST API, {REST_API}")
    definition = p.get("DefinitionBody", {})
    provisioner.gateway_responses.update(gateway_responses(definition))
    provisioner.proxy_routes.update(proxy_routes(definition))
    region, account = (provisioner.template.resolve({"Ref": name}) for name in ("AWS::Region", "AWS::AccountId"))
    provisioner.api_resource_policy = resource_policy(definition, region=str(region), account_id=str(account))
    attributes = {"Ref": API_ID, "RootResourceId": API_ID, "Stage": STAGE}
    if "Name" in p:
        attributes["Name"] = str(p["Name"])
    return attributes
