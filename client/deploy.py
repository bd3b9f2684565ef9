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

from client.wire_access import (
    PolicyNotHeld,
    associate_web_acl,
    put_resource_policy,
    remove_resource_policy,
    remove_web_acl,
    web_acl_arn,
)
from local.apidef import DEFINITION_KEYS, GATEWAY_RESPONSES, RESOURCE_POLICY, REST_API
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
    # A condition only app resources used (say, the web ACL association's) is left unused: drop it (cfn-lint W8001).
    used = _conditions_used({k: v for k, v in document.items() if k != "Conditions"}, document.get("Conditions", {}))
    document["Conditions"] = {k: v for k, v in document.get("Conditions", {}).items() if k in used}
    if not document["Conditions"]:
        del document["Conditions"]
    return document


def _conditions_used(value: Any, conditions: Mapping[str, Any]) -> set[str]:
    """The conditions ``value`` names (a resource's or output's Condition, Fn::If), and those they name in turn."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            for key, args in item.items():
                named = args if key == "Condition" else args[0] if key == "Fn::If" else None
                if isinstance(named, str) and named in conditions and named not in found:
                    found.add(named)
                    pending.append(conditions[named])
                pending.append(args)
    return found


def app_resources_of(deployed: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Attributes of the app's resources from chalice's ``.chalice/deployed/<stage>.json``, by the logical
    ids chalice gives them in a packaged SAM template (a function's Ref is its name, as in CloudFormation)."""
    from chalice.utils import to_cfn_resource_name

    attributes: dict[str, dict[str, str]] = {}
    for resource in deployed.get("resources", []):
        if resource.get("resource_type") == "lambda_function":
            name, arn = str(resource["name"]), str(resource["lambda_arn"])
            logical_id = "APIHandler" if name == "api_handler" else to_cfn_resource_name(name)  # chalice's fixed id
            attributes[logical_id] = {"Ref": arn.split(":")[6], "Arn": arn}
        elif resource.get("resource_type") == "iam_role":  # "<function>_role": chalice's <Function>Role
            attributes[to_cfn_resource_name(str(resource["name"]))] = {
                "Ref": str(resource["role_name"]),
                "Arn": str(resource["role_arn"]),
            }
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
    template.attributes.update(_stack_attributes(document, stack_resources, client))
    functions = app_resources_of(deployed)
    template.attributes.update(functions)
    if REST_API in functions:  # SAM's reference to the stage it generates (`!Ref RestAPI.Stage`): chalice's stage
        template.attributes[f"{REST_API}.Stage"] = {"Ref": _stage_of(deployed)}
        template.attributes[REST_API]["Stage"] = _stage_of(deployed)  # the same, as `${RestAPI.Stage}` in a Sub
    done: list[str] = []
    api_ids: set[str] = set()
    for logical_id in template.creation_order():
        resource = document["Resources"][logical_id]
        if not needs_app(resource):
            continue
        props = template.resolve(resource.get("Properties", {}))
        kind = resource["Type"]
        if kind in ("AWS::Serverless::Function", "AWS::IAM::Role"):
            _app_part(client, logical_id, kind, functions.get(logical_id), props)
        elif kind == "AWS::Lambda::Permission":
            _permission(client("lambda"), logical_id, props)
        elif kind == "AWS::SecretsManager::RotationSchedule":
            client("secretsmanager").rotate_secret(
                SecretId=props["SecretId"],
                RotationLambdaARN=props["RotationLambdaARN"],
                RotationRules=props.get("RotationRules", {}),
                RotateImmediately=str(props.get("RotateImmediatelyOnUpdate", True)).lower() == "true",
            )
        elif kind == "AWS::Serverless::Api":
            api_id = _rest_api_id(template, logical_id)
            held = _merge_definition(client("apigateway"), logical_id, api_id, props)
            renamed = _name_api(client("apigateway"), logical_id, api_id, str(held["name"]), props)
            ours = _declared_sids(resource)
            policy = _resource_policy(
                client("apigateway"), logical_id, api_id, props, held, ours, region=region, account_id=account_id
            )
            api_ids.add(api_id)
            notes = [note for note in (renamed, policy) if note]
            if notes:
                done.append(f"{logical_id} ({kind}): {'; '.join(notes)}")
                continue
        elif kind == "AWS::ApiGateway::BasePathMapping":
            _rest_api_id(template, logical_id)
            _base_path_mapping(client("apigateway"), logical_id, props)
        elif kind == "AWS::WAFv2::WebACLAssociation":
            done.append(f"{logical_id} ({kind}): {associate_web_acl(client('wafv2'), client('apigateway'), props)}")
            continue
        else:
            raise WireError(f"{logical_id}: cannot wire {kind}; teach client/deploy.py")
        done.append(f"{logical_id} ({kind})")
    done.extend(_undeclared_web_acls(document, template, client))
    for api_id in sorted(api_ids):  # the merged definition takes effect with a new deployment of the stage
        client("apigateway").create_deployment(restApiId=api_id, stageName=_stage_of(deployed))
        done.append(f"deployed REST API {api_id}")
    return done


