"""The AWS adapters against moto's in-process mock: real calls, real responses, no mocks of our own code."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from chalicelib.aws import AwsConflict, AwsNotFound, AwsRejected, AwsServices
from chalicelib.aws.clients import ClientFactory
from chalicelib.aws.secrets import CURRENT, PENDING, PREVIOUS
from chalicelib.errors import CredportError, PayloadTooLarge
from tests.conftest import ACCOUNT_ID, REGION

# --- helpers ------------------------------------------------------------------------------------------------------


def make_bucket(factory: ClientFactory, *, versioned: bool = False) -> str:
    name = f"credport-test-{uuid.uuid4().hex[:12]}"
    s3 = factory.client("s3")
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def make_queue(factory: ClientFactory, name: str = "credport-test") -> str:
    return str(factory.client("sqs").create_queue(QueueName=name)["QueueUrl"])


def make_table(factory: ClientFactory, name: str = "credport-test") -> str:
    factory.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def topic_to_queue(aws: AwsServices, name: str, **subscription: Any) -> tuple[str, str]:
    """A topic with one SQS subscriber; returns ``(topic_arn, queue_url)``."""
    topic = str(aws.factory.client("sns").create_topic(Name=name)["TopicArn"])
    url = make_queue(aws.factory, name)
    aws.sns.subscribe(topic, protocol="sqs", endpoint=aws.sqs.arn_of(url), **subscription)
    return topic, url


def token() -> str:
    return uuid.uuid4().hex


# --- S3 -----------------------------------------------------------------------------------------------------------


def test_s3_put_get_round_trip(aws: AwsServices) -> None:
    bucket = make_bucket(aws.factory)
    body = bytes(range(256))
    assert aws.s3.put(bucket, "a/b.bin", body, content_type="application/x-test", metadata={"owner": "me"}) is None
    stored = aws.s3.get(bucket, "a/b.bin")
    assert stored.body == body
    assert stored.info.size == 256
    assert stored.info.content_type == "application/x-test"
    assert stored.info.metadata == {"owner": "me"}
    assert stored.info.etag == hashlib.md5(body).hexdigest()  # noqa: S324 - S3's ETag of a single-part put
    assert aws.s3.head(bucket, "a/b.bin") == stored.info
    assert "\\x00" not in repr(stored)


def test_s3_versioned_bucket_returns_version_ids(aws: AwsServices) -> None:
    bucket = make_bucket(aws.factory, versioned=True)
    first = aws.s3.put(bucket, "k", b"one")
    second = aws.s3.put(bucket, "k", b"two")
    assert first
    assert second
    assert first != second
    stored = aws.s3.get(bucket, "k")
    assert (stored.body, stored.info.version_id) == (b"two", second)
    info = aws.s3.head(bucket, "k")
    assert info is not None
    assert info.version_id == second


def test_s3_get_refuses_objects_larger_than_max_bytes(aws: AwsServices) -> None:
    bucket = make_bucket(aws.factory)
    aws.s3.put(bucket, "big", b"x" * 101)
    assert aws.s3.get(bucket, "big", max_bytes=101).body == b"x" * 101
    with pytest.raises(PayloadTooLarge) as caught:
        aws.s3.get(bucket, "big", max_bytes=100)
    assert caught.value.status == 413


def test_s3_missing_objects(aws: AwsServices) -> None:
    bucket = make_bucket(aws.factory)
    assert aws.s3.head(bucket, "missing") is None
    with pytest.raises(AwsNotFound) as caught:
        aws.s3.get(bucket, "missing")
    assert (caught.value.status, caught.value.code, caught.value.aws_code) == (404, "not_found", "NoSuchKey")
    assert (caught.value.service, caught.value.operation) == ("s3", "GetObject")
    assert isinstance(caught.value.__cause__, ClientError)


def test_s3_copy_move_and_delete(aws: AwsServices) -> None:
    bucket = make_bucket(aws.factory)
    aws.s3.put(bucket, "src", b"payload", content_type="text/plain")
    aws.s3.copy(bucket, "src", "copy")
    assert aws.s3.get(bucket, "copy").body == b"payload"
    aws.s3.move(bucket, "src", "moved")
    assert aws.s3.head(bucket, "src") is None
    assert aws.s3.get(bucket, "moved").body == b"payload"
    aws.s3.delete(bucket, "moved")
    aws.s3.delete(bucket, "moved")  # deleting a missing key is not an error, as in S3
    assert aws.s3.head(bucket, "moved") is None
    assert sorted(aws.s3.list_keys(bucket, "")) == ["copy"]


def test_s3_list_keys_filters_by_prefix(aws: AwsServices) -> None:
    bucket = make_bucket(aws.factory)
    wanted = {f"in/{i:02d}" for i in range(12)}
    for key in [*wanted, "out/1", "inside"]:
        aws.s3.put(bucket, key, b"")
    assert set(aws.s3.list_keys(bucket, "in/")) == wanted
    assert list(aws.s3.list_keys(bucket, "none/")) == []
    with pytest.raises(AwsNotFound):
        list(aws.s3.list_keys("credport-no-such-bucket", ""))


def test_s3_presign_get_names_the_key_and_expiry(aws: AwsServices) -> None:
    bucket = make_bucket(aws.factory)
    url = aws.s3.presign_get(bucket, "dir/object.json", expires_in=321)
    assert "dir/object.json" in url
    assert bucket in url
    assert "Expires=" in url


def test_s3_presign_get_uses_sigv4(aws: AwsServices) -> None:
    url = aws.s3.presign_get(make_bucket(aws.factory), "k", expires_in=321)
    assert "X-Amz-Expires=321" in url
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url


def test_s3_sse_kms_put_and_copy(aws: AwsServices) -> None:
    bucket = make_bucket(aws.factory)
    key = aws.kms.create_key(description="s3", key_spec="SYMMETRIC_DEFAULT", usage="ENCRYPT_DECRYPT")
    aws.s3.put(bucket, "enc", b"secret bytes", kms_key_id=key.arn)
    aws.s3.copy(bucket, "enc", "enc-copy", kms_key_id=key.arn)
    raw = aws.factory.client("s3")
    for name in ("enc", "enc-copy"):
        head = raw.head_object(Bucket=bucket, Key=name)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert key.key_id in head["SSEKMSKeyId"]
        assert aws.s3.get(bucket, name).body == b"secret bytes"


# --- Secrets Manager ----------------------------------------------------------------------------------------------


def test_secret_create_and_get_string_and_binary(aws: AwsServices) -> None:
    key = aws.kms.create_key(description="secrets", key_spec="SYMMETRIC_DEFAULT", usage="ENCRYPT_DECRYPT")
    request = token()
    arn, version = aws.secrets.create(
        "credport/text", "s3cr3t-value", client_request_token=request, description="d", kms_key_id=key.arn
    )
    assert version == request
    got = aws.secrets.get_value("credport/text")
    assert (got.arn, got.name, got.version_id, got.stages) == (arn, "credport/text", version, (CURRENT,))
    assert got.value == "s3cr3t-value"
    aws.secrets.create("credport/binary", b"\x00\xffbin", tags={"k": "v"})
    assert aws.secrets.get_value("credport/binary").value == b"\x00\xffbin"
    info = aws.secrets.describe("credport/text")
    assert (info.arn, info.description, info.rotation_enabled, info.rotation_lambda_arn) == (arn, "d", False, None)


def test_secret_version_repr_hides_the_value(aws: AwsServices) -> None:
    aws.secrets.create("credport/hygiene", "CANARY-VALUE-42")
    version = aws.secrets.get_value("credport/hygiene")
    assert "CANARY-VALUE-42" not in repr(version)
    assert "CANARY-VALUE-42" not in str(version)


def test_secret_put_value_is_idempotent_per_token(aws: AwsServices) -> None:
    aws.secrets.create("credport/idem", "v1")
    request = token()
    assert aws.secrets.put_value("credport/idem", "v2", client_request_token=request) == request
    assert aws.secrets.put_value("credport/idem", "v2", client_request_token=request) == request
    assert len(aws.secrets.describe("credport/idem").versions) == 2
    with pytest.raises(AwsConflict):
        aws.secrets.put_value("credport/idem", "other", client_request_token=request)


def test_secret_stages_follow_put_value(aws: AwsServices) -> None:
    _, v1 = aws.secrets.create("credport/stages", "one")
    v2 = aws.secrets.put_value("credport/stages", "two", client_request_token=token())
    info = aws.secrets.describe("credport/stages")
    assert (info.version_in_stage(CURRENT), info.version_in_stage(PREVIOUS)) == (v2, v1)
    assert info.versions[v1] == (PREVIOUS,)
    assert info.versions[v2] == (CURRENT,)
    assert aws.secrets.get_value("credport/stages").value == "two"
    assert aws.secrets.get_value("credport/stages", stage=PREVIOUS).value == "one"
    assert aws.secrets.get_value("credport/stages", version_id=v1).value == "one"


def test_secret_move_and_remove_stage(aws: AwsServices) -> None:
    name = "credport/rotate"
    _, v1 = aws.secrets.create(name, "old")
    v2 = aws.secrets.put_value(name, "new", client_request_token=token(), stages=(PENDING,))
    info = aws.secrets.describe(name)
    assert (info.version_in_stage(CURRENT), info.version_in_stage(PENDING)) == (v1, v2)
    assert aws.secrets.get_value(name, stage=PENDING).value == "new"

    aws.secrets.move_stage(name, CURRENT, to_version=v2, from_version=v1)
    aws.secrets.remove_stage(name, PENDING, from_version=v2)
    info = aws.secrets.describe(name)
    assert info.version_in_stage(CURRENT) == v2
    assert info.version_in_stage(PREVIOUS) == v1  # moving AWSCURRENT labels the old version AWSPREVIOUS
    assert info.version_in_stage(PENDING) is None
    assert info.versions[v2] == (CURRENT,)
    assert aws.secrets.get_value(name).value == "new"
    assert aws.secrets.get_value(name, stage=PREVIOUS).value == "old"


def test_secret_errors(aws: AwsServices) -> None:
    with pytest.raises(AwsNotFound) as missing:
        aws.secrets.get_value("credport/missing")
    assert missing.value.aws_code == "ResourceNotFoundException"
    aws.secrets.create("credport/twice", "v")
    with pytest.raises(AwsConflict) as exists:
        aws.secrets.create("credport/twice", "v")
    assert (exists.value.status, exists.value.code) == (409, "conflict")


# --- KMS ----------------------------------------------------------------------------------------------------------


def verify(der: bytes, signature: bytes, message: bytes) -> None:
    public = serialization.load_der_public_key(der)
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    else:
        pytest.fail(f"unexpected public key {type(public).__name__}")


@pytest.mark.parametrize(
    ("spec", "algorithm"), [("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"), ("ECC_NIST_P256", "ECDSA_SHA_256")]
)
def test_kms_signatures_verify_with_the_public_key(aws: AwsServices, spec: str, algorithm: str) -> None:
    key = aws.kms.create_key(description="signing", key_spec=spec, usage="SIGN_VERIFY", tags={"app": "cp"})
    assert (key.key_spec, key.usage, key.state) == (spec, "SIGN_VERIFY", "Enabled")
    public = aws.kms.public_key(key.key_id)
    # AWS answers GetPublicKey with the key ARN; moto with the bare key id.
    assert public.arn in (key.arn, key.key_id)
    assert public.key_spec == spec
    assert algorithm in public.signing_algorithms

    message = b"header.payload"
    signature = aws.kms.sign(key.key_id, message, algorithm)
    verify(public.der, signature, message)
    with pytest.raises(InvalidSignature):
        verify(public.der, signature, message + b"!")


def test_kms_aliases(aws: AwsServices) -> None:
    first = aws.kms.create_key(description="a", key_spec="ECC_NIST_P256", usage="SIGN_VERIFY")
    second = aws.kms.create_key(description="b", key_spec="ECC_NIST_P256", usage="SIGN_VERIFY")
    alias = "alias/credport-test"
    assert aws.kms.alias_target(alias) is None
    aws.kms.set_alias(alias, first.key_id)
    assert aws.kms.alias_target(alias) == first
    aws.kms.set_alias(alias, second.key_id)
    target = aws.kms.alias_target(alias)
    assert target is not None
    assert target.key_id == second.key_id
    assert aws.kms.public_key(alias).arn.endswith(second.key_id)
    aws.kms.delete_alias(alias)
    aws.kms.delete_alias(alias)
    assert aws.kms.alias_target(alias) is None


def test_kms_schedule_deletion(aws: AwsServices) -> None:
    key = aws.kms.create_key(description="doomed", key_spec="RSA_2048", usage="SIGN_VERIFY")
    aws.kms.schedule_deletion(key.key_id, days=7)
    assert aws.kms.describe(key.key_id).state == "PendingDeletion"
    assert aws.kms.describe(key.arn).key_id == key.key_id


def test_kms_encrypt_decrypt_binds_the_context(aws: AwsServices) -> None:
    key = aws.kms.create_key(description="data", key_spec="SYMMETRIC_DEFAULT", usage="ENCRYPT_DECRYPT")
    context = {"purpose": "test", "tenant": "t1"}
    ciphertext = aws.kms.encrypt(key.key_id, b"plain bytes", context=context)
    assert b"plain bytes" not in ciphertext
    assert aws.kms.decrypt(ciphertext, key_id=key.key_id, context=context) == b"plain bytes"
    with pytest.raises(CredportError) as caught:
        aws.kms.decrypt(ciphertext, key_id=key.key_id, context={**context, "tenant": "t2"})
    assert not isinstance(caught.value, ClientError)
    assert isinstance(caught.value, AwsRejected)  # moto: InvalidCiphertextException
    assert caught.value.status == 500


# --- SNS ----------------------------------------------------------------------------------------------------------


def test_sns_publish_reaches_a_subscribed_queue(aws: AwsServices) -> None:
    topic, url = topic_to_queue(aws, "credport-events")
    message_id = aws.sns.publish(topic, {"b": 2, "a": [1]}, subject="x" * 150, attributes={"kind": "rotated"})
    (received,) = aws.sqs.receive(url)
    envelope = json.loads(received.body)
    assert (envelope["Type"], envelope["TopicArn"], envelope["MessageId"]) == ("Notification", topic, message_id)
    assert envelope["Message"] == '{"a":[1],"b":2}'
    assert envelope["Subject"] == "x" * 100
    assert envelope["MessageAttributes"]["kind"] == {"Type": "String", "Value": "rotated"}


def test_sns_raw_delivery_carries_attributes(aws: AwsServices) -> None:
    topic, url = topic_to_queue(aws, "credport-raw", raw_delivery=True)
    aws.sns.publish(topic, {"event": "x"}, attributes={"kind": "k1"})
    (received,) = aws.sqs.receive(url)
    assert json.loads(received.body) == {"event": "x"}
    assert received.message_attributes["kind"]["StringValue"] == "k1"


def test_sns_filter_policy_drops_non_matching_messages(aws: AwsServices) -> None:
    topic, url = topic_to_queue(aws, "credport-filtered", filter_policy={"kind": ["wanted"]})
    aws.sns.publish(topic, {"n": 1}, attributes={"kind": "unwanted"})
    aws.sns.publish(topic, {"n": 2}, attributes={"kind": "wanted"})
    aws.sns.publish(topic, {"n": 3})
    received = aws.sqs.receive(url)
    assert [json.loads(m.body)["Message"] for m in received] == ['{"n":2}']


def test_sns_publish_to_a_missing_topic(aws: AwsServices) -> None:
    with pytest.raises(AwsNotFound) as caught:
        aws.sns.publish(f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:credport-missing", {"a": 1})
    assert (caught.value.service, caught.value.operation) == ("sns", "Publish")


# --- SQS ----------------------------------------------------------------------------------------------------------


def test_sqs_send_receive_delete(aws: AwsServices) -> None:
    url = make_queue(aws.factory)
    message_id = aws.sqs.send(url, "hello", attributes={"kind": "greeting"})
    (message,) = aws.sqs.receive(url, visibility_timeout=0)
    assert (message.message_id, message.body, message.receive_count) == (message_id, "hello", 1)
    assert message.md5_of_body == hashlib.md5(b"hello").hexdigest()  # noqa: S324 - SQS's own checksum
    assert message.message_attributes["kind"] == {"StringValue": "greeting", "DataType": "String"}
    aws.sqs.delete(url, message.receipt_handle)
    assert aws.sqs.receive(url, visibility_timeout=0) == []
    counts = aws.sqs.attributes(url, ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"))
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_sqs_change_visibility_returns_a_message(aws: AwsServices) -> None:
    url = make_queue(aws.factory)
    aws.sqs.send(url, "retry me")
    (first,) = aws.sqs.receive(url, visibility_timeout=60)
    assert aws.sqs.receive(url) == []
    aws.sqs.change_visibility(url, first.receipt_handle, 0)
    (again,) = aws.sqs.receive(url)
    assert again.message_id == first.message_id
    assert again.receive_count == 2


def test_sqs_message_repr_hides_the_body(aws: AwsServices) -> None:
    url = make_queue(aws.factory)
    aws.sqs.send(url, "BODY-CANARY-7")
    (message,) = aws.sqs.receive(url)
    assert "BODY-CANARY-7" not in repr(message)


def test_sqs_urls_and_arns(aws: AwsServices) -> None:
    url = make_queue(aws.factory, "credport-named")
    assert aws.sqs.url_for("credport-named") == url
    assert aws.sqs.arn_of(url) == f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:credport-named"
    with pytest.raises(AwsNotFound) as caught:
        aws.sqs.url_for("credport-missing")
    assert (caught.value.status, caught.value.code) == (404, "not_found")


# --- DynamoDB -----------------------------------------------------------------------------------------------------


def test_dynamodb_round_trip(aws: AwsServices) -> None:
    table = aws.table(make_table(aws.factory))
    item = {"pk": "p", "sk": "1", "count": 42, "name": "n", "blob": b"\x00\x01", "nested": {"a": {"b": [1, "x"]}}}
    table.put({**item, "ratio": Decimal("0.25"), "tags": {"a", "b"}})
    got = table.get({"pk": "p", "sk": "1"})
    assert got == {**item, "ratio": Decimal("0.25"), "tags": {"a", "b"}}
    # Plain Python types, not boto3's Decimal-for-everything and Binary wrappers:
    assert type(got["count"]) is int
    assert type(got["blob"]) is bytes
    assert type(got["nested"]["a"]["b"][0]) is int
    assert type(got["ratio"]) is Decimal
    assert table.get({"pk": "p", "sk": "2"}) is None
    table.delete({"pk": "p", "sk": "1"})
    assert table.get({"pk": "p", "sk": "1"}) is None


def test_dynamodb_put_if_absent(aws: AwsServices) -> None:
    table = aws.table(make_table(aws.factory))
    table.put({"pk": "jti", "sk": "-", "seen": 1}, if_absent="pk")
    with pytest.raises(AwsConflict) as caught:
        table.put({"pk": "jti", "sk": "-", "seen": 2}, if_absent="pk")
    assert (caught.value.status, caught.value.aws_code) == (409, "ConditionalCheckFailedException")
    assert table.get({"pk": "jti", "sk": "-"}) == {"pk": "jti", "sk": "-", "seen": 1}
    table.put({"pk": "jti", "sk": "-", "seen": 3})
    assert table.get({"pk": "jti", "sk": "-"}) == {"pk": "jti", "sk": "-", "seen": 3}


def test_dynamodb_query_returns_one_partition(aws: AwsServices) -> None:
    table = aws.table(make_table(aws.factory))
    for sk in ("c", "a", "b"):
        table.put({"pk": "mine", "sk": sk})
    table.put({"pk": "other", "sk": "a"})
    assert [i["sk"] for i in table.query("pk", "mine")] == ["a", "b", "c"]
    assert list(table.query("pk", "nobody")) == []
    with pytest.raises(AwsNotFound) as caught:
        list(aws.table("credport-missing").query("pk", "mine"))
    assert caught.value.aws_code == "ResourceNotFoundException"


# --- STS ----------------------------------------------------------------------------------------------------------


def test_sts_assume_role(aws: AwsServices) -> None:
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    role = aws.factory.client("iam").create_role(RoleName="credport-test", AssumeRolePolicyDocument=json.dumps(trust))
    creds = aws.sts.assume_role(
        role["Role"]["Arn"], "session-1", duration_seconds=900, external_id="ext", tags={"k": "v"}
    )
    assert creds.assumed_role_arn == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/credport-test/session-1"
    assert creds.access_key_id.startswith("ASIA")
    assert creds.expiration > datetime.now(UTC)
    assert creds.secret_access_key
    assert creds.session_token
    assert creds.secret_access_key not in repr(creds)
    assert creds.session_token not in repr(creds)
    assert creds.access_key_id in repr(creds)


def test_sts_caller_identity(aws: AwsServices) -> None:
    identity = aws.sts.caller_identity()
    assert identity.account == ACCOUNT_ID
    assert identity.arn.startswith("arn:aws:")
    assert ACCOUNT_ID in identity.arn
    assert identity.user_id


def test_secrets_create_or_add_version_is_idempotent_per_token(aws: AwsServices) -> None:
    store = aws.secrets
    arn, first = store.create_or_add_version("made/here", "v1", client_request_token=str(uuid.uuid4()))
    assert store.get_value(arn).value == "v1"
    token = str(uuid.uuid4())
    same_arn, second = store.create_or_add_version("made/here", "v2", client_request_token=token)
    assert (same_arn, store.get_value(arn).value) == (arn, "v2")
    assert store.get_value(arn, stage="AWSPREVIOUS").version_id == first
    # The same token again, even with another value: the version it made is the answer, nothing new.
    assert store.create_or_add_version("made/here", "v3", client_request_token=token) == (arn, second)
    assert store.get_value(arn).value == "v2"
    assert len(store.describe(arn).versions) == 2
