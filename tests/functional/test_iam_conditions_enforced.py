"""local.iam.enforce against moto: the resources AWS authorises, conditions on the embedded AWS's real state, resource
policies, and the AWS behaviours that depend on permissions. Each refusal asserts which check refused (the action
and resource in the error), each grant the decision that made it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local.iam import enforce
from local.iam.conditions import UnsupportedCondition
from local.iam.context import is_secure
from local.iam.policy import Decision, Request
from tests.conftest import ACCOUNT_ID, REGION

TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}],
}
Seen = list[tuple[Request, Decision]]


class Clock:
    """A fake clock for the KMS tag delay: tests move it, nothing sleeps."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(moto: None) -> Iterator[Clock]:
    fake = Clock()
    with enforce.configured(clock=fake, tag_authorization_delay_seconds=300):
        yield fake


@pytest.fixture
def seen(clock: Clock) -> Iterator[Seen]:
    decisions: Seen = []
    with enforce.configured(observer=lambda r, d: decisions.append((r, d))):
        yield decisions


def role(name: str, *statements: dict[str, Any]) -> boto3.Session:
    """A session of a new role whose only policy is ``statements`` (created unenforced, as the operator would)."""
    iam = boto3.client("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    if statements:
        document = {"Version": "2012-10-17", "Statement": list(statements)}
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(document))
    creds = boto3.client("sts").assume_role(RoleArn=arn, RoleSessionName="test")["Credentials"]
    return boto3.Session(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"], region_name=REGION)


def allow(action: Any, resource: Any = "*", **condition: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": action,
        "Resource": resource,
        **({"Condition": condition} if condition else {}),
    }


def denied(error: pytest.ExceptionInfo[ClientError], action: str, resource: str | None = None) -> None:
    """The request was refused by IAM, for this action (and resource)."""
    assert error.value.response["Error"]["Code"] in ("AccessDeniedException", "AccessDenied")
    message = error.value.response["Error"]["Message"]
    assert action in message, message
    if resource is not None:
        assert f"on resource: {resource}" in message, message


def key_arn(key_id: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key_id}"


def key_policy(principal: str) -> str:
    grant = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "kms:*", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [grant]})


# ---- KMS: the key behind an alias, tags and aliases on the key, their delay, key policies ------------------------


def test_kms_authorises_the_key_behind_an_alias_and_its_tags(clock: Clock, seen: Seen) -> None:
    kms = boto3.client("kms")
    tagged = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "blue"}])["KeyMetadata"]["KeyId"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/blue", TargetKeyId=tagged)
    use = role("user", allow("kms:DescribeKey", "arn:aws:kms:*:*:key/*", StringEquals={"aws:ResourceTag/team": "blue"}))
    clock.now += 300  # the tags and the alias have settled
    with enforce.enforcing():
        assert use.client("kms").describe_key(KeyId="alias/blue")["KeyMetadata"]["KeyId"] == tagged
        with pytest.raises(ClientError) as error:
            use.client("kms").describe_key(KeyId=other)
    denied(error, "kms:DescribeKey", key_arn(other))
    request = next(r for r, d in seen if d is Decision.ALLOW)
    assert request.resource == key_arn(tagged)
    assert request.context["kms:RequestAlias"] == "alias/blue"
    assert request.context["kms:ResourceAliases"] == ["alias/blue"]


def test_kms_tags_and_aliases_authorise_only_after_the_delay(clock: Clock) -> None:
    kms = boto3.client("kms")
    key = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "blue"}])["KeyMetadata"]["KeyId"]
    use = role(
        "user",
        allow("kms:DescribeKey", "arn:aws:kms:*:*:key/*", StringEquals={"aws:ResourceTag/team": "blue"}),
        allow(
            "kms:GetPublicKey",
            "arn:aws:kms:*:*:key/*",
            **{"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/x"}},
        ),
    )
    with enforce.enforcing(), pytest.raises(ClientError) as early:
        use.client("kms").describe_key(KeyId=key)
    denied(early, "kms:DescribeKey")
    clock.now += 299
    kms.create_alias(AliasName="alias/x", TargetKeyId=key)
    with enforce.enforcing(), pytest.raises(ClientError):
        use.client("kms").describe_key(KeyId=key)
    clock.now += 1
    with enforce.enforcing():
        assert use.client("kms").describe_key(KeyId=key)  # the tag: 300 s old
        with pytest.raises(ClientError) as alias_early:
            use.client("kms").get_public_key(KeyId=key)  # the alias: 1 s old
    denied(alias_early, "kms:GetPublicKey")
    clock.now += 299
    with enforce.enforcing():
        assert use.client("kms").get_public_key(KeyId=key)["KeyId"] in (key, key_arn(key))  # the alias: 300 s old