def _stack_attributes(document: Mapping[str, Any], stack_resources: Mapping[str, str], client: Any) -> dict[str, Any]:
    """Each stack resource's Ref (its physical id), and the Arn of those needs-app resources refer to by Arn: a
    queue (an on-failure destination) and the provided web ACL (the API stage's association)."""
    attributes: dict[str, dict[str, str]] = {}
    for logical, physical in stack_resources.items():
        attributes[logical] = {"Ref": physical}
        kind = document["Resources"].get(logical, {}).get("Type")
        if kind == "AWS::SQS::Queue":
            arn = client("sqs").get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])
            attributes[logical]["Arn"] = arn["Attributes"]["QueueArn"]
        elif kind == "AWS::WAFv2::WebACL":
            attributes[logical]["Arn"] = web_acl_arn(client("wafv2"), physical)
    return attributes


def _resource_policy(
    apigateway: Any,
    logical_id: str,
    api_id: str,
    props: Mapping[str, Any],
    held: Mapping[str, Any],
    ours: set[str],
    *,
    region: str,
    account_id: str,
) -> str | None:
    """The declared resource policy (x-amazon-apigateway-policy): the merge may not carry it, so what API Gateway
    holds is checked and, if need be, put (client/wire_access.py). No policy declared (OrganizationId cleared): the
    policy the API held before the merge (``held``; a merge without a policy leaves it as it is) is removed if it is
    credport's (its statements' Sids are among ``ours``), else left; what was done, or None when nothing was said."""
    policy = props.get("DefinitionBody", {}).get(RESOURCE_POLICY)
    try:
        if policy is None:
            return remove_resource_policy(apigateway, api_id, held, ours)
        put_resource_policy(apigateway, api_id, policy, region=region, account_id=account_id)
    except PolicyNotHeld as error:
        raise WireError(f"{logical_id}: {error}") from None
    return None


def _declared_sids(resource: Mapping[str, Any]) -> set[str]:
    """The Sid of every statement the API's resource policy may hold, as template.yaml writes it (every branch of its
    Fn::If, whatever the parameters): what ``wire-app`` may remove once no policy is declared."""
    found: set[str] = set()
    pending: list[Any] = [resource.get("Properties", {}).get("DefinitionBody", {}).get(RESOURCE_POLICY)]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            if isinstance(item.get("Sid"), str):
                found.add(item["Sid"])
            pending.extend(item.values())
    return found


def _undeclared_web_acls(document: Mapping[str, Any], template: Template, client: Any) -> list[str]:
    """A web ACL association the template declares under a false condition (``ApiWaf=none``): the web ACL credport
    associated with the stage is disassociated (client/wire_access.py). Path (a) alike: CloudFormation deletes the
    association it made, and nothing else."""
    done: list[str] = []
    if REST_API not in template.attributes:
        return done
    for logical_id, resource in document["Resources"].items():
        if resource["Type"] != "AWS::WAFv2::WebACLAssociation" or not needs_app(resource):
            continue
        if template.included(logical_id):
            continue
        stage = str(template.resolve(resource["Properties"]["ResourceArn"]))
        removed = remove_web_acl(client("wafv2"), client("apigateway"), stage)
        if removed:
            done.append(f"{logical_id} ({resource['Type']}): {removed}")
    return done


