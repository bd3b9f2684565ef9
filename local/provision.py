"""Create in the embedded AWS every resource template.yaml declares, the way CloudFormation would.

Each resource type has one creator, and each creator names the properties it applies. A type or a
property the local stack does not know is an error, never silently skipped: if the template grows, the
local stack must grow with it (a test keeps the two in step).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.config import STACK_OUTPUTS
from local.apidef import API_ID, REST_API, GatewayResponse, ProxyRoute, gateway_responses, proxy_routes, resource_policy
from local.template import Template, TemplateError

__all__ = [
    "CREATORS",
    "AsyncInvokeConfig",
    "GatewayResponse",
    "Provisioned",
    "Provisioner",
    "ProxyRoute",
    "RotationSpec",
    "app_functions",
]


@dataclass(frozen=True)
class RotationSpec:
    """A secret the template puts on a rotation schedule, and the app function that rotates it."""

    secret_id: str
    function_arn: str
    period_seconds: int | None  # None: rotate on request only (cron schedules)
    rotate_immediately: bool


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """A function's asynchronous invocation settings (Lambda EventInvokeConfig): how many retries after the
    first attempt, and the queue that receives the invocation record once every attempt failed."""

    max_retries: int
    on_failure_queue_url: str | None


@dataclass(frozen=True)
class Provisioned:
    attributes: Mapping[str, Mapping[str, str]]  # logical id -> {"Ref": …, "Arn": …}
    types: Mapping[str, str]  # logical id -> resource type
    outputs: Mapping[str, str]
    notes: tuple[str, ...] = ()  # where the local stack knowingly differs from AWS
    rotations: tuple[RotationSpec, ...] = ()
    gateway_responses: Mapping[str, GatewayResponse] = field(default_factory=dict)  # from the API's definition
    api_resource_policy: Mapping[str, Any] | None = None  # the API's resource policy, from its definition
    async_configs: Mapping[str, AsyncInvokeConfig] = field(default_factory=dict)  # by the app's function name
    # Methods the API's definition integrates with a function of their own (POST /auto-id), by (METHOD, path).
    proxy_routes: Mapping[tuple[str, str], ProxyRoute] = field(default_factory=dict)

    def app_environment(self) -> dict[str, str]:
        """The env vars a function gets from the template (what Globals and the outputs hold)."""
        return {env: self.outputs[name] for env, name in STACK_OUTPUTS.items()}


def app_functions(app: Any) -> dict[str, str]:
    """The app's Lambda functions by the logical id chalice gives them in the packaged SAM template."""
    from chalice.utils import to_cfn_resource_name

    names = [f.name for f in app.pure_lambda_functions] + [s.name for s in app.event_sources]
    names += [auth.name for auth in app.builtin_auth_handlers]
    functions = {to_cfn_resource_name(name): name for name in names}
    if app.routes:  # chalice's one function behind the REST API, under a fixed logical id
        functions["APIHandler"] = "api_handler"
    return functions


