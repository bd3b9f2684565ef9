"""template.yaml provisioned into moto: one source of truth for the local stack and the tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.aws import AwsServices
from chalicelib.aws.clients import ClientFactory
from chalicelib.config import Settings
from chalicelib.events import parse_notification
from local.provision import CREATORS, Provisioned, Provisioner
from local.rotation import RotationDriver, RotationFailed
from local.template import Template, TemplateError, load_template
from tests.conftest import ACCOUNT_ID, REGION, REPO_ROOT, provision_template


def test_every_template_resource_is_provisioned(factory: ClientFactory) -> None:
    document = load_template(REPO_ROOT / "template.yaml")
    result = provision_template(factory)
    # Every resource the default parameters include (the production ones carry a false Condition by default).
    unconditional = {k for k, r in document["Resources"].items() if "Condition" not in r}
    assert unconditional <= set(result.types) <= set(document["Resources"])
    # Every kind the defaults include has a creator; a production resource the embedded AWS cannot play (CloudFront,
    # ACM, Route 53, custom domains) is under a Condition, and a stack whose parameters include it is refused whole.
    assert {r["Type"] for r in document["Resources"].values() if "Condition" not in r} <= set(CREATORS)
    cloudfront = Template(
        document,
        parameters={"Prefix": "cp-cdn", "IssuerDistribution": "cloudfront"},
        account_id=ACCOUNT_ID,
        region=REGION,
        stack_name="cp-cdn",
    )
    with pytest.raises(TemplateError, match=r"cannot provision AWS::CloudFront::OriginAccessControl \(IssuerOrigin"):
        Provisioner(cloudfront, lambda service: pytest.fail(f"{service} called: a half-made stack")).provision()


def test_moto_holds_exactly_what_the_template_declares(factory: ClientFactory) -> None:
    document = load_template(REPO_ROOT / "template.yaml")
    provision_template(factory, prefix="cp-test")

    def declared(kind: str, key: str) -> set[str]:
        return {
            r["Properties"][key]["Fn::Sub"].replace("${Prefix}", "cp-test").replace("${AWS::AccountId}", ACCOUNT_ID)
            for r in document["Resources"].values()
            if r["Type"] == kind
        }

    queues = {url.rsplit("/", 1)[1] for url in factory.client("sqs").list_queues().get("QueueUrls", [])}
    topics = {t["TopicArn"].rsplit(":", 1)[1] for t in factory.client("sns").list_topics()["Topics"]}
    buckets = {b["Name"] for b in factory.client("s3").list_buckets()["Buckets"]}
    tables = set(factory.client("dynamodb").list_tables()["TableNames"])
    aliases = {
        a["AliasName"]
        for a in factory.client("kms").list_aliases()["Aliases"]
        if not a["AliasName"].startswith("alias/aws/")
    }
    kms = factory.client("kms")
    metadata = [kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"] for k in kms.list_keys()["Keys"]]
    # moto stands in for AWS-managed keys (aws/dynamodb, aws/sns) with keys it labels CUSTOMER.
    keys = [m for m in metadata if not m["Description"].startswith("Default master key")]
    assert queues == declared("AWS::SQS::Queue", "QueueName")
    assert topics == declared("AWS::SNS::Topic", "TopicName")
    assert buckets == declared("AWS::S3::Bucket", "BucketName")
    assert tables == declared("AWS::DynamoDB::Table", "TableName")
    assert aliases == declared("AWS::KMS::Alias", "AliasName")
    secrets = {x["Name"] for x in factory.client("secretsmanager").list_secrets()["SecretList"]}
    assert secrets == declared("AWS::SecretsManager::Secret", "Name")
    assert len(keys) == sum(r["Type"] == "AWS::KMS::Key" for r in document["Resources"].values())


def test_outputs_make_a_valid_app_configuration(provisioned: Provisioned) -> None:
    settings = Settings.from_env(provisioned.app_environment())
    assert settings.resources.transfer_bucket == "credport-dev-transfer-123456789012"
    assert settings.resources.state_table == "credport-dev-state"
    assert settings.prefix == "credport-dev"


def test_resources_are_configured_as_declared(provisioned: Provisioned, factory: ClientFactory) -> None:
    s3, sqs, ddb = factory.client("s3"), factory.client("sqs"), factory.client("dynamodb")
    bucket = provisioned.outputs["TransferBucketName"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == provisioned.outputs["DataKeyArn"]
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    url = provisioned.attributes["S3EventsQueue"]["QueueUrl"]
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["RedrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": provisioned.attributes["S3EventsDeadLetterQueue"]["Arn"],
        "maxReceiveCount": 5,
    }
    ttl = ddb.describe_time_to_live(TableName=provisioned.outputs["StateTableName"])["TimeToLiveDescription"]
    assert ttl == {"AttributeName": "expires_at", "TimeToLiveStatus": "ENABLED"}


def test_watched_prefixes_notify_the_events_queue(provisioned: Provisioned, aws: AwsServices) -> None:
    bucket = provisioned.outputs["TransferBucketName"]
    url = provisioned.attributes["S3EventsQueue"]["QueueUrl"]
    aws.s3.put(bucket, "inbox/a.jwe", b"x")
    aws.s3.put(bucket, "clients/c1/public.pem", b"y")
    aws.s3.put(bucket, "outbox/ignored.jwe", b"z")
    keys = []
    for _ in range(5):
        for message in aws.sqs.receive(url, max_messages=10):
            keys += [e.key for e in parse_notification(message.body)]
    assert sorted(keys) == ["clients/c1/public.pem", "inbox/a.jwe"]


def test_local_differences_are_reported(provisioned: Provisioned) -> None:
    assert provisioned.notes == (
        "parameter Issuer=http://127.0.0.1:8000: an http loopback issuer (AWS stacks take https only), "
        "accepted against its AllowedPattern",
        "TransferBucketPolicy: statement TlsOnly not enforced locally (conditional bucket-policy statements)",
        "CloudWatch alarms: defined, never evaluated locally (the embedded CloudWatch gets no metrics)",
        "SessionKeyRotationFailedRule: never matches locally (the embedded Secrets Manager emits no CloudTrail events)",
    )


def test_unknown_resource_types_and_properties_are_refused(factory: ClientFactory) -> None:
    def provision(resource: dict[str, Any]) -> None:
        template = Template(
            {"Resources": {"R": resource}}, parameters={}, account_id=ACCOUNT_ID, region=REGION, stack_name="s"
        )
        Provisioner(template, factory.client).provision()

    with pytest.raises(TemplateError, match="cannot provision AWS::Foo::Bar"):
        provision({"Type": "AWS::Foo::Bar"})
    with pytest.raises(TemplateError, match="does not apply"):
        provision({"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t", "FifoTopic": True}})


class RecordingRotation:
    """A minimal, correct rotation function (the app's real ones arrive with their capabilities)."""

    def __init__(self, aws: AwsServices, fail_at: str | None = None) -> None:
        self.services, self.fail_at, self.steps = aws, fail_at, []

    def __call__(self, event: dict[str, Any], _context: Any) -> None:
        step, token = event["Step"], event["ClientRequestToken"]
        self.steps.append(step)
        if step == self.fail_at:
            raise RuntimeError(f"{step} failed")
        secrets = self.services.secrets
        info = secrets.describe(event["SecretId"])
        assert "AWSPENDING" in info.versions[token]
        if step == "createSecret":
            secrets.put_value(event["SecretId"], f"value-{token}", client_request_token=token, stages=("AWSPENDING",))
        if step == "finishSecret":
            current = info.version_in_stage("AWSCURRENT")
            secrets.move_stage(event["SecretId"], "AWSCURRENT", to_version=token, from_version=current)


def test_rotation_driver_runs_the_four_steps(aws: AwsServices) -> None:
    aws.secrets.create("rotated", "v0")
    function = RecordingRotation(aws)
    result = RotationDriver(ACCOUNT_ID, REGION).rotate("rotated", function)
    assert function.steps == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    current = aws.secrets.get_value("rotated")
    assert current.version_id == result.token
    assert current.value == f"value-{result.token}"
    assert aws.secrets.get_value("rotated", stage="AWSPREVIOUS").value == "v0"
    assert not result.resumed


def test_failed_rotation_keeps_current_and_resumes_with_the_same_token(aws: AwsServices) -> None:
    aws.secrets.create("rotated", "v0")
    driver = RotationDriver(ACCOUNT_ID, REGION)
    with pytest.raises(RotationFailed) as failed:
        driver.rotate("rotated", RecordingRotation(aws, fail_at="testSecret"))
    assert failed.value.step == "testSecret"
    assert aws.secrets.get_value("rotated").value == "v0"
    result = driver.rotate("rotated", RecordingRotation(aws))
    assert result.resumed
    assert result.token == failed.value.token
    assert aws.secrets.get_value("rotated").version_id == failed.value.token


def test_secrets_and_rotation_schedules_resolve_the_apps_functions(factory: ClientFactory) -> None:
    document = {
        "Resources": {
            "Key": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {
                    "Name": "cp/session-key",
                    "GenerateSecretString": {
                        "SecretStringTemplate": '{"v": 1}',
                        "GenerateStringKey": "key",
                        "PasswordLength": 43,
                        "ExcludePunctuation": True,
                    },
                },
            },
            "KeyRotation": {
                "Type": "AWS::SecretsManager::RotationSchedule",
                "Properties": {
                    "SecretId": {"Ref": "Key"},
                    "RotationLambdaARN": {"Fn::GetAtt": ["RotateSessionKey", "Arn"]},
                    "RotationRules": {"ScheduleExpression": "rate(7 days)"},
                },
            },
        }
    }
    template = Template(document, parameters={}, account_id=ACCOUNT_ID, region=REGION, stack_name="cp")
    result = Provisioner(template, factory.client, functions={"RotateSessionKey": "rotate_session_key"}).provision()
    (spec,) = result.rotations
    assert spec.function_arn == f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:rotate_session_key"
    assert spec.period_seconds == 7 * 86400
    assert spec.rotate_immediately is True
    value = json.loads(factory.client("secretsmanager").get_secret_value(SecretId=spec.secret_id)["SecretString"])
    assert value["v"] == 1
    assert len(value["key"]) == 43
    assert value["key"].isalnum()