def _function(lambda_client: Any, logical_id: str, deployed_name: str, props: Mapping[str, Any]) -> None:
    """template.yaml's part of an app function: the name chalice gave it must be the one the SAM stack gives
    it (IAM log permissions name it), and its asynchronous invocation settings are put (idempotent)."""
    unknown = set(props) - {"FunctionName", "EventInvokeConfig"}
    if unknown:
        raise WireError(f"{logical_id}: cannot wire {sorted(unknown)}; teach client/deploy.py")
    if props.get("FunctionName", deployed_name) != deployed_name:
        raise WireError(
            f"{logical_id}: template.yaml names it {props['FunctionName']}, chalice deployed {deployed_name}"
        )
    if "EventInvokeConfig" in props:
        config = props["EventInvokeConfig"]
        args: dict[str, Any] = {"FunctionName": deployed_name}
        args.update({k: int(config[k]) for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds") if k in config})
        destinations = {  # SAM's Type (SQS, SNS, ...) is implied by the ARN in Lambda's API
            outcome: {"Destination": target["Destination"]}
            for outcome, target in config.get("DestinationConfig", {}).items()
        }
        if destinations:
            args["DestinationConfig"] = destinations
        lambda_client.put_function_event_invoke_config(**args)


def _app_part(
    client: Any, logical_id: str, kind: str, deployed: Mapping[str, str] | None, props: Mapping[str, Any]
) -> None:
    """template.yaml's part of one of the app's functions or of its role, checked against what chalice deployed."""
    if deployed is None:
        what = "role" if kind == "AWS::IAM::Role" else "function"
        raise WireError(f"{logical_id}: chalice deployed no such {what} (is the app deployed?)")
    if kind == "AWS::IAM::Role":
        _role(logical_id, deployed, props)
    else:
        _function(client("lambda"), logical_id, deployed["Ref"], props)


def _role(logical_id: str, deployed: Mapping[str, str], props: Mapping[str, Any]) -> None:
    """template.yaml's part of a function's role: the name chalice gave it must be the one the SAM stack gives it
    (a signing key's key policy names the roles of the functions that use it). Nothing is changed."""
    unknown = set(props) - {"RoleName"}
    if unknown:
        raise WireError(f"{logical_id}: cannot wire {sorted(unknown)}; teach client/deploy.py")
    if props.get("RoleName", deployed["Ref"]) != deployed["Ref"]:
        raise WireError(f"{logical_id}: template.yaml names it {props['RoleName']}, chalice deployed {deployed['Ref']}")


def _merge_definition(apigateway: Any, logical_id: str, api_id: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    """template.yaml's part of chalice's REST API definition, merged into the API ``chalice deploy`` made; returns
    the API as GetRestApi described it before the merge: its name, which the merge keeps (the definition's title is
    the name the API held), and its resource policy.

    chalice offers no hook into the definition it deploys (aws/chalice#1282), and every ``chalice deploy`` puts
    its own in overwrite mode, dropping gateway responses set since (aws/chalice#787): hence ``wire-app`` after
    every ``chalice deploy``. PutRestApi in *merge* mode imports the very fragment ``chalice package
    --merge-template`` merges into the SAM stack's RestAPI (one source, one importer, one validation); chalice's
    routes stay as they are, and the fragment's ``paths`` add the methods integrated with a function of their own
    (POST /auto-id, by proxy to the auto_id function). What API Gateway then holds is read back and compared.
    """
    # AlwaysDeploy (a new deployment on every SAM stack update) needs nothing here: wire-app deploys the stage on
    # every run anyway (wire_app, after the merge).
    known = {"AlwaysDeploy", "DefinitionBody", "Name"}
    unknown = set(props) - known | set(props.get("DefinitionBody", {})) - DEFINITION_KEYS
    if unknown:
        raise WireError(f"{logical_id}: cannot wire {sorted(unknown)}; teach client/deploy.py")
    fragment = props.get("DefinitionBody", {})
    api: Mapping[str, Any] = apigateway.get_rest_api(restApiId=api_id)
    title = api["name"]
    body = {"swagger": "2.0", "info": {"title": title, "version": "1.0"}, "paths": {}, **fragment}
    try:
        apigateway.put_rest_api(restApiId=api_id, mode="merge", body=json.dumps(body).encode())
    except apigateway.exceptions.BadRequestException as error:  # the importer's verdict on the definition
        raise WireError(f"{logical_id}: API Gateway refused the definition: {error}") from None
    held = {r["responseType"]: r for r in apigateway.get_gateway_responses(restApiId=api_id, limit=500)["items"]}
    for kind, spec in fragment.get(GATEWAY_RESPONSES, {}).items():
        got = held.get(kind, {})
        status = spec.get("statusCode", got.get("statusCode"))  # undeclared: the type's default stays
        wanted = (str(status), spec.get("responseParameters", {}), spec.get("responseTemplates", {}))
        if (str(got.get("statusCode")), got.get("responseParameters", {}), got.get("responseTemplates", {})) != wanted:
            raise WireError(f"{logical_id}: API Gateway does not hold the declared {kind} gateway response")
    return api


def _name_api(apigateway: Any, logical_id: str, api_id: str, held: str, props: Mapping[str, Any]) -> str | None:
    """The declared name (template.yaml: the stack's Prefix) on the API ``chalice deploy`` made, which chalice names
    after the app (credport, in every stage) each time it puts its definition: REST API metrics carry the API's name,
    not its id (API Gateway Developer Guide, "Amazon API Gateway dimensions and metrics"), so the alarm and the
    dashboard find this deployment's API by it. UpdateRestApi (``replace /name``; IAM ``apigateway:PATCH`` on the
    API) when the name the API holds after the merge differs; what was done, or None when nothing was."""
    wanted = props.get("Name")
    if wanted is None or wanted == held:
        return None
    operation = {"op": "replace", "path": "/name", "value": str(wanted)}
    named = apigateway.update_rest_api(restApiId=api_id, patchOperations=[operation]).get("name")
    if named != wanted:
        raise WireError(f"{logical_id}: API Gateway named REST API {api_id} {named}, not {wanted}")
    return f"REST API {api_id} renamed from {held} to {wanted}"


def _rest_api_id(template: Template, logical_id: str) -> str:
    if REST_API not in template.attributes:
        raise WireError(f"{logical_id}: chalice deployed no REST API (is the app deployed?)")
    return str(template.attributes[REST_API]["Ref"])


def _base_path_mapping(apigateway: Any, logical_id: str, props: Mapping[str, Any]) -> None:
    """The custom domain's mapping to the API and stage ``chalice deploy`` made (CreateBasePathMapping). A mapping
    already there to the same API and stage is this one (a rerun); to anything else, it is the operator's to
    resolve: never repointed silently. API Gateway spells the empty base path ``(none)`` (API Gateway API
    Reference, GetBasePathMapping)."""
    unknown = set(props) - {"DomainName", "RestApiId", "Stage", "BasePath"}
    if unknown:
        raise WireError(f"{logical_id}: cannot wire {sorted(unknown)}; teach client/deploy.py")
    domain, api_id, stage = str(props["DomainName"]), str(props["RestApiId"]), str(props["Stage"])
    base_path = str(props.get("BasePath", ""))
    try:
        held = apigateway.get_base_path_mapping(domainName=domain, basePath=base_path or "(none)")
    except apigateway.exceptions.NotFoundException:
        args = {"domainName": domain, "restApiId": api_id, "stage": stage}
        apigateway.create_base_path_mapping(**args, **({"basePath": base_path} if base_path else {}))
        return
    if (held.get("restApiId"), held.get("stage")) != (api_id, stage):
        where = f"https://{domain}/{base_path}"
        raise WireError(
            f"{logical_id}: {where} already maps to API {held.get('restApiId')} stage {held.get('stage')}, "
            f"not {api_id} stage {stage}; remove that mapping first"
        )


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