def test_create_key_authorises_request_tags_and_tag_resource(clock: Clock, seen: Seen) -> None:
    only_team = {
        "StringEquals": {"aws:RequestTag/team": "blue"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["team"]},
    }
    use = role("maker", allow("kms:CreateKey", **only_team), allow("kms:TagResource", **only_team))
    with enforce.enforcing():
        use.client("kms").create_key(Tags=[{"TagKey": "team", "TagValue": "blue"}])
        with pytest.raises(ClientError) as extra_tag:
            use.client("kms").create_key(
                Tags=[{"TagKey": "team", "TagValue": "blue"}, {"TagKey": "x", "TagValue": "y"}]
            )
    denied(extra_tag, "kms:CreateKey")
    assert [r.action for r, d in seen if d is Decision.ALLOW] == ["kms:CreateKey", "kms:TagResource"]
    only_create = role("creator", allow("kms:CreateKey"))
    with enforce.enforcing(), pytest.raises(ClientError) as tags_need_tag_resource:
        only_create.client("kms").create_key(Tags=[{"TagKey": "team", "TagValue": "blue"}])
    denied(tags_need_tag_resource, "kms:TagResource")


def test_key_policy_gates_iam_policies(clock: Clock) -> None:
    admin_only = key_policy(f"arn:aws:iam::{ACCOUNT_ID}:role/keyadmin")
    key = boto3.client("kms").create_key(Policy=admin_only, BypassPolicyLockoutSafetyCheck=True)
    key_id = key["KeyMetadata"]["KeyId"]
    user = role("user", allow("kms:*"))
    keyadmin = role("keyadmin")  # no IAM policy at all: the key policy names it
    with enforce.enforcing():
        assert keyadmin.client("kms").describe_key(KeyId=key_id)
        with pytest.raises(ClientError) as error:
            user.client("kms").describe_key(KeyId=key_id)  # kms:* in IAM, but the key policy does not allow the account
    denied(error, "kms:DescribeKey", key_arn(key_id))
    default = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]  # AWS's default key policy: IAM decides
    with enforce.enforcing():
        assert user.client("kms").describe_key(KeyId=default)


def test_create_key_refuses_a_policy_that_locks_the_caller_out(clock: Clock) -> None:
    maker = role("maker", allow("kms:CreateKey"))
    with enforce.enforcing(), pytest.raises(ClientError) as error:
        maker.client("kms").create_key(Policy=key_policy(f"arn:aws:iam::{ACCOUNT_ID}:role/other"))
    assert error.value.response["Error"]["Code"] == "MalformedPolicyDocumentException"
    with enforce.enforcing():
        assert maker.client("kms").create_key(Policy=key_policy(f"arn:aws:iam::{ACCOUNT_ID}:role/maker"))


def test_decrypt_is_authorised_against_the_key_of_the_ciphertext(clock: Clock) -> None:
    kms = boto3.client("kms")
    mine, other = (kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(2))
    use = role("user", allow("kms:Decrypt", key_arn(mine)))
    sealed = {k: kms.encrypt(KeyId=k, Plaintext=b"x")["CiphertextBlob"] for k in (mine, other)}
    with enforce.enforcing():
        assert use.client("kms").decrypt(CiphertextBlob=sealed[mine])["Plaintext"] == b"x"  # no KeyId given
        with pytest.raises(ClientError) as error:
            use.client("kms").decrypt(CiphertextBlob=sealed[other])
    denied(error, "kms:Decrypt", key_arn(other))


def test_an_unknown_condition_key_fails_the_request_loudly(clock: Clock) -> None:
    use = role("user", allow("kms:ListKeys", **{"StringEquals": {"aws:RequestedRegion": REGION}}))
    with enforce.enforcing(), pytest.raises(UnsupportedCondition, match="aws:RequestedRegion"):
        use.client("kms").list_keys()


# ---- Secrets Manager, DynamoDB, S3 ----------------------------------------------------------------------------