def _strict(logical_id: str, props: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(props) - known
    if unknown:
        raise TemplateError(f"{logical_id}: the local stack does not apply {sorted(unknown)}; teach local/provision.py")


def _boolean(value: Any) -> str:
    return "true" if str(value).lower() == "true" else "false"


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
            template.attributes[REST_API] = {"Ref": API_ID, "RootResourceId": API_ID}

    def provision(self) -> Provisioned:
        types = {}
        for logical_id in self.template.creation_order():
            resource = self.template.resources[logical_id]
            kind = resource["Type"]
            creator = CREATORS.get(kind)
            if creator is None:
                raise TemplateError(f"{logical_id}: the local stack cannot provision {kind}; teach local/provision.py")
            props = self.template.resolve(resource.get("Properties", {}))
            self.template.attributes[logical_id] = creator(self, logical_id, props)
            types[logical_id] = kind
        outputs = {
            name: str(self.template.resolve(spec["Value"]))
            for name, spec in self.template.document.get("Outputs", {}).items()
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

    # Creators: (logical id, resolved properties) -> attributes for Ref/GetAtt.

    def kms_key(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(logical_id, p, {"Description", "KeySpec", "KeyUsage", "EnableKeyRotation", "KeyPolicy", "Tags"})
        kms = self.client("kms")
        meta = kms.create_key(
            Description=p.get("Description", ""),
            KeySpec=p.get("KeySpec", "SYMMETRIC_DEFAULT"),
            KeyUsage=p.get("KeyUsage", "ENCRYPT_DECRYPT"),
            Policy=json.dumps(p["KeyPolicy"]) if "KeyPolicy" in p else None,
            Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in p.get("Tags", [])],
        )["KeyMetadata"]
        if _boolean(p.get("EnableKeyRotation")) == "true":
            kms.enable_key_rotation(KeyId=meta["KeyId"])
        return {"Ref": meta["KeyId"], "Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    def kms_alias(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(logical_id, p, {"AliasName", "TargetKeyId"})
        self.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        return {"Ref": p["AliasName"]}

    def sqs_queue(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        plain = {
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "KmsMasterKeyId",
        }
        flags = {"SqsManagedSseEnabled", "FifoQueue", "ContentBasedDeduplication"}
        _strict(logical_id, p, plain | flags | {"QueueName", "RedrivePolicy", "Tags"})
        attributes = {k: str(p[k]) for k in plain if k in p}
        attributes.update({k: _boolean(p[k]) for k in flags if k in p})
        if "RedrivePolicy" in p:
            redrive = p["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                    "maxReceiveCount": int(redrive["maxReceiveCount"]),
                }
            )
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=p["QueueName"], Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"Ref": url, "Arn": arn, "QueueName": p["QueueName"], "QueueUrl": url}

    def sqs_queue_policy(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(logical_id, p, {"Queues", "PolicyDocument"})
        for url in p["Queues"]:
            self.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])}
            )
        return {"Ref": logical_id}

    def s3_bucket(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(
            logical_id,
            p,
            {
                "BucketName",
                "VersioningConfiguration",
                "BucketEncryption",
                "OwnershipControls",
                "PublicAccessBlockConfiguration",
                "LifecycleConfiguration",
                "NotificationConfiguration",
                "Tags",
            },
        )
        s3, name = self.client("s3"), p["BucketName"]
        s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in p:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=p["VersioningConfiguration"])
        if "BucketEncryption" in p:
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"],
                    "BucketKeyEnabled": bool(r.get("BucketKeyEnabled", False)),
                }
                for r in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in p:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
        if "OwnershipControls" in p:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
        if "LifecycleConfiguration" in p:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=_lifecycle(p))
        if "NotificationConfiguration" in p:
            s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=_notifications(p))
        return {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}

    def s3_bucket_policy(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(logical_id, p, {"Bucket", "PolicyDocument"})
        document = dict(p["PolicyDocument"])
        # Unless conditions are evaluated (local.iam.enforce), moto ignores them: a conditional Deny (say, TLS-only)
        # would deny every request. The local stack evaluates them (its loopback HTTP counts as secure transport).
        kept = [s for s in document["Statement"] if self.conditions_evaluated or "Condition" not in s]
        for statement in document["Statement"]:
            if "Condition" in statement and not self.conditions_evaluated:
                self.notes.append(
                    f"{logical_id}: statement {statement.get('Sid', '?')} not enforced locally "
                    "(conditional bucket-policy statements)"
                )
        if kept:
            document["Statement"] = kept
            self.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(document))
        return {"Ref": logical_id}

    def sns_topic(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(logical_id, p, {"TopicName", "KmsMasterKeyId", "Tags"})
        attributes = {"KmsMasterKeyId": p["KmsMasterKeyId"]} if "KmsMasterKeyId" in p else {}
        arn = self.client("sns").create_topic(Name=p["TopicName"], Attributes=attributes)["TopicArn"]
        return {"Ref": arn, "TopicArn": arn, "TopicName": p["TopicName"]}

    def cloudwatch_alarm(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        keys = {"AlarmName", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic", "Period"}
        keys |= {"EvaluationPeriods", "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions"}
        _strict(logical_id, p, keys)
        self.client("cloudwatch").put_metric_alarm(
            **{k: p[k] for k in keys - {"Period", "EvaluationPeriods", "Threshold"} if k in p},
            Period=int(p["Period"]),
            EvaluationPeriods=int(p["EvaluationPeriods"]),
            Threshold=float(p["Threshold"]),
        )
        region, account = (
            self.template.resolve({"Ref": "AWS::Region"}),
            self.template.resolve({"Ref": "AWS::AccountId"}),
        )
        return {"Ref": p["AlarmName"], "Arn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{p['AlarmName']}"}

    def secret(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(logical_id, p, {"Name", "Description", "KmsKeyId", "SecretString", "GenerateSecretString", "Tags"})
        secrets = self.client("secretsmanager")
        value = p.get("SecretString")
        if "GenerateSecretString" in p:
            value = _generated_secret(secrets, p["GenerateSecretString"])
        args: dict[str, Any] = {"Name": p["Name"], "SecretString": value or ""}
        args.update({k: p[k] for k in ("Description", "KmsKeyId") if k in p})
        arn = secrets.create_secret(**args)["ARN"]
        return {"Ref": arn, "Id": arn}

    def rotation_schedule(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(logical_id, p, {"SecretId", "RotationLambdaARN", "RotationRules", "RotateImmediatelyOnUpdate"})
        rules = p.get("RotationRules", {})
        period = None
        if "AutomaticallyAfterDays" in rules:
            period = int(rules["AutomaticallyAfterDays"]) * 86400
        elif "ScheduleExpression" in rules:
            from local.pump import rate_seconds

            period = rate_seconds(rules["ScheduleExpression"])
        self.rotations.append(
            RotationSpec(
                secret_id=p["SecretId"],
                function_arn=p["RotationLambdaARN"],
                period_seconds=period,
                rotate_immediately=_boolean(p.get("RotateImmediatelyOnUpdate", True)) == "true",
            )
        )
        return {"Ref": logical_id}

    def lambda_permission(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(logical_id, p, {"FunctionName", "Action", "Principal", "SourceAccount", "SourceArn"})
        # The local stack invokes functions directly; a resource policy has nothing to guard here.
        return {"Ref": logical_id}

    def app_function(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        """template.yaml's part of one of the app's functions (chalice generates the rest). Locally functions
        keep their handler names (FunctionName is the name on AWS); the event pump applies EventInvokeConfig."""
        _strict(logical_id, p, {"FunctionName", "EventInvokeConfig"})
        function = self.template.attributes.get(logical_id)
        if function is None:
            raise TemplateError(f"{logical_id}: the app defines no function with this logical id")
        if "EventInvokeConfig" in p:
            config = p["EventInvokeConfig"]
            _strict(f"{logical_id}.EventInvokeConfig", config, {"MaximumRetryAttempts", "DestinationConfig"})
            destinations = config.get("DestinationConfig", {})
            _strict(f"{logical_id}.DestinationConfig", destinations, {"OnFailure"})
            queue_url = None
            if "OnFailure" in destinations:
                on_failure = destinations["OnFailure"]
                if on_failure.get("Type") != "SQS":
                    raise TemplateError(f"{logical_id}: the local stack delivers on-failure records to SQS only")
                queue_url = self.client("sqs").get_queue_url(QueueName=on_failure["Destination"].rsplit(":", 1)[1])
            self.async_configs[function["Ref"]] = AsyncInvokeConfig(
                max_retries=int(config.get("MaximumRetryAttempts", 2)),  # Lambda's default
                on_failure_queue_url=str(queue_url["QueueUrl"]) if queue_url else None,
            )
        return dict(function)

    def iam_role(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        """A role template.yaml declares whole (its trust and inline policies), or its part of a function's role
        (only the name; chalice makes the rest: Lambda may assume it, and it holds the function's policy file, from
        ``role_policies``; none when the caller gives none)."""
        _strict(
            logical_id, p, {"RoleName", "Description", "MaxSessionDuration", "AssumeRolePolicyDocument", "Policies"}
        )
        lambda_trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        iam = self.client("iam")
        args: dict[str, Any] = {
            "RoleName": p["RoleName"],
            "AssumeRolePolicyDocument": json.dumps(p.get("AssumeRolePolicyDocument", lambda_trust)),
        }
        args.update({k: p[k] for k in ("Description",) if k in p})
        if "MaxSessionDuration" in p:
            args["MaxSessionDuration"] = int(p["MaxSessionDuration"])
        role = iam.create_role(**args)["Role"]
        policies: list[tuple[str, Any]] = []
        if "AssumeRolePolicyDocument" not in p and self.role_policies is not None:
            if logical_id not in self.role_policies:
                raise TemplateError(f"{logical_id}: no policy file names this function's role (.chalice/config.json)")
            policies.append((f"{logical_id}Policy", self.role_policies[logical_id]))
        policies += [(str(x["PolicyName"]), x["PolicyDocument"]) for x in p.get("Policies", [])]
        for name, document in policies:
            if document is not None:
                iam.put_role_policy(RoleName=role["RoleName"], PolicyName=name, PolicyDocument=json.dumps(document))
        return {"Ref": str(role["RoleName"]), "Arn": str(role["Arn"]), "RoleId": str(role["RoleId"])}

    def rest_api(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        """template.yaml's part of chalice's REST API: its definition's gateway responses and resource policy
        (chalice generates the rest; the local gateway plays the API and answers from this definition)."""
        _strict(logical_id, p, {"DefinitionBody"})
        if logical_id != REST_API:
            raise TemplateError(f"{logical_id}: the app has one REST API, {REST_API}")
        definition = p.get("DefinitionBody", {})
        self.gateway_responses.update(gateway_responses(definition))
        self.proxy_routes.update(proxy_routes(definition))
        region, account = (self.template.resolve({"Ref": name}) for name in ("AWS::Region", "AWS::AccountId"))
        self.api_resource_policy = resource_policy(definition, region=str(region), account_id=str(account))
        return {"Ref": API_ID, "RootResourceId": API_ID}

    def dynamodb_table(self, logical_id: str, p: Mapping[str, Any]) -> dict[str, str]:
        _strict(
            logical_id,
            p,
            {
                "TableName",
                "BillingMode",
                "AttributeDefinitions",
                "KeySchema",
                "TimeToLiveSpecification",
                "PointInTimeRecoverySpecification",
                "SSESpecification",
                "Tags",
            },
        )
        ddb, name = self.client("dynamodb"), p["TableName"]
        table = ddb.create_table(
            TableName=name,
            BillingMode=p.get("BillingMode", "PAY_PER_REQUEST"),
            AttributeDefinitions=p["AttributeDefinitions"],
            KeySchema=p["KeySchema"],
            SSESpecification={"Enabled": bool(p.get("SSESpecification", {}).get("SSEEnabled", False))},
        )["TableDescription"]
        if "TimeToLiveSpecification" in p:
            ttl = p["TimeToLiveSpecification"]
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl.get("Enabled", True)),
                },
            )
        if "PointInTimeRecoverySpecification" in p:
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification=p["PointInTimeRecoverySpecification"]
            )
        return {"Ref": name, "Arn": table["TableArn"]}


def _generated_secret(secrets: Any, spec: Mapping[str, Any]) -> str:
    _strict(
        "GenerateSecretString",
        spec,
        {
            "SecretStringTemplate",
            "GenerateStringKey",
            "PasswordLength",
            "ExcludeCharacters",
            "ExcludePunctuation",
            "IncludeSpace",
            "RequireEachIncludedType",
        },
    )
    args = {
        k: spec[k]
        for k in (
            "PasswordLength",
            "ExcludeCharacters",
            "ExcludePunctuation",
            "IncludeSpace",
            "RequireEachIncludedType",
        )
        if k in spec
    }
    password = secrets.get_random_password(**args)["RandomPassword"]
    if "SecretStringTemplate" not in spec:
        return str(password)
    document = json.loads(spec["SecretStringTemplate"])
    document[spec["GenerateStringKey"]] = password
    return json.dumps(document)


def _lifecycle(p: Mapping[str, Any]) -> dict[str, Any]:
    rules = []
    for rule in p["LifecycleConfiguration"]["Rules"]:
        api_rule: dict[str, Any] = {
            "ID": rule["Id"],
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "ExpirationInDays" in rule:
            api_rule["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "NoncurrentVersionExpiration" in rule:
            api_rule["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
            }
        rules.append(api_rule)
    return {"Rules": rules}


def _notifications(p: Mapping[str, Any]) -> dict[str, Any]:
    configs = []
    for queue in p["NotificationConfiguration"].get("QueueConfigurations", []):
        rules = queue.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        config: dict[str, Any] = {"QueueArn": queue["Queue"], "Events": [queue["Event"]]}
        if rules:
            config["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
        configs.append(config)
    return {"QueueConfigurations": configs}


CREATORS: dict[str, Callable[[Provisioner, str, Mapping[str, Any]], dict[str, str]]] = {
    "AWS::KMS::Key": Provisioner.kms_key,
    "AWS::KMS::Alias": Provisioner.kms_alias,
    "AWS::SQS::Queue": Provisioner.sqs_queue,
    "AWS::SQS::QueuePolicy": Provisioner.sqs_queue_policy,
    "AWS::S3::Bucket": Provisioner.s3_bucket,
    "AWS::S3::BucketPolicy": Provisioner.s3_bucket_policy,
    "AWS::SNS::Topic": Provisioner.sns_topic,
    "AWS::CloudWatch::Alarm": Provisioner.cloudwatch_alarm,
    "AWS::DynamoDB::Table": Provisioner.dynamodb_table,
    "AWS::SecretsManager::Secret": Provisioner.secret,
    "AWS::SecretsManager::RotationSchedule": Provisioner.rotation_schedule,
    "AWS::Lambda::Permission": Provisioner.lambda_permission,
    "AWS::Serverless::Function": Provisioner.app_function,
    "AWS::IAM::Role": Provisioner.iam_role,
    "AWS::Serverless::Api": Provisioner.rest_api,
}
