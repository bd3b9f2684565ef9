"""The provisioner: every resource of the template, in creation order, handed to the creator of its type.

A creator is ``(provisioner, logical id, resolved properties) -> attributes for Ref/GetAtt``; :data:`CREATORS` names
one per resource type, and a type it does not name is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from local.apidef import API_ID, REST_API, STAGE, GatewayResponse, ProxyRoute
from local.template import Template, TemplateError

from .functions import app_function, iam_role, lambda_permission, rest_api
from .keys import kms_alias, kms_key, rotation_schedule, secret
from .messaging import cloudwatch_alarm, sns_topic, sqs_queue, sqs_queue_policy
from .monitoring import cloudwatch_dashboard, events_rule, sns_subscription, sns_topic_policy
from .results import AsyncInvokeConfig, Provisioned, RotationSpec
from .storage import dynamodb_table, s3_bucket, s3_bucket_policy
from .waf import web_acl, web_acl_association

__all__ = ["CREATORS", "Creator", "Provisioner", "app_functions"]


def app_functions(app: Any) -> dict[str, str]:
    """The app's Lambda functions by the logical id chalice gives them in the packaged SAM template."""
    from chalice.utils import to_cfn_resource_name

    names = [f.name for f in app.pure_lambda_functions] + [s.name for s in app.event_sources]
    names += [auth.name for auth in app.builtin_auth_handlers]
    functions = {to_cfn_resource_name(name): name for name in names}
    if app.routes:  # chalice's one function behind the REST API, under a fixed logical id
        functions["APIHandler"] = "api_handler"
    return functions


class Provisioner:
    """``functions`` maps the app's Lambda functions to their names under the logical ids chalice gives them in
    the merged SAM template, so ``!GetAtt RotateX.Arn`` in template.yaml resolves locally too."""

    def __init__(
        self,
        template: Template,
        client: Callable[[str], Any],
        *,
        functions: Mapping[str, str] | None = None,
        role_policies: Mapping[str, Mapping[str, Any]] | None = None,
        conditions_evaluated: bool = False,
    ) -> None:
        self.template = template
        self.client = client
        # What chalice puts in each function's role, by the role's logical id: the function's policy file. None: the
        # roles get no policy (IAM not enforced); given, a function role it does not name is an error.
        self.role_policies = role_policies
        # Whether the embedded AWS evaluates policy conditions (local.iam.enforce enforcing, as the local stack does).
        self.conditions_evaluated = conditions_evaluated
        self.notes: list[str] = list(template.waived)
        self.rotations: list[RotationSpec] = []
        self.gateway_responses: dict[str, GatewayResponse] = {}
        self.api_resource_policy: dict[str, Any] | None = None
        self.async_configs: dict[str, AsyncInvokeConfig] = {}
        self.proxy_routes: dict[tuple[str, str], ProxyRoute] = {}
        region, account = template.resolve({"Ref": "AWS::Region"}), template.resolve({"Ref": "AWS::AccountId"})
        for logical_id, name in (functions or {}).items():
            arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
            template.attributes[logical_id] = {"Ref": name, "Arn": arn}
        if functions is not None:
            # chalice's REST API resource in the merged SAM template; the local gateway plays it.
            template.attributes[REST_API] = {"Ref": API_ID, "RootResourceId": API_ID, "Stage": STAGE}

    def provision(self) -> Provisioned:
        refused = self.template.rule_failures()  # as CloudFormation: the Rules first, before any resource
        if refused:
            raise TemplateError("the template's Rules refuse these parameters: " + "; ".join(refused))
        order = self.template.creation_order()
        # Only what these parameters include must be creatable (a production resource the embedded AWS cannot play,
        # such as a CloudFront distribution, carries a Condition false by default); checked before anything is made.
        unknown = [
            f"{self.template.resources[i]['Type']} ({i})"
            for i in order
            if self.template.resources[i]["Type"] not in CREATORS
        ]
        if unknown:
            raise TemplateError(f"the local stack cannot provision {', '.join(unknown)}; teach local/provision/")
        types = {}
        for logical_id in order:
            resource = self.template.resources[logical_id]
            kind = resource["Type"]
            creator = CREATORS[kind]
            props = self.template.resolve(resource.get("Properties", {}))
            self.template.attributes[logical_id] = creator(self, logical_id, props)
            types[logical_id] = kind
        outputs = {
            name: str(self.template.resolve(spec["Value"]))
            for name, spec in self.template.document.get("Outputs", {}).items()
            if "Condition" not in spec or self.template.condition(spec["Condition"])
        }
        return Provisioned(
            attributes=dict(self.template.attributes),
            types=types,
            outputs=outputs,
            notes=tuple(self.notes),
            rotations=tuple(self.rotations),
            gateway_responses=dict(self.gateway_responses),
            api_resource_policy=self.api_resource_policy,
            async_configs=dict(self.async_configs),
            proxy_routes=dict(self.proxy_routes),
        )


# (provisioner, logical id, resolved properties) -> attributes for Ref/GetAtt.
Creator = Callable[[Provisioner, str, Mapping[str, Any]], dict[str, str]]

CREATORS: dict[str, Creator] = {
    "AWS::KMS::Key": kms_key,
    "AWS::KMS::Alias": kms_alias,
    "AWS::SQS::Queue": sqs_queue,
    "AWS::SQS::QueuePolicy": sqs_queue_policy,
    "AWS::S3::Bucket": s3_bucket,
    "AWS::S3::BucketPolicy": s3_bucket_policy,
    "AWS::SNS::Topic": sns_topic,
    "AWS::CloudWatch::Alarm": cloudwatch_alarm,
    "AWS::CloudWatch::Dashboard": cloudwatch_dashboard,
    "AWS::SNS::TopicPolicy": sns_topic_policy,
    "AWS::SNS::Subscription": sns_subscription,
    "AWS::Events::Rule": events_rule,
    "AWS::DynamoDB::Table": dynamodb_table,
    "AWS::SecretsManager::Secret": secret,
    "AWS::SecretsManager::RotationSchedule": rotation_schedule,
    "AWS::Lambda::Permission": lambda_permission,
    "AWS::Serverless::Function": app_function,
    "AWS::IAM::Role": iam_role,
    "AWS::Serverless::Api": rest_api,
    "AWS::WAFv2::WebACL": web_acl,
    "AWS::WAFv2::WebACLAssociation": web_acl_association,
}