def test_secrets_are_authorised_against_their_real_arn(clock: Clock, seen: Seen) -> None:
    sm = boto3.client("secretsmanager")
    arn = sm.create_secret(Name="app/db", SecretString="x", Tags=[{"Key": "team", "Value": "blue"}])["ARN"]
    use = role(
        "user",
        allow("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:*:*:secret:app/db-??????"),
        allow(
            "secretsmanager:CreateSecret",
            "arn:aws:secretsmanager:*:*:secret:app/*",
            **{"StringEquals": {"secretsmanager:Name": "app/new"}},
        ),
        allow("secretsmanager:DescribeSecret", "*", StringEquals={"aws:ResourceTag/team": "blue"}),
    )
    with enforce.enforcing():
        assert use.client("secretsmanager").get_secret_value(SecretId="app/db")["SecretString"] == "x"
        assert use.client("secretsmanager").describe_secret(SecretId="app/db")  # tags count at once outside KMS
        use.client("secretsmanager").create_secret(Name="app/new", SecretString="y")
        with pytest.raises(ClientError) as error:
            use.client("secretsmanager").create_secret(Name="app/other", SecretString="y")
    denied(
        error, "secretsmanager:CreateSecret", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:app/other-??????"
    )
    assert seen[0][0].resource == arn


