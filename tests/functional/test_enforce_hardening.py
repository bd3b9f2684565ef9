"""What a hostile client tried against the embedded AWS's IAM enforcement, and what AWS answers instead.

Each of these was let through before (moto authenticates less than AWS does); each is now refused as AWS refuses
it, or, where the emulation cannot decide as AWS does, refused as unsupported rather than allowed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from moto.sts.models import sts_backends

from local.iam import enforce
from tests.conftest import ACCOUNT_ID, REGION

BUCKET = "hardening-bucket"
ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}


@pytest.fixture
def admin(moto: None) -> Iterator[dict[str, str]]:
    iam = boto3.client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(ALL))
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName="r", PolicyName="all", PolicyDocument=json.dumps(ALL))
    with enforce.enforcing():
        yield {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def client(service: str, creds: dict[str, str], **config: Any) -> Any:
    return boto3.client(service, region_name=REGION, config=Config(**config) if config else None, **creds)


def code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_a_cognito_target_header_no_longer_skips_authentication(admin: dict[str, str]) -> None:
    fake = {"aws_access_key_id": "AKIAFAKEFAKEFAKEFAKE", "aws_secret_access_key": "x"}
    s3 = client("s3", fake)
    s3.meta.events.register(
        "before-sign.s3.ListObjectsV2",
        lambda request, **_: request.headers.__setitem__("X-Amz-Target", "AWSCognitoIdentityService.GetId"),
    )
    with pytest.raises(ClientError) as refused:
        s3.list_objects_v2(Bucket=BUCKET)
    assert code(refused) == "InvalidAccessKeyId"


def test_a_query_parameter_given_twice_is_refused_not_guessed(admin: dict[str, str]) -> None:
    s3 = client("s3", admin)
    s3.meta.events.register(
        "before-sign.s3.ListObjectsV2",
        lambda request, **_: setattr(request, "url", request.url + "&prefix=autoid%2F"),
    )
    with pytest.raises(ClientError) as refused:
        s3.list_objects_v2(Bucket=BUCKET, Prefix="clients/")
    assert code(refused) == "EmbeddedIamUnsupported"


def test_expired_session_credentials_are_refused(admin: dict[str, str]) -> None:
    session = client("sts", admin).assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/r", RoleSessionName="short")
    c = session["Credentials"]
    creds = {
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
    }
    assert client("s3", creds).list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    (made,) = [s for s in sts_backends[ACCOUNT_ID]["aws"].assumed_roles if s.access_key_id == c["AccessKeyId"]]
    made.expiration = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
    for service, call in (("s3", "list_buckets"), ("secretsmanager", "list_secrets")):
        with pytest.raises(ClientError) as refused:
            getattr(client(service, creds, retries={"total_max_attempts": 1}), call)()
        assert code(refused) in {"ExpiredToken", "ExpiredTokenException"}


def signed_get(creds: dict[str, str], url: str, at: dt.datetime) -> requests.Response:
    """A GET signed (SigV4, header) as of ``at``: add_auth's steps, with our timestamp (it stamps "now")."""
    request = AWSRequest(method="GET", url=url)
    request.context["timestamp"] = at.strftime("%Y%m%dT%H%M%SZ")
    credentials = Credentials(creds["aws_access_key_id"], creds["aws_secret_access_key"])
    auth = S3SigV4Auth(credentials, "s3", REGION)
    auth._modify_request_before_signing(request)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return requests.get(url, headers=dict(request.headers.items()), timeout=5)


def test_a_request_signed_three_days_ago_is_refused(admin: dict[str, str]) -> None:
    url = f"https://{BUCKET}.s3.amazonaws.com/?list-type=2"
    assert signed_get(admin, url, dt.datetime.now(dt.UTC)).status_code == 200
    for skew in (dt.timedelta(days=-3), dt.timedelta(days=3), dt.timedelta(minutes=-16)):
        response = signed_get(admin, url, dt.datetime.now(dt.UTC) + skew)
        assert response.status_code in {400, 403}
        assert b"<Code>RequestTimeTooSkewed</Code>" in response.content


def test_an_s3_body_other_than_the_one_signed_is_refused(admin: dict[str, str]) -> None:
    s3 = client(
        "s3", admin, retries={"total_max_attempts": 1}, s3={"payload_signing_enabled": True},
        request_checksum_calculation="when_required",
    )  # fmt: skip
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: setattr(request, "body", b"TAMPERED"))
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"original")
    assert code(refused) == "XAmzContentSHA256Mismatch"


def test_delete_objects_is_refused_as_unsupported_not_allowed(admin: dict[str, str]) -> None:
    s3 = client("s3", admin)
    s3.put_object(Bucket=BUCKET, Key="protected/k", Body=b"x")
    with pytest.raises(ClientError) as refused:
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "protected/k"}]})
    assert code(refused) == "EmbeddedIamUnsupported"
    assert s3.get_object(Bucket=BUCKET, Key="protected/k")["Body"].read() == b"x"


def test_a_presigned_link_cannot_be_pointed_at_another_version(admin: dict[str, str]) -> None:
    s3 = client("s3", admin, signature_version="s3v4")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=BUCKET, Key="k", Body=b"old secret")["VersionId"]
    new = s3.put_object(Bucket=BUCKET, Key="k", Body=b"public")["VersionId"]
    link = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k", "VersionId": new})
    assert requests.get(link, timeout=5).content == b"public"
    base, query = link.split("?", 1)
    response = requests.get(f"{base}?versionId={old}&{query}", timeout=5)
    assert response.status_code in {400, 403}
    assert b"old secret" not in response.content
