"""Presigned S3 links under the embedded AWS's IAM enforcement: authenticated by their query signature and authorised
as their signer, as S3 does (local.iam.presigned). Without this, an enforced stack refused every transfer link."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from moto.sts.models import sts_backends

from local.iam import enforce
from tests.conftest import ACCOUNT_ID, REGION

BUCKET = "credport-dev-transfer-123456789012"
KEY = "outbox/client-one/v1.jwe"
READ = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}


@pytest.fixture
def world(moto: None) -> Iterator[dict[str, Any]]:
    s3, iam = boto3.client("s3", region_name=REGION), boto3.client("iam")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"sealed")
    keys = {}
    for name, policy in (("reader", READ), ("nobody", None)):
        iam.create_user(UserName=name)
        if policy:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        made = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = Credentials(made["AccessKeyId"], made["SecretAccessKey"])
    iam.create_role(RoleName="sender", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName="sender", PolicyName="p", PolicyDocument=json.dumps(READ))
    session = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/sender", RoleSessionName="sender"
    )
    c = session["Credentials"]
    keys["session"] = Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    with enforce.enforcing():
        yield keys


def presign(creds: Credentials, *, key: str = KEY, signed_at: dt.datetime | None = None, expires: int = 600) -> str:
    """A GET link signed by botocore's own presigner, as of ``signed_at``."""
    request = AWSRequest(method="GET", url=f"https://{BUCKET}.s3.amazonaws.com/{key}")
    request.context["timestamp"] = (signed_at or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    auth = S3SigV4QueryAuth(creds, "s3", REGION, expires=expires)
    auth._modify_request_before_signing(request)  # add_auth's steps, but with our timestamp (it stamps "now")
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return str(request.url)


def error_of(response: requests.Response) -> str:
    return response.text.split("<Code>")[1].split("</Code>")[0]


def test_a_link_signed_by_a_principal_that_may_read_works(world: dict[str, Credentials]) -> None:
    for signer in ("reader", "session"):
        response = requests.get(presign(world[signer]), timeout=5)
        assert (response.status_code, response.content) == (200, b"sealed"), signer
    ten_minutes_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)  # checked at its own time, not at "now"
    assert requests.get(presign(world["reader"], signed_at=ten_minutes_ago, expires=900), timeout=5).status_code == 200
    s3 = boto3.client(  # and a link botocore's public presigner makes (SigV4, as credport's clients sign)
        "s3", region_name=REGION, aws_access_key_id=world["reader"].access_key,
        aws_secret_access_key=world["reader"].secret_key, config=Config(signature_version="s3v4"),
    )  # fmt: skip
    link = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=60)
    assert requests.get(link, timeout=5).content == b"sealed"


def test_a_link_is_authorised_as_its_signer(world: dict[str, Credentials]) -> None:
    response = requests.get(presign(world["nobody"]), timeout=5)
    assert (response.status_code, error_of(response)) == (403, "AccessDenied")


def test_a_link_for_another_object_or_with_a_forged_signature_is_refused(world: dict[str, Credentials]) -> None:
    link = presign(world["reader"])
    for forged in (link.replace("v1.jwe", "v2.jwe"), link.replace("X-Amz-Signature=", "X-Amz-Signature=0")):
        response = requests.get(forged, timeout=5)
        assert (response.status_code, error_of(response)) == (403, "SignatureDoesNotMatch")


def test_a_link_dies_at_its_expiry(world: dict[str, Credentials]) -> None:
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    response = requests.get(presign(world["reader"], signed_at=an_hour_ago, expires=3599), timeout=5)
    assert (response.status_code, error_of(response)) == (403, "AccessDenied")
    assert "Request has expired" in response.text
    assert requests.get(presign(world["reader"], signed_at=an_hour_ago, expires=3700), timeout=5).status_code == 200


def test_a_link_dies_with_the_temporary_credentials_that_signed_it(world: dict[str, Credentials]) -> None:
    """S3 User Guide, "Sharing objects with presigned URLs": the link expires when the token does."""
    link = presign(world["session"], expires=7 * 24 * 3600)
    assert requests.get(link, timeout=5).status_code == 200
    (session,) = [
        s for s in sts_backends[ACCOUNT_ID]["aws"].assumed_roles if s.access_key_id == world["session"].access_key
    ]
    session.expiration = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)
    response = requests.get(link, timeout=5)
    assert (response.status_code, error_of(response)) == (400, "ExpiredToken")  # S3 answers it with 400


def test_an_unknown_key_is_refused(world: dict[str, Credentials]) -> None:
    response = requests.get(presign(Credentials("AKIANOSUCHKEY0000000", "x")), timeout=5)
    assert (response.status_code, error_of(response)) == (403, "InvalidAccessKeyId")


def test_a_signature_version_2_link_is_refused_as_by_new_buckets(world: dict[str, Credentials]) -> None:
    s3 = boto3.client(
        "s3", region_name=REGION, aws_access_key_id=world["reader"].access_key,
        aws_secret_access_key=world["reader"].secret_key, config=Config(signature_version="s3"),
    )  # fmt: skip
    link = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=60)
    assert "Signature=" in link
    assert "X-Amz-Credential" not in link
    response = requests.get(link, timeout=5)
    assert (response.status_code, error_of(response)) == (400, "InvalidRequest")