def test_dynamodb_leading_keys(clock: Clock) -> None:
    boto3.client("dynamodb").create_table(
        TableName="state",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/state"
    use = role(
        "user",
        allow(
            ["dynamodb:GetItem", "dynamodb:Query"],
            table,
            **{"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["mine#*"]}},
        ),
    )
    ddb = use.client("dynamodb")
    with enforce.enforcing():
        ddb.get_item(TableName="state", Key={"pk": {"S": "mine#1"}, "sk": {"S": "a"}})
        ddb.query(
            TableName="state",
            KeyConditionExpression="#p = :p AND begins_with(sk, :s)",
            ExpressionAttributeNames={"#p": "pk"},
            ExpressionAttributeValues={":p": {"S": "mine#2"}, ":s": {"S": "a"}},
        )
        with pytest.raises(ClientError) as error:
            ddb.get_item(TableName="state", Key={"pk": {"S": "theirs#1"}, "sk": {"S": "a"}})
    denied(error, "dynamodb:GetItem", table)


@pytest.fixture
def bucket(clock: Clock) -> str:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="inbox/a.txt", Body=b"a")
    return "data"


def test_s3_prefix_and_the_403_for_a_missing_key(bucket: str) -> None:
    read = allow("s3:GetObject", "arn:aws:s3:::data/*")
    reader = role("reader", read)
    prefixed = role("prefixed", read, allow("s3:ListBucket", "arn:aws:s3:::data", StringLike={"s3:prefix": "inbox/*"}))
    lister = role("lister", read, allow("s3:ListBucket", "arn:aws:s3:::data"))
    with enforce.enforcing():
        assert reader.client("s3").get_object(Bucket="data", Key="inbox/a.txt")["Body"].read() == b"a"
        assert prefixed.client("s3").list_objects_v2(Bucket="data", Prefix="inbox/")["KeyCount"] == 1
        with pytest.raises(ClientError) as outside_prefix:
            prefixed.client("s3").list_objects_v2(Bucket="data", Prefix="other/")
        missing = {}
        for who, session in (("reader", reader), ("prefixed", prefixed), ("lister", lister)):
            with pytest.raises(ClientError) as error:
                session.client("s3").get_object(Bucket="data", Key="inbox/none.txt")
            missing[who] = error.value.response["Error"]["Code"]
    assert outside_prefix.value.response["Error"]["Code"] == "AccessDenied"
    # S3 API Reference, GetObject: 403 for a missing key without s3:ListBucket on the bucket. The GetObject request
    # carries no s3:prefix, so a ListBucket grant conditioned on s3:prefix does not count (local.iam.enforce).
    assert missing == {"reader": "AccessDenied", "prefixed": "AccessDenied", "lister": "NoSuchKey"}


def test_tls_only_bucket_policy_and_the_root_user(bucket: str) -> None:
    # template.yaml TlsOnly: Deny s3:* to everyone when aws:SecureTransport is false.
    tls_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    boto3.client("s3").put_bucket_policy(Bucket="data", Policy=json.dumps(tls_only))
    enforce.register_root("AKIAROOTEXAMPLE00001", "root-secret", ACCOUNT_ID)
    root = boto3.Session("AKIAROOTEXAMPLE00001", "root-secret", region_name=REGION)
    with enforce.enforcing():
        assert root.client("s3").get_object(Bucket="data", Key="inbox/a.txt")  # https: no policy needed for root
        assert root.client("kms").create_key()  # the root user needs no IAM policy
        with pytest.raises(ClientError) as plain_http:
            root.client("s3", endpoint_url="http://s3.amazonaws.com").get_object(Bucket="data", Key="inbox/a.txt")
    assert plain_http.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.parametrize(
    ("url", "secure"),
    [
        ("https://s3.amazonaws.com/b/k", True),
        ("http://127.0.0.1:4566/b/k", True),  # the local stack's loopback endpoint stands for AWS's TLS endpoints
        ("http://localhost:4566/b/k", True),
        ("http://[::1]:4566/b/k", True),
        ("http://10.0.0.5:4566/b/k", False),
        ("http://s3.amazonaws.com/b/k", False),
    ],
)
def test_secure_transport_of_a_request_url(url: str, secure: bool) -> None:
    assert is_secure(url) is secure


def test_copy_object_needs_get_object_on_the_source(bucket: str) -> None:
    writer = role("writer", allow("s3:PutObject", "arn:aws:s3:::data/processed/*"))
    mover = role(
        "mover",
        allow("s3:PutObject", "arn:aws:s3:::data/processed/*"),
        allow("s3:GetObject", "arn:aws:s3:::data/inbox/*"),
    )
    source = {"Bucket": "data", "Key": "inbox/a.txt"}
    with enforce.enforcing():
        mover.client("s3").copy_object(Bucket="data", Key="processed/a.txt", CopySource=source)
        with pytest.raises(ClientError) as error:
            writer.client("s3").copy_object(Bucket="data", Key="processed/b.txt", CopySource=source)
    assert error.value.response["Error"]["Code"] == "AccessDenied"


# ---- SQS queue policies, STS trust, organizations ---------------------------------------------------------------


def test_sqs_queue_policy_grants_a_principal_without_iam_policy(clock: Clock) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:jobs"
    sender = role("sender")
    stranger = role("stranger")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:role/sender"},
                "Action": "sqs:SendMessage",
                "Resource": queue,
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    with enforce.enforcing():
        sender.client("sqs").send_message(QueueUrl=url, MessageBody="x")
        with pytest.raises(ClientError) as error:
            stranger.client("sqs").send_message(QueueUrl=url, MessageBody="x")
    denied(error, "sqs:SendMessage")


def test_assume_role_needs_identity_permission_when_the_trust_names_the_account(clock: Clock) -> None:
    iam = boto3.client("iam")
    grant = {"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"}
    account_trust = {"Version": "2012-10-17", "Statement": [grant]}
    target = iam.create_role(RoleName="target", AssumeRolePolicyDocument=json.dumps(account_trust))["Role"]["Arn"]
    allowed = role("allowed", allow("sts:AssumeRole", target))
    bare = role("bare")
    with enforce.enforcing():
        assert allowed.client("sts").assume_role(RoleArn=target, RoleSessionName="s1")["Credentials"]
        with pytest.raises(ClientError) as error:
            bare.client("sts").assume_role(RoleArn=target, RoleSessionName="s1")
    denied(error, "sts:AssumeRole")


def test_principal_org_id_comes_from_the_organization(clock: Clock, seen: Seen) -> None:
    use = role("user", allow("kms:ListKeys", StringEquals={"aws:PrincipalOrgID": "o-none"}))
    with enforce.enforcing(), pytest.raises(ClientError):
        use.client("kms").list_keys()  # no organization: the key is absent
    assert "aws:PrincipalOrgID" not in seen[-1][0].context
    org = boto3.client("organizations").create_organization(FeatureSet="ALL")["Organization"]["Id"]
    with enforce.enforcing(), pytest.raises(ClientError):
        use.client("kms").list_keys()
    assert seen[-1][0].context["aws:PrincipalOrgID"] == org
    assert seen[-1][0].context["aws:PrincipalArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/user"
    assert seen[-1][0].context["aws:SecureTransport"] is True  # in-process requests are https
